package stack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestChildKillRestartStop(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	exits := make(chan string, 4)
	c := &child{name: "c", kind: "test", exe: sh, args: []string{"-c", "exec sleep 30"},
		log: filepath.Join(t.TempDir(), "c.log"), onExit: func(c *child, err error) { exits <- describeExit(err) }}
	t.Cleanup(func() { c.stop(time.Second) })
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	if !c.running() || c.pid() == 0 {
		t.Fatalf("running() = %v, pid() = %d after start, want a running process", c.running(), c.pid())
	}
	if err := c.kill(); err != nil {
		t.Fatalf("kill() = %v", err)
	}
	select {
	case got := <-exits:
		if got != "killed by SIGKILL" {
			t.Errorf("exit = %q, want %q", got, "killed by SIGKILL")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onExit not called after kill")
	}
	if c.running() || c.exitStatus() != "killed by SIGKILL" {
		t.Errorf("after kill: running() = %v, exitStatus() = %q", c.running(), c.exitStatus())
	}
	if err := c.kill(); err == nil {
		t.Errorf("kill() of a dead child = nil, want an error")
	}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	if c.starts != 2 {
		t.Errorf("starts = %d, want 2", c.starts)
	}
	c.stop(2 * time.Second)
	if c.running() {
		t.Errorf("running() after stop = true")
	}
	select {
	case got := <-exits:
		t.Errorf("onExit called for a stop (%q); only deaths are events", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// A child that ignores SIGTERM is killed once the grace period is over.
func TestChildStopEscalates(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	c := &child{name: "stubborn", exe: sh, args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 0.05; done`},
		log: filepath.Join(t.TempDir(), "s.log")}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the trap is set (the shell printed ready).
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(c.log)
		if strings.Contains(string(b), "\nready\n") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	begin := time.Now()
	c.stop(300 * time.Millisecond)
	if d := time.Since(begin); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("stop took %v, want the 300ms grace, then SIGKILL", d)
	}
	if got := c.exitStatus(); got != "killed by SIGKILL" {
		t.Errorf("exitStatus() = %q, want killed by SIGKILL", got)
	}
}
