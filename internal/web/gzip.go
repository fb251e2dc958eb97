package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"mime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// gzipMinSize: smaller files gain less than the header costs.
	gzipMinSize = 256
	// gzipMaxSize: larger files are sent as they are rather than held
	// compressed in memory.
	gzipMaxSize = 4 << 20
	// gzipCacheBytes bounds the memory of compressed files.
	gzipCacheBytes = 32 << 20
)

// compressible reports whether a Content-Type is worth compressing: text,
// and the structured formats that are text underneath.
func compressible(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/javascript", "application/x-javascript", "application/json", "application/xml",
		"application/wasm", "image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon",
		"font/ttf", "font/otf", "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// acceptsGzip reports whether Accept-Encoding values allow gzip: gzip (or
// x-gzip, or *) listed with a q-value above 0 (RFC 9110, section 12.5.3).
// An explicit "gzip;q=0" wins over "*".
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			q := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch coding {
			case "gzip", "x-gzip":
				return q > 0
			case "*":
				star = q > 0
			}
		}
	}
	return star
}

// gzipCache holds compressed copies of files, keyed by name and checked
// against the file's size and modification time, so an edited file is
// compressed again. When full it starts over: simple, and the working set
// of a site is small.
type gzipCache struct {
	max int
	// mu guards the fields below.
	mu      sync.Mutex
	entries map[string]gzipEntry
	size    int
}

type gzipEntry struct {
	mod  time.Time
	size int64
	data []byte
}

func newGzipCache(max int) *gzipCache {
	return &gzipCache{max: max, entries: map[string]gzipEntry{}}
}

// get returns the gzip of f (named name, described by fi), compressing it
// on a miss; f is read from its start and rewound.
func (c *gzipCache) get(name string, fi fs.FileInfo, f io.ReadSeeker) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && e.size == fi.Size() && e.mod.Equal(fi.ModTime()) {
		return e.data, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.Copy(zw, io.LimitReader(f, fi.Size())); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[name]; ok {
		c.size -= len(old.data)
	}
	if c.size+len(data) > c.max {
		clear(c.entries)
		c.size = 0
	}
	c.entries[name] = gzipEntry{mod: fi.ModTime(), size: fi.Size(), data: data}
	c.size += len(data)
	return data, nil
}
