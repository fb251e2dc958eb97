package admin

import (
	"embed"
	"io/fs"
	"net/http"
)

// The stats page: one HTML file, its script and style, all in the binary.
//
//go:embed ui
var uiFiles embed.FS

// uiFS serves /ui/… from the embedded ui folder.
var uiFS fs.FS = uiFiles

func serveIndex(w http.ResponseWriter, r *http.Request) {
	b, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}
