package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/balance"
	"fulcrum/internal/edge"

	"golang.org/x/sys/unix"
)

// tcpProxy runs a TCP frontend on loopback in front of server addresses;
// it returns the frontend, its backend and its address.
func tcpProxy(t *testing.T, clientTimeout, serverTimeout time.Duration, addrs ...string) (*TCPFrontend, *Backend, string) {
	t.Helper()
	bs := make([]balance.Server, len(addrs))
	ss := make([]*Server, len(addrs))
	for i, a := range addrs {
		bs[i] = balance.Server{Weight: 1}
		ss[i] = NewServer("s", a, i)
	}
	bal, err := balance.New("roundrobin", bs)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBackend("b", bal, ss, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: serverTimeout})
	f := NewTCPFrontend("t", &TCPConfig{Backend: b, TimeoutClient: clientTimeout})
	return f, b, serve(t, f)
}

// relayFunc is a function as a relayOwner.
type relayFunc func(in, out int64)

func (f relayFunc) relayed(in, out int64, err error) { f(in, out) }

// tcpServer accepts connections on loopback and runs handle on each; it
// returns the address.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// echoServer answers whatever each connection reads with answer(it).
func echoServer(t *testing.T, answer func([]byte) []byte) string {
	return tcpServer(t, func(c net.Conn) {
		buf := make([]byte, 256)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(answer(buf[:n]))
		}
	})
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Half-closes are relayed both ways: the client's end of its request
// reaches the server, which answers after it; and a server that says its
// piece and half-closes first still hears what the client sends after.
func TestRelayHalfClose(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		srv := tcpServer(t, func(c net.Conn) {
			b, _ := io.ReadAll(c) // until the client's half-close
			c.Write(bytes.ToUpper(b))
		})
		f, b, addr := tcpProxy(t, 5*time.Second, 5*time.Second, srv)
		c := dialTCP(t, addr)
		c.Write([]byte("hello "))
		c.Write([]byte("world"))
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "HELLO WORLD" {
			t.Fatalf("reply = %q, %v; want HELLO WORLD then EOF", got, err)
		}
		waitFor(t, "the frontend to count the connection out", func() bool { return f.ActiveConns() == 0 })
		if in, out := f.Stats.BytesIn.Load(), f.Stats.BytesOut.Load(); in != 11 || out != 11 {
			t.Errorf("bytes in/out = %d/%d, want 11/11", in, out)
		}
		if a := b.Servers()[0].Active.Load(); a != 0 {
			t.Errorf("server active = %d after the connection ended, want 0", a)
		}
	})
	t.Run("server first", func(t *testing.T) {
		got := make(chan string, 1)
		srv := tcpServer(t, func(c net.Conn) {
			c.Write([]byte("greeting"))
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			got <- string(b)
		})
		_, _, addr := tcpProxy(t, 5*time.Second, 5*time.Second, srv)
		c := dialTCP(t, addr)
		g, err := io.ReadAll(c) // the greeting, then EOF: the server's half-close
		if err != nil || string(g) != "greeting" {
			t.Fatalf("read %q, %v; want greeting then EOF", g, err)
		}
		if _, err := c.Write([]byte("still talking")); err != nil {
			t.Fatalf("write after the server's half-close: %v", err)
		}
		c.CloseWrite()
		select {
		case s := <-got:
			if s != "still talking" {
				t.Errorf("server heard %q, want still talking", s)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the server never heard the client's end")
		}
	})
}

// Urgent data is relayed as the stream around it, both ways, though a read
// stops at its mark and fails at it while its thread has a signal pending
// (see TestPollConnDataBeyondUrgentMark). The urgent byte itself is out of
// band and not relayed.
func TestRelayUrgentData(t *testing.T) {
	signalThreads(t)
	srv := tcpServer(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "abdef" {
			t.Errorf("server read %q, %v; want abdef", b, err)
			return
		}
		sendUrgent(t, c, "ghi")
		c.Write([]byte("jkl"))
	})
	_, _, addr := tcpProxy(t, 5*time.Second, 5*time.Second, srv)
	for i := range 30 {
		c := dialTCP(t, addr)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		sendUrgent(t, c, "abc")
		c.Write([]byte("def"))
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ghjkl" {
			t.Fatalf("connection %d: client read %q, %v; want ghjkl", i, b, err)
		}
		c.Close()
	}
}

// sendUrgent sends s on c with its last byte urgent (MSG_OOB).
func sendUrgent(t *testing.T, c net.Conn, s string) {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err == nil {
		rc.Write(func(fd uintptr) bool {
			err = unix.Send(int(fd), []byte(s), unix.MSG_OOB)
			return true
		})
	}
	if err != nil {
		t.Errorf("sending %q urgent: %v", s, err)
	}
}

// A TCP frontend whose backend sends the PROXY header names the client to
// the server before the client's first byte, in both versions.
func TestRelaySendProxy(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		srv := tcpServer(t, func(c net.Conn) {
			br := bufio.NewReader(c)
			src, _, err := edge.ReadProxyHeader(br)
			if err != nil {
				t.Errorf("%s: %v", v, err)
				return
			}
			line, _ := br.ReadString('\n')
			c.Write([]byte(src.Addr().String() + " said " + line))
		})
		bal, _ := balance.New("roundrobin", []balance.Server{{Weight: 1}})
		b := NewBackend("b", bal, []*Server{NewServer("s", srv, 0)}, BackendConfig{ConnectTimeout: time.Second, ServerTimeout: 5 * time.Second, SendProxy: v})
		addr := serve(t, NewTCPFrontend("t", &TCPConfig{Backend: b, TimeoutClient: 5 * time.Second}))
		c := dialTCP(t, addr)
		c.Write([]byte("hello\n"))
		got, err := io.ReadAll(c)
		if want := "127.0.0.1 said hello\n"; string(got) != want {
			t.Errorf("%s: client read %q, %v; want %q", v, got, err, want)
		}
	}
}

// Large streams in both directions at once, with a client that reads
// slowly at first (so the relay must hold back and resume), arrive whole
// and in order.
func TestRelayBothWaysWithBackpressure(t *testing.T) {
	const size = 32 << 20
	up := make(chan [32]byte, 1)
	srv := tcpServer(t, func(c net.Conn) {
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			io.CopyN(c, rand.NewChaCha8([32]byte{2}), size)
			c.(*net.TCPConn).CloseWrite()
		}()
		h := sha256.New()
		io.Copy(h, c)
		up <- [32]byte(h.Sum(nil))
		<-sent
	})
	f, _, addr := tcpProxy(t, 10*time.Second, 10*time.Second, srv)
	c := dialTCP(t, addr)
	werr := make(chan error, 1)
	go func() {
		_, err := io.CopyN(c, rand.NewChaCha8([32]byte{1}), size)
		c.CloseWrite()
		werr <- err
	}()
	time.Sleep(300 * time.Millisecond) // the download backs up meanwhile
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes, %v; want %d", n, err, size)
	}
	if err := <-werr; err != nil {
		t.Fatalf("upload: %v", err)
	}
	if got, want := [32]byte(h.Sum(nil)), sum(rand.NewChaCha8([32]byte{2}), size); got != want {
		t.Error("download arrived changed")
	}
	if got, want := <-up, sum(rand.NewChaCha8([32]byte{1}), size); got != want {
		t.Error("upload arrived changed")
	}
	waitFor(t, "the frontend to count the connection out", func() bool { return f.ActiveConns() == 0 })
	if in, out := f.Stats.BytesIn.Load(), f.Stats.BytesOut.Load(); in != size || out != size {
		t.Errorf("bytes in/out = %d/%d, want %d each", in, out, size)
	}
}

func sum(r io.Reader, n int64) [32]byte {
	h := sha256.New()
	io.CopyN(h, r, n)
	return [32]byte(h.Sum(nil))
}

// A side silent beyond its timeout closes the pair; traffic in either
// direction keeps it open.
func TestRelayIdleTimeout(t *testing.T) {
	srv := echoServer(t, func(b []byte) []byte { return b })
	const timeout = 300 * time.Millisecond
	_, _, addr := tcpProxy(t, timeout, 5*time.Second, srv)

	t.Run("silent", func(t *testing.T) {
		// From before the dial: the proxy may take the connection in
		// before this goroutine runs again after the dial.
		start := time.Now()
		c := dialTCP(t, addr)
		n, err := c.Read(make([]byte, 1))
		took := time.Since(start)
		if n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("read = %d, %v; want the connection closed", n, err)
		}
		if took < timeout || took > timeout+relaySweep+500*time.Millisecond {
			t.Errorf("closed after %v, want between %v and %v", took, timeout, timeout+relaySweep+500*time.Millisecond)
		}
	})
	t.Run("talking", func(t *testing.T) {
		c := dialTCP(t, addr)
		buf := make([]byte, 4)
		for i := 0; i < 8; i++ { // 8 × 100 ms: well past the timeout
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatalf("echo %d: %v (closed while active)", i, err)
			}
			time.Sleep(timeout / 3)
		}
	})
}

// A server that resets its connection ends the client's too, and the
// connection is counted out of the frontend and the server.
func TestRelayServerReset(t *testing.T) {
	srv := tcpServer(t, func(c net.Conn) {
		c.Read(make([]byte, 16))
		c.(*net.TCPConn).SetLinger(0)
	})
	f, b, addr := tcpProxy(t, 5*time.Second, 5*time.Second, srv)
	c := dialTCP(t, addr)
	c.Write([]byte("hi"))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Logf("client saw %v", err) // a reset or an EOF: either ends it
	} else if err != nil {
		t.Fatal("the client's connection stayed open after the server's reset")
	}
	waitFor(t, "the frontend to count the connection out", func() bool { return f.ActiveConns() == 0 })
	if a := b.Servers()[0].Active.Load(); a != 0 {
		t.Errorf("server active = %d, want 0", a)
	}
}

// Shutdown waits for relayed connections until its context ends, then
// closes them; the server sees its connection end.
func TestRelayShutdown(t *testing.T) {
	heard, ended := make(chan struct{}), make(chan struct{})
	srv := tcpServer(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		close(heard)
		io.Copy(io.Discard, c)
		close(ended)
	})
	f, _, addr := tcpProxy(t, time.Minute, time.Minute, srv)
	c := dialTCP(t, addr)
	c.Write([]byte("x"))
	<-heard
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := f.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline (the connection was open)", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client: %v, want EOF", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's connection stayed open")
	}
	waitFor(t, "the frontend to count the connection out", func() bool { return f.ActiveConns() == 0 })
	if in := f.Stats.BytesIn.Load(); in != 1 {
		t.Errorf("bytes in = %d, want 1", in)
	}
}

// Many connections at once, each a conversation of small messages: every
// reply comes back to its own client, and afterwards no connection or
// descriptor is left.
func TestRelayManyConversations(t *testing.T) {
	srv := echoServer(t, bytes.ToUpper)
	f, _, addr := tcpProxy(t, 10*time.Second, 10*time.Second, srv)
	// One conversation first: the relay loops' own descriptors are made
	// at the first use.
	c := dialTCP(t, addr)
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	c.Close()
	waitFor(t, "the first connection to be counted out", func() bool { return f.ActiveConns() == 0 })
	fds := openFDs(t)
	const conns, msgs = 64, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 64)
			for j := range msgs {
				msg := []byte("conn-" + string(rune('a'+i%26)) + "-" + string(rune('a'+j%26)))
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
					errs <- err
					return
				}
				if want := bytes.ToUpper(msg); !bytes.Equal(buf[:len(msg)], want) {
					errs <- errors.New("reply " + string(buf[:len(msg)]) + ", want " + string(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "every connection to be counted out", func() bool { return f.ActiveConns() == 0 })
	waitFor(t, "the relay's descriptors to be closed", func() bool { return openFDs(t) <= fds })
}

func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// A side the relay holds back, because its peer is slow to take what it
// sent, is not silent: its short timeout does not close the pair, in
// either direction.
func TestRelayBackpressureIsNotIdleness(t *testing.T) {
	const size = 32 << 20
	t.Run("upload to a server that pauses", func(t *testing.T) {
		got := make(chan int64, 1)
		srv := tcpServer(t, func(c net.Conn) {
			time.Sleep(1500 * time.Millisecond) // reads nothing meanwhile
			n, _ := io.Copy(io.Discard, c)
			got <- n
		})
		_, _, addr := tcpProxy(t, 300*time.Millisecond, 10*time.Second, srv)
		c := dialTCP(t, addr)
		if _, err := io.CopyN(c, rand.NewChaCha8([32]byte{1}), size); err != nil {
			t.Fatalf("upload: %v (the client's timeout ran while the server held it back)", err)
		}
		c.CloseWrite()
		select {
		case n := <-got:
			if n != size {
				t.Errorf("server got %d bytes, want %d", n, size)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server never got the end of the upload")
		}
	})
	t.Run("download to a client that pauses", func(t *testing.T) {
		srv := tcpServer(t, func(c net.Conn) {
			io.CopyN(c, rand.NewChaCha8([32]byte{2}), size)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
		})
		_, _, addr := tcpProxy(t, 10*time.Second, 300*time.Millisecond, srv)
		c := dialTCP(t, addr)
		time.Sleep(1500 * time.Millisecond) // reads nothing meanwhile
		if n, err := io.Copy(io.Discard, c); err != nil || n != size {
			t.Fatalf("downloaded %d bytes, %v; want %d (the server's timeout ran while the client held it back)", n, err, size)
		}
	})
}

// A client that has sent its request and half-closed has nothing more to
// say: its timeout does not cut a slow answer (the server's does).
func TestRelayHalfClosedSideIsNotTimed(t *testing.T) {
	srv := tcpServer(t, func(c net.Conn) {
		io.ReadAll(c)
		time.Sleep(time.Second)
		c.Write([]byte("answer"))
	})
	_, _, addr := tcpProxy(t, 300*time.Millisecond, 5*time.Second, srv)
	c := dialTCP(t, addr)
	c.Write([]byte("question"))
	c.CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "answer" {
		t.Fatalf("got %q, %v; want answer", got, err)
	}
}

// A client that half-closed and then resets ends the pair even when the
// server stays silent and open and no timeout is set.
func TestRelayResetAfterHalfClose(t *testing.T) {
	release := make(chan struct{})
	srv := tcpServer(t, func(c net.Conn) {
		io.ReadAll(c) // until the client's half-close
		<-release     // then silent and open
	})
	t.Cleanup(func() { close(release) }) // before tcpServer's own cleanup
	f, _, addr := tcpProxy(t, 0, 0, srv)
	c := dialTCP(t, addr)
	c.Write([]byte("bye"))
	c.CloseWrite()
	time.Sleep(100 * time.Millisecond)
	c.SetLinger(0)
	c.Close() // a reset
	waitFor(t, "the pair to end after the client's reset", func() bool { return f.ActiveConns() == 0 })
}

// What a client has queued when its relay starts (its data and its end,
// or its reset) reaches the server, or ends the pair.
func TestRelayStartsWithWhatIsQueued(t *testing.T) {
	for _, reset := range []bool{false, true} {
		got := make(chan string, 1)
		srv := tcpServer(t, func(c net.Conn) {
			b, _ := io.ReadAll(c)
			got <- string(b)
		})
		cl, accepted := queuedClient(t, "hello", reset)
		sfd, err := dialSocket(NewServer("s", srv, 0), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		finished := make(chan int64, 1)
		if _, err := startRelay(accepted, sfd, 5*time.Second, 5*time.Second, relayFunc(func(in, out int64) { finished <- in })); err != nil {
			t.Fatal(err)
		}
		if reset {
			await(t, finished, "the pair did not end after the client's reset")
			continue
		}
		if s := await(t, got, "the server never got the client's end"); s != "hello" {
			t.Errorf("server got %q, want hello", s)
		}
		if b, err := io.ReadAll(cl); err != nil || len(b) != 0 {
			t.Errorf("client read %q, %v; want the server's end", b, err)
		}
		if in := await(t, finished, "the pair did not end"); in != 5 {
			t.Errorf("relayed %d bytes from the client, want 5", in)
		}
	}
}

// More queued by the client than a slow server takes as the relay starts
// waits for the server's room, then goes through whole.
func TestRelayStartsWithMoreThanTheServerTakes(t *testing.T) {
	const size = 300 << 10
	start := make(chan struct{})
	got := make(chan int, 1)
	srvAddr := tcpServer(t, func(c net.Conn) {
		<-start
		b, _ := io.ReadAll(c)
		got <- len(b)
	})
	// The server takes little before it reads; the client's side holds
	// everything it sends.
	setBuf := func(opt, size int) func(string, string, syscall.RawConn) error {
		return func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, size) })
		}
	}
	lc := net.ListenConfig{Control: setBuf(unix.SO_RCVBUF, 1<<20)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: setBuf(unix.SO_SNDBUF, 1<<20)}
	cl, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	cl.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := cl.Write(make([]byte, size)); err != nil {
		t.Fatalf("the client could not queue %d bytes: %v", size, err)
	}
	cl.(*net.TCPConn).CloseWrite()

	sfd, err := dialSocket(NewServer("s", srvAddr, 0), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(sfd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	finished := make(chan int64, 1)
	p, err := startRelay(accepted, sfd, 5*time.Second, 5*time.Second, relayFunc(func(in, out int64) { finished <- in }))
	if err != nil {
		t.Fatal(err)
	}
	p.loop.mu.Lock()
	waiting := p.server.pend != nil
	p.loop.mu.Unlock()
	if !waiting {
		t.Fatal("the server took everything at once: the test proves nothing")
	}
	close(start)
	if n := await(t, got, "the server never got the client's end"); n != size {
		t.Errorf("server got %d bytes, want %d", n, size)
	}
}

// A relay sends what the client has queued as it starts, before its loop
// next runs: here the loop never does.
func TestRelaySendsQueuedDataAtOnce(t *testing.T) {
	l, err := openRelayLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.ep.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, accepted := queuedClient(t, "hello", false)
	sfd, err := dialSocket(NewServer("s", ln.Addr().String(), 0), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.relay(accepted, sfd, 0, 0, relayFunc(func(in, out int64) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.mu.Lock(); l.close(p); l.mu.Unlock() }()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "hello" {
		t.Errorf("server got %q, %v; want hello", b, err)
	}
}

// queuedClient returns a client connection that has sent data and then
// half-closed (or reset) it, and the server's end of it, on which all that
// is queued.
func queuedClient(t *testing.T, data string, reset bool) (client *net.TCPConn, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client = dialTCP(t, ln.Addr().String())
	accepted, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	client.Write([]byte(data))
	if reset {
		client.SetLinger(0)
		client.Close()
	} else {
		client.CloseWrite()
	}
	time.Sleep(20 * time.Millisecond) // all of it queued
	return client, accepted
}

// Connections that wait in the listener's queue while the frontend is at
// its limit are relayed like any other once it has room. (They are
// accepted off the listener's socket (queuedAcceptor), which
// TestAcceptQueued tests on its own.)
func TestRelayQueuedConnections(t *testing.T) {
	srv := echoServer(t, bytes.ToUpper)
	f, _, addr := tcpProxy(t, 5*time.Second, 5*time.Second, srv)
	cfg := *f.cfg.Load()
	cfg.MaxConns = 1
	f.Configure(&cfg)
	first := dialTCP(t, addr)
	first.Write([]byte("a"))
	io.ReadFull(first, make([]byte, 1))
	var queued []*net.TCPConn
	for range 3 {
		c := dialTCP(t, addr)
		c.Write([]byte("queued"))
		queued = append(queued, c)
	}
	time.Sleep(50 * time.Millisecond)
	first.Close() // room for the queue
	for i, c := range queued {
		b := make([]byte, 6)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "QUEUED" {
			t.Errorf("queued connection %d: read %q, %v", i, b, err)
		}
		c.Close()
	}
}

// Running out of descriptors when the relay loops start fails that
// connection only: the next start succeeds.
func TestRelayLoopsStartAfterAFailure(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	free := 0 // the lowest free descriptor: the next one opened
	for {
		if _, err := os.Stat("/proc/self/fd/" + strconv.Itoa(free)); err != nil {
			break
		}
		free++
	}
	low := lim
	low.Cur = uint64(free)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var rp relayPool
	_, err := rp.get()
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if err == nil {
		t.Fatal("get() with no descriptor to spare succeeded")
	}
	l, err := rp.get()
	if err != nil || l == nil {
		t.Fatalf("get() after the limit was lifted = %v, %v; want a loop", l, err)
	}
	for _, l := range *rp.loops.Load() {
		l.ep.close()
	}
}

// A server's end is known from its FIN event: once the kernel has reported
// it (EPOLLRDHUP), all the server sent is queued, so a short read drains it
// and the relay passes the end on without a read to learn it. The event is
// told here without a FIN behind it, so a relay that read again would find
// nothing (EAGAIN) and pass no end on. An error reported with it is not
// trusted so: the relay reads on to learn the error.
func TestRelayTakesTheEndFromTheEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   uint32
		end  bool
	}{
		{"fin", unix.EPOLLIN | unix.EPOLLRDHUP, true},
		{"fin and error", unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLERR, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, p, c, s := handDrivenPair(t)
			s.Write([]byte("answer"))
			awaitQueued(t, p.server.fd, 6, false)
			l.mu.Lock()
			l.event(&p.server, tc.ev)
			l.mu.Unlock()
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			got, err := io.ReadAll(c)
			if string(got) != "answer" {
				t.Errorf("client got %q, want answer", got)
			}
			if ended := err == nil; ended != tc.end {
				t.Errorf("client's read ended with %v; want the end passed on: %v", err, tc.end)
			}
		})
	}
}

// A server that answers and closes before the relay reads it gets its
// answer and its end to the client in one packet, as it sent them: the
// client has one segment to take in and acknowledge, not two.
func TestRelaySendsTheEndWithTheLastData(t *testing.T) {
	l, p, c, s := handDrivenPair(t)
	s.Write([]byte("answer"))
	s.(*net.TCPConn).CloseWrite()
	awaitQueued(t, p.server.fd, 6, true)
	segsIn := func() uint32 {
		t.Helper()
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var info *unix.TCPInfo
		raw.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
		if err != nil {
			t.Fatal(err)
		}
		return info.Segs_in
	}
	before := segsIn()
	l.mu.Lock()
	l.event(&p.server, unix.EPOLLIN|unix.EPOLLRDHUP)
	l.mu.Unlock()
	c.SetReadDeadline(time.Now().Add(time.Second))
	got, err := io.ReadAll(c)
	if string(got) != "answer" || err != nil {
		t.Fatalf("client got %q, %v; want answer and its end", got, err)
	}
	if n := segsIn() - before; n != 1 {
		t.Errorf("the answer and the end reached the client in %d segments, want 1", n)
	}
}

// A pair taken in by an idle loop is not watched for room to write until a
// write blocks: its sockets, writable from the start, report nothing, so
// the loop has nothing to wake for. (Writes that block and resume when
// room is made: TestRelayBothWaysWithBackpressure.)
func TestRelayWatchesForRoomOnlyOnceBlocked(t *testing.T) {
	l, _, _, _ := handDrivenPair(t)
	evs := make([]unix.EpollEvent, 8)
	n, err := epollReady(l.ep.fd, evs)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[:n] {
		t.Errorf("socket %d of an idle pair reported %#x", ev.Fd, ev.Events)
	}
}

// Once a write blocks, its socket is watched for room, and reports it when
// the far end reads.
func TestRelayWatchesForRoomOnceAWriteBlocks(t *testing.T) {
	l, p, c, s := handDrivenPair(t)
	// Small buffers toward the server, so that a write blocks soon.
	if err := unix.SetsockoptInt(p.server.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	s.(*net.TCPConn).SetReadBuffer(4096)
	go c.Write(make([]byte, 4<<20)) // ends when the test closes c
	for i := 0; p.server.pend == nil; i++ {
		if i == 100 {
			t.Fatal("no write to the server blocked")
		}
		awaitQueued(t, p.client.fd, 1, false)
		l.mu.Lock()
		l.event(&p.client, unix.EPOLLIN)
		l.mu.Unlock()
	}
	roomReported := func() bool {
		evs := make([]unix.EpollEvent, 8)
		n, err := epollReady(l.ep.fd, evs)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs[:n] {
			if int(ev.Fd) == p.server.fd && ev.Events&unix.EPOLLOUT != 0 {
				return true
			}
		}
		return false
	}
	roomReported() // whatever came before the server read
	go io.Copy(io.Discard, s)
	deadline := time.Now().Add(5 * time.Second)
	for !roomReported() {
		if time.Now().After(deadline) {
			t.Fatal("the server read, and its socket at the relay never reported room")
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitQueued waits until socket fd has n bytes to read and, with fin, the
// peer's end.
func awaitQueued(t *testing.T, fd, n int, fin bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		unix.Poll(pfd, 0)
		if q >= n && (!fin || pfd[0].Revents&unix.POLLRDHUP != 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket has %d bytes queued (want %d), end seen: %v", q, n, pfd[0].Revents&unix.POLLRDHUP != 0)
		}
		time.Sleep(time.Millisecond)
	}
}

// handDrivenPair returns a relay loop that is not run, so that its events
// come from the test, relaying a pair between client c and server s.
func handDrivenPair(t *testing.T) (l *relayLoop, p *relayPair, c, s net.Conn) {
	t.Helper()
	l, err := openRelayLoop()
	if err != nil {
		t.Fatal(err)
	}
	c, accepted, sfd, s := relayFixture(t)
	if p, err = l.relay(accepted, sfd, 0, 0, relayFunc(func(in, out int64) {})); err != nil {
		l.ep.close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		l.close(p)
		l.mu.Unlock()
		l.ep.close()
	})
	return l, p, c, s
}

// relayFixture returns a client connection, its accepted end and a socket
// connected to a server, and the server's end: the makings of a pair.
func relayFixture(t *testing.T) (client net.Conn, accepted net.Conn, sfd int, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	client = dialTCP(t, front.Addr().String())
	if accepted, err = front.Accept(); err != nil {
		t.Fatal(err)
	}
	if sfd, err = dialSocket(NewServer("s", ln.Addr().String(), 0), time.Second); err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	server.SetDeadline(time.Now().Add(5 * time.Second))
	return client, accepted, sfd, server
}

// A pair handed to a loop busy with a batch of events does not wait for the
// batch to end: the loop takes it in at its next batch, and relays what
// the client had sent and what follows.
func TestRelayTakesPairsInWhileBusy(t *testing.T) {
	l, err := newRelayLoop()
	if err != nil {
		t.Fatal(err)
	}
	defer l.ep.close()
	client, accepted, sfd, server := relayFixture(t)
	client.Write([]byte("hello"))
	l.mu.Lock() // busy
	done := make(chan error, 1)
	go func() {
		_, err := l.relay(accepted, sfd, 0, 0, relayFunc(func(in, out int64) {}))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		l.mu.Unlock()
		t.Fatal("handing a pair to a busy loop waited for the loop")
	}
	l.mu.Unlock()
	b := make([]byte, 5)
	if _, err := io.ReadFull(server, b); err != nil || string(b) != "hello" {
		t.Fatalf("server got %q, %v; want hello", b, err)
	}
	server.Write([]byte("back"))
	if _, err := io.ReadFull(client, b[:4]); err != nil || string(b[:4]) != "back" {
		t.Fatalf("client got %q, %v; want back", b[:4], err)
	}
}

// A pair the loop cannot watch is handed back with the error, whether the
// loop was idle or busy: the caller still owns its sockets, and closes them.
func TestRelayHandsBackAPairItCannotWatch(t *testing.T) {
	for _, busy := range []bool{false, true} {
		l, err := openRelayLoop()
		if err != nil {
			t.Fatal(err)
		}
		_, accepted, sfd, _ := relayFixture(t)
		l.ep.close() // watching fails
		if busy {
			l.mu.Lock()
		}
		p, err := l.relay(accepted, sfd, 0, 0, relayFunc(func(in, out int64) {}))
		if busy {
			l.mu.Unlock()
		}
		if err == nil || p != nil {
			t.Errorf("busy %v: relay() = %v, %v; want an error", busy, p, err)
		}
		if len(l.arrivals) != 0 || len(l.sides) != 0 {
			t.Errorf("busy %v: the loop kept the pair: %d arrivals, %d sides", busy, len(l.arrivals), len(l.sides))
		}
	}
}
