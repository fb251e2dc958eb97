package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pollPair returns two ends of a loopback TCP connection, each a pollConn.
func pollPair(t *testing.T) (a, b *pollConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	a, ok1 := wrapConn(c).(*pollConn)
	b, ok2 := wrapConn(s).(*pollConn)
	if !ok1 || !ok2 {
		t.Fatal("wrapConn did not give a pollConn")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestPollConnBothWaysWithBackpressure sends 8 MiB each way at once,
// read late, so that writes wait for room and reads for data.
func TestPollConnBothWaysWithBackpressure(t *testing.T) {
	a, b := pollPair(t)
	const n = 8 << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	want := sum(bytes.NewReader(data), n)
	var wg sync.WaitGroup
	for _, c := range []*pollConn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Write(data); err != nil {
				t.Errorf("Write: %v", err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // both writers blocked on full buffers
	got := make([][32]byte, 2)
	for i, c := range []*pollConn{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = sum(c, n)
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != want {
			t.Errorf("side %d received other bytes than were sent", i)
		}
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the peer's CloseWrite = %d, %v; want 0, EOF", n, err)
	}
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPollConnReadDeadline(t *testing.T) {
	a, b := pollPair(t)
	buf := make([]byte, 16)

	start := time.Now()
	a.SetReadDeadline(start.Add(50 * time.Millisecond))
	if _, err := a.Read(buf); !isDeadline(err) {
		t.Fatalf("Read past its deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Errorf("the deadline of 50ms ended the read after %v", d)
	}
	// An expired deadline fails reads until it is moved.
	b.Write([]byte("x"))
	if _, err := a.Read(buf); !isDeadline(err) {
		t.Fatalf("Read with the deadline still passed: %v, want a timeout", err)
	}
	a.SetReadDeadline(time.Time{})
	if n, err := a.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read with no deadline = %d, %v; want 1, nil", n, err)
	}

	// A deadline moved later before it passes does not fire at the first.
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		time.Sleep(200 * time.Millisecond)
		b.Write([]byte("y"))
	}()
	if n, err := a.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read after the deadline was moved later = %d, %v; want 1, nil", n, err)
	}

	// Setting a deadline that has passed interrupts a waiting read.
	a.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	a.SetReadDeadline(time.Now())
	if err := await(t, done, "a passed deadline did not interrupt the waiting read"); !isDeadline(err) {
		t.Errorf("interrupted Read: %v, want a timeout", err)
	}

	// A nearer deadline, set while a read waits under a later one, ends it.
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() {
		_, err := a.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := await(t, done, "a nearer deadline did not end the waiting read"); !isDeadline(err) {
		t.Errorf("Read under the nearer deadline: %v, want a timeout", err)
	}
}

// await returns what ch gives, failing the test with stuck if that takes
// more than 2 s.
func await[T any](t *testing.T, ch <-chan T, stuck string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(2 * time.Second):
		t.Fatal(stuck)
		panic("unreachable")
	}
}

func TestPollConnWriteDeadline(t *testing.T) {
	a, _ := pollPair(t)
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	// The peer does not read: the socket buffers fill, then a write waits.
	chunk := make([]byte, 1<<20)
	var err error
	for i := 0; i < 256 && err == nil; i++ {
		var n int
		n, err = a.Write(chunk)
		if err != nil && (n < 0 || n >= len(chunk)) {
			t.Errorf("Write stopped by its deadline wrote %d bytes of %d", n, len(chunk))
		}
	}
	if !isDeadline(err) {
		t.Fatalf("Write to a peer that does not read: %v, want a timeout", err)
	}
}

// TestPollConnCloseInterrupts closes a connection while one goroutine
// waits to read it and another to write it.
func TestPollConnCloseInterrupts(t *testing.T) {
	a, _ := pollPair(t)
	errs := make(chan error, 2)
	go func() {
		_, err := a.Read(make([]byte, 16))
		errs <- err
	}()
	go func() {
		chunk := make([]byte, 1<<20)
		for {
			if _, err := a.Write(chunk); err != nil {
				errs <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := await(t, errs, "Close did not interrupt a waiting read or write"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read or write interrupted by Close: %v, want net.ErrClosed", err)
		}
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
}

// TestPollConnsLeaveNothing opens and closes many connections: none stays
// in the poller or holds a descriptor.
func TestPollConnsLeaveNothing(t *testing.T) {
	pollPair(t) // the poller and its descriptors exist before counting
	connPoller.mu.Lock()
	before := len(connPoller.conns)
	connPoller.mu.Unlock()
	fds := openFDs(t)
	for range 50 {
		a, b := pollPair(t)
		a.Write([]byte("ping"))
		io.ReadFull(b, make([]byte, 4))
		a.Close()
		b.Close()
	}
	connPoller.mu.Lock()
	after := len(connPoller.conns)
	connPoller.mu.Unlock()
	if after != before {
		t.Errorf("connections in the poller: %d before, %d after closing all", before, after)
	}
	if got := openFDs(t); got > fds {
		t.Errorf("open descriptors: %d before, %d after", fds, got)
	}
}

// TestPollConnEndBehindData: the peer's last data and its end of stream
// arrive together, under one readiness event; the read after the data
// must find the end rather than wait for another event.
func TestPollConnEndBehindData(t *testing.T) {
	for _, wait := range []bool{false, true} {
		a, b := pollPair(t)
		b.Write([]byte("last"))
		b.CloseWrite()
		if wait {
			time.Sleep(50 * time.Millisecond) // the poller has seen both
		}
		done := make(chan string, 1)
		go func() {
			got, err := io.ReadAll(a)
			done <- fmt.Sprintf("%q, %v", got, err)
		}()
		stuck := fmt.Sprintf("the read after the last data waited for an event that never comes (poller had seen both: %v)", wait)
		if got, want := await(t, done, stuck), `"last", <nil>`; got != want {
			t.Errorf("ReadAll = %s, want %s", got, want)
		}
	}
}

// TestPollConnDataBeyondUrgentMark: a read stops at the urgent mark, and
// one that starts there fails with EAGAIN while its thread has a signal
// pending; neither may leave the data queued behind the mark unread. The
// threads are signalled throughout, as Go's runtime does to preempt them.
func TestPollConnDataBeyondUrgentMark(t *testing.T) {
	signalThreads(t)
	for i := range 50 {
		a, b := pollPair(t)
		if err := unix.Send(b.fd, []byte("abc"), unix.MSG_OOB); err != nil {
			t.Fatal(err)
		}
		b.Write([]byte("def"))
		time.Sleep(5 * time.Millisecond) // all of it queued, and the poller has seen it
		a.SetReadDeadline(time.Now().Add(2 * time.Second))
		// The urgent byte itself is out of band: it is not in the stream.
		var got []byte
		buf := make([]byte, 64)
		for string(got) != "abdef" {
			n, err := a.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("connection %d, after %q: Read: %v; want the rest of \"abdef\"", i, got, err)
			}
		}
		a.Close()
		b.Close()
	}
}

// signalThreads sends SIGURG, which Go's runtime takes as a request to
// preempt, to every thread of the process over and over until the test
// ends.
func signalThreads(t *testing.T) {
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		pid := os.Getpid()
		for {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				t.Error(err)
				return
			}
			for range 100 {
				for _, task := range tasks {
					if tid, err := strconv.Atoi(task.Name()); err == nil {
						unix.Tgkill(pid, tid, unix.SIGURG)
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}
	}()
}

// TestPollConnNoDelay: accepted and dialled connections send small
// messages at once (TCP_NODELAY), which nothing in the proxy sets itself.
func TestPollConnNoDelay(t *testing.T) {
	a, b := pollPair(t)
	for i, c := range []*pollConn{a, b} {
		var v int
		var err error
		v, err = unix.GetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		if err != nil || v == 0 {
			t.Errorf("side %d: TCP_NODELAY = %d, %v; want it set", i, v, err)
		}
	}
}

// TestPollConnAddresses: both ends of a connection name each other, and a
// socket handed off and adopted again keeps its addresses and its data.
func TestPollConnAddresses(t *testing.T) {
	a, b := pollPair(t)
	if a.LocalAddr().String() != b.RemoteAddr().String() || a.RemoteAddr().String() != b.LocalAddr().String() {
		t.Fatalf("ends disagree: %v→%v and %v→%v", a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr())
	}
	fd, err := b.handOff()
	if err != nil {
		t.Fatal(err)
	}
	la, ra := localAddrPort(b), remoteAddrPort(b)
	b.Close()
	c := adoptSocket(fd, la, ra)
	defer c.Close()
	if c.RemoteAddr().String() != a.LocalAddr().String() {
		t.Errorf("RemoteAddr() of the socket taken back = %v, want %v", c.RemoteAddr(), a.LocalAddr())
	}
	a.Write([]byte("x"))
	if n, err := c.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Errorf("Read from the socket taken back = %d, %v", n, err)
	}
}
