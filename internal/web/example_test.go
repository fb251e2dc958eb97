package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"fulcrum/internal/config"
	"fulcrum/internal/web"
)

// A program that runs the whole stack starts a web server in-process: New
// checks the configuration, Serve runs until its context ends.
func ExampleServer_Serve() {
	site, _ := os.MkdirTemp("", "site")
	defer os.RemoveAll(site)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>foobar.com</h1>"), 0o644)

	srv, err := web.New(&config.Web{Name: "web1", Listen: "127.0.0.1:0",
		Static: &config.Static{Root: site}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err == nil {
		fmt.Println(resp.Status, resp.Header.Get("X-Served-By"))
		resp.Body.Close()
	}
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// 200 OK web1
	// stopped: <nil>
}
