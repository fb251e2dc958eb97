package stack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// child is one supervised process of the stack: a load balancer, a web
// server or the DB manager, run from the fulcrum binary.
type child struct {
	name string
	kind string // lb, web or manager
	exe  string
	args []string
	log  string // file receiving its stdout and stderr
	// netns is the network namespace of its host ("": this machine's).
	netns string
	// onExit is called, from the goroutine that waited for it, when the
	// process ends on its own or is killed (not when stopped by stop).
	onExit func(c *child, err error)

	// mu guards the fields below.
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has been waited for
	stopping bool
	starts   int
	exitErr  error
	exitedAt time.Time
}

// start runs the process unless it runs already.
func (c *child) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && !isClosed(c.done) {
		return nil
	}
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "--- %s: starting %s %v\n", time.Now().Format(time.RFC3339), c.exe, c.args)
	cmd := exec.Command(c.exe, c.args...)
	if c.netns != "" {
		// ip execs the program inside the namespace: the pid stays.
		cmd = exec.Command("ip", append([]string{"netns", "exec", c.netns, c.exe}, c.args...)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: the terminal's Ctrl-C reaches fulcrum up
	// alone, which stops the children in order. Pdeathsig: if fulcrum up
	// itself is killed, no child stays behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("starting %s: %w", c.name, err)
	}
	done := make(chan struct{})
	c.cmd, c.done, c.stopping, c.exitErr = cmd, done, false, nil
	c.starts++
	go func() {
		err := cmd.Wait()
		f.Close()
		c.mu.Lock()
		c.exitErr, c.exitedAt = err, time.Now()
		stopping := c.stopping
		c.mu.Unlock()
		close(done)
		if !stopping && c.onExit != nil {
			c.onExit(c, err)
		}
	}()
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pid returns the running process's id, or 0.
func (c *child) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || isClosed(c.done) {
		return 0
	}
	return c.cmd.Process.Pid
}

// running reports whether the process is alive.
func (c *child) running() bool { return c.pid() != 0 }

// kill sends SIGKILL, as a crash would, and waits until it is gone.
func (c *child) kill() error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return fmt.Errorf("%s is not running", c.name)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) still runs 5s after SIGKILL", c.name, cmd.Process.Pid)
	}
}

// stop sends SIGTERM and, after grace, SIGKILL; it returns once the
// process is gone.
func (c *child) stop(grace time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.stopping = true
	c.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// exitStatus describes how the last process ended ("" while it runs).
func (c *child) exitStatus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || !isClosed(c.done) {
		return ""
	}
	return describeExit(c.exitErr)
}

func describeExit(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + unix.SignalName(ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return err.Error()
}
