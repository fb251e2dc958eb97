package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

var (
	buildDir   string
	buildOnce  sync.Once
	binPath    string
	binErr     error
	buildMutex sync.Mutex // guards buildDir
)

// Binary returns the fulcrum command for tests that run it as a process:
// FULCRUM_BIN when set (make integration builds bin/fulcrum first), else a
// build made once per test binary. Call RemoveBuild from TestMain.
func Binary() (string, error) {
	buildOnce.Do(func() {
		if b := os.Getenv("FULCRUM_BIN"); b != "" {
			binPath, binErr = filepath.Abs(b)
			return
		}
		dir, err := os.MkdirTemp("", "fulcrum-bin")
		if err != nil {
			binErr = err
			return
		}
		buildMutex.Lock()
		buildDir = dir
		buildMutex.Unlock()
		binPath = filepath.Join(dir, "fulcrum")
		if out, err := exec.Command("go", "build", "-o", binPath, "fulcrum/cmd/fulcrum").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	return binPath, binErr
}

// RemoveBuild removes the build Binary made, if any.
func RemoveBuild() {
	buildMutex.Lock()
	defer buildMutex.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
	}
}
