// Package testenv lets integration tests declare what they need from the
// machine: a program on PATH, root. Outside CI a missing need skips the test;
// under CI=true it fails it, so a green CI run never hides an untested path.
// Integration tests also call Short first, so the -short pass skips them.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Program returns the path of each named program, or stops the test when one
// is missing: skipped locally, failed under CI.
func Program(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			missing(t, "program %q not found on PATH (make test installs it)", n)
		}
		paths[i] = p
	}
	return paths
}

// Root stops the test unless it runs as root: skipped locally, failed under CI.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root")
	}
}

// Short skips an integration test under `go test -short`, the race-detector
// pass over the unit tests; `make test` runs every test in a second pass
// without -short (where a missing dependency fails under CI).
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; skipped with -short")
	}
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
