package web

import (
	"strings"
	"testing"
)

// FuzzFsName checks that a request path either is refused or becomes a
// relative name with no way up: no "..", no absolute path, no backslash, no
// NUL, no dot segment. (os.Root guards the same line again at open time.)
func FuzzFsName(f *testing.F) {
	for _, seed := range []string{
		"/", "/index.html", "/a//b/", // ordinary
		"/../etc/passwd", "/a/../../b", // traversal
		"/.env", "/a/./b", "/a/.git/config", // dot segments
		"/a\\..\\b", "/a\x00b", "relative", "", // refused shapes
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, ok := fsName(p)
		if !ok {
			return
		}
		if name == "." {
			if strings.Trim(p, "/") != "" {
				t.Fatalf("fsName(%q) = %q", p, name)
			}
			return
		}
		if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("fsName(%q) = %q: absolute or unsafe", p, name)
		}
		for seg := range strings.SplitSeq(name, "/") {
			if seg == "" || strings.HasPrefix(seg, ".") {
				t.Fatalf("fsName(%q) = %q: segment %q", p, name, seg)
			}
		}
	})
}
