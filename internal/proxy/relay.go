package proxy

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TCP mode relays bytes in event loops, as HAProxy does, rather than in a
// goroutine per direction: a goroutine blocked in a read costs a wasted
// read (EAGAIN) and a park and wake-up for every message, which at small
// messages is a third of the work. A loop learns from its epoll set which
// sockets are readable and reads each only then; a short read means the
// socket is drained until its next edge (but see socketEvents for urgent
// data), so no read is wasted either.
//
// Each loop is one goroutine waiting on its epoll set through the Go
// network poller. There is one loop per two of GOMAXPROCS (at least one),
// shared by every TCP frontend; connection pairs are dealt to them in turn.
// A loop is mostly system calls, whose other half (the peer's side of TCP
// on loopback, the wake-ups) runs beside it: on two cores one loop beat two
// on every measure (p99 1.6–2.8 ms against 5.5–6.5 ms, and 10 µs of CPU
// per request against 12), the second loop waiting to be woken on a P.

// relayBufSize is the size of a loop's read buffer, and the most that
// waits in memory for a slow reader per direction (as HAProxy's bufsize).
const relayBufSize = 16 << 10

// relaySweep is how often a loop checks its connections' idle timeouts: a
// silent connection closes between its timeout and this much later.
const relaySweep = 100 * time.Millisecond

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// relayLoop relays connection pairs whose sockets are in its epoll set.
type relayLoop struct {
	mu    sync.Mutex // guards everything below
	ep    *epollSet
	sides map[int32]*relaySide
	buf   []byte // reads, outside a batch of events
	// Within a batch of events, what is read waits in batch until the
	// batch's end, and is written then (see pump): each peer gets one
	// burst per batch rather than a write, and maybe a wake-up, per
	// event.
	batching  bool
	batch     []byte
	used      int // of batch
	out       []relayOut
	epoch     time.Time
	now       time.Duration // the loop's clock (since epoch), read once per batch
	ended     []*relayPair  // closed, for the finisher (finishEnded)
	finishing chan struct{} // wakes the finisher: a buffer of one
	timer     *time.Timer   // the idle sweep, armed while there are connections
	swept     bool          // timer is armed
	// failed: the epoll set failed, and the loop takes no more pairs. It
	// is set holding both mu and amu, so either lock reads it.
	failed error

	// Pairs handed to the loop while it was busy, for it to take in at the
	// start of its next batch (see add). The loop swaps arrivals with
	// taken, its storage for the last ones it took in, so that neither
	// grows anew.
	amu      sync.Mutex
	arrivals []*relayPair
	taken    []*relayPair // under mu
}

// relayOut is data read in a batch of events, to be written to dst at its
// end.
type relayOut struct {
	dst  *relaySide
	data []byte
}

// relayBatch is how much a loop reads in one batch of events before it
// writes each read at once, as outside a batch.
const relayBatch = 256 << 10

// relayPair is a client connection and its server connection.
type relayPair struct {
	loop           *relayLoop
	client, server relaySide
	closed         bool
	err            error // why the loop ended it, if it failed to take it in
	owner          relayOwner
}

// relayOwner is told that its pair has ended, with the bytes read from the
// client and from the server, and an error if the relay failed to start.
type relayOwner interface {
	relayed(in, out int64, err error)
}

// relaySide is one socket of a pair.
type relaySide struct {
	fd   int
	pair *relayPair
	peer *relaySide
	// pend holds bytes read from the peer that this socket has not taken
	// yet; while it does, the peer is not read.
	pend     *[]byte
	pendData []byte
	queued   bool // data read in this batch waits for it (see relayOut)
	readable bool // may have data: read until EAGAIN or a short read
	hup      bool // the other end shut its writing, or failed: read until EOF
	// fin: the other end shut its writing, and no error has been seen. All
	// it sent is queued then, so a short read drains it to its end, and
	// atEnd saves the read that would return EOF.
	fin, atEnd bool
	urgent     bool // it has had urgent data: see socketEvents
	eof        bool // read to its end (its peer's writing is shut)
	// room: the socket is watched for room to write (EPOLLOUT). A pair
	// taken in at once is not, until a write would block: the readiness a
	// writable socket reports as it is watched, and every later wake-up
	// for room, would be work for nothing, in the kernel as in the loop.
	// Once set, it stays.
	room bool
	// last is when the socket was last read or written, or the relay began
	// to wait on it again (loop clock), and timeout how long it may stay
	// silent while awaited (zero: forever).
	last, timeout time.Duration
	n             int64 // bytes read from the socket
}

// relayPool starts the relay loops at the first TCP connection; a failure
// to (say, out of descriptors) fails that connection, and the next one
// tries again.
type relayPool struct {
	mu    sync.Mutex
	loops atomic.Pointer[[]*relayLoop]
	next  atomic.Uint32
}

var relays relayPool

// get returns a loop for a new pair, dealing them in turn.
func (rp *relayPool) get() (*relayLoop, error) {
	loops := rp.loops.Load()
	if loops == nil {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if loops = rp.loops.Load(); loops == nil {
			var ls []*relayLoop
			for range max(1, runtime.GOMAXPROCS(0)/2) {
				l, err := newRelayLoop()
				if err != nil {
					for _, l := range ls {
						l.ep.close() // its goroutine ends
					}
					return nil, err
				}
				ls = append(ls, l)
			}
			loops = &ls
			rp.loops.Store(loops)
		}
	}
	return (*loops)[int(rp.next.Add(1))%len(*loops)], nil
}

// startRelay hands client and server (a connected socket, see dialSocket)
// to a relay loop: client's Go connection is closed, and the loop holds
// the sockets until both directions have ended, a socket fails, a side the
// relay waits on stays silent beyond its timeout (zero: none), or the pair
// is shut. Then it closes both and tells owner, in a goroutine of the
// loop's own, with the bytes read from the client and from the server. If it
// fails, server is closed.
func startRelay(client net.Conn, server int, clientTimeout, serverTimeout time.Duration, owner relayOwner) (*relayPair, error) {
	l, err := relays.get()
	if err != nil {
		closeSocket(server)
		return nil, err
	}
	return l.relay(client, server, clientTimeout, serverTimeout, owner)
}

// relay is startRelay on loop l.
func (l *relayLoop) relay(client net.Conn, server int, clientTimeout, serverTimeout time.Duration, owner relayOwner) (*relayPair, error) {
	cfd, err := detach(client)
	if err != nil {
		closeSocket(server)
		return nil, err
	}
	client.Close()
	p := &relayPair{loop: l, owner: owner}
	p.client = relaySide{fd: cfd, pair: p, peer: &p.server, timeout: clientTimeout}
	p.server = relaySide{fd: server, pair: p, peer: &p.client, timeout: serverTimeout}
	if err := l.add(p); err != nil {
		closeSocket(cfd)
		closeSocket(server)
		return nil, err
	}
	return p, nil
}

// detach returns a descriptor of its own for c's socket; the caller still
// closes c.
func detach(c net.Conn) (int, error) {
	if pc, ok := c.(*pollConn); ok {
		if pc.rch == nil { // never watched
			return pc.release()
		}
		return pc.handOff()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("relay: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	return dupSocket(rc)
}

func newRelayLoop() (*relayLoop, error) {
	l, err := openRelayLoop()
	if err == nil {
		go l.run()
		go l.finisher()
	}
	return l, err
}

// openRelayLoop makes a loop that does not run yet.
func openRelayLoop() (*relayLoop, error) {
	ep, err := newEpollSet("tcp-relay", 256)
	if err != nil {
		return nil, err
	}
	l := &relayLoop{ep: ep, sides: map[int32]*relaySide{}, buf: make([]byte, relayBufSize), batch: make([]byte, relayBatch), epoch: time.Now(),
		finishing: make(chan struct{}, 1)}
	l.timer = time.AfterFunc(time.Hour, l.sweep)
	l.timer.Stop()
	return l, nil
}

// add hands p to the loop. If the loop's lock is free (it is between
// batches), p is taken in here and now. If the loop is busy with a batch,
// p waits in l.arrivals, and the loop takes it in at the start of its next
// batch, woken by the readiness its sockets report when they are watched
// (a connected socket at least has room). Waiting for the batch to end
// instead, for l.mu, parks this goroutine, and readying it again wakes a
// thread for it when a processor is idle: at two processors, 30% of the
// proxy's futex calls were these.
func (l *relayLoop) add(p *relayPair) error {
	if l.mu.TryLock() {
		defer l.mu.Unlock()
		if l.failed != nil {
			return l.failed
		}
		if err := l.watch(p); err != nil {
			return err
		}
		l.now = time.Since(l.epoch)
		l.takeIn(p)
		return nil
	}
	l.amu.Lock()
	if err := l.failed; err != nil {
		l.amu.Unlock()
		return err
	}
	// Watched for room, its sockets report at once and wake the loop. Set
	// before the loop can take it in, and before they can report.
	p.client.room, p.server.room = true, true
	l.arrivals = append(l.arrivals, p)
	l.amu.Unlock()
	err := l.watch(p)
	if err == nil {
		return nil
	}
	l.amu.Lock()
	i := slices.Index(l.arrivals, p)
	if i >= 0 { // not taken in: the caller still owns the sockets
		l.arrivals = slices.Delete(l.arrivals, i, i+1)
	}
	l.amu.Unlock()
	if i >= 0 {
		return err
	}
	// Taken in already: the loop owns the sockets, and ends the pair.
	l.mu.Lock()
	if !p.closed {
		p.err = err
		l.close(p)
	}
	l.mu.Unlock()
	l.finishEnded()
	return nil
}

// watch adds p's sockets to the epoll set; if the second fails, the first
// is taken out again.
func (l *relayLoop) watch(p *relayPair) error {
	if err := l.watchSide(&p.client, false); err != nil {
		return err
	}
	if err := l.watchSide(&p.server, false); err != nil {
		epollCtl(l.ep.fd, unix.EPOLL_CTL_DEL, p.client.fd, nil)
		return err
	}
	return nil
}

// watchSide adds s to the epoll set, or with mod re-arms it, for what it
// is to be watched for.
func (l *relayLoop) watchSide(s *relaySide, mod bool) error {
	ev := uint32(socketEvents)
	if !s.room {
		ev &^= unix.EPOLLOUT
	}
	return l.ep.watchFor(s.fd, ev, 0, mod)
}

// takeIn starts relaying p, whose sockets are watched (l.mu held).
func (l *relayLoop) takeIn(p *relayPair) {
	for _, s := range []*relaySide{&p.client, &p.server} {
		s.last = l.now
		l.sides[int32(s.fd)] = s
	}
	if !l.swept {
		l.swept = true
		l.timer.Reset(relaySweep)
	}
	// What the client has sent already goes to the server now, on the
	// heels of the connection, rather than after the loop's next wait: by
	// then a server may have gone back to sleep, and waking it costs more
	// than the relaying. (Should that end the pair, the next sweep
	// finishes it.)
	p.client.readable = true
	l.pump(&p.client, &p.server)
}

// takeArrivals takes in the pairs that arrived while the loop was busy
// (l.mu held).
func (l *relayLoop) takeArrivals() {
	l.amu.Lock()
	ps := l.arrivals
	l.arrivals = l.taken[:0]
	l.amu.Unlock()
	for _, p := range ps {
		if !p.closed {
			l.takeIn(p)
		}
	}
	clear(ps)
	l.taken = ps
}

// run handles readiness until the epoll set fails, which it should not.
func (l *relayLoop) run() {
	var ended int
	handle := func(evs []unix.EpollEvent) {
		l.mu.Lock()
		l.now = time.Since(l.epoch)
		l.batching = true
		l.takeArrivals()
		for _, ev := range evs {
			if s := l.sides[ev.Fd]; s != nil {
				l.event(s, ev.Events)
			}
		}
		l.sendBatch()
		ended = len(l.ended)
		l.mu.Unlock()
	}
	for {
		ended = 0
		err := l.ep.wait(handle)
		if ended > 0 {
			l.finishEnded()
		}
		if err != nil {
			l.mu.Lock()
			l.amu.Lock()
			l.failed = err
			arrived := l.arrivals
			l.arrivals = nil
			l.amu.Unlock()
			for _, p := range arrived {
				l.close(p)
			}
			for _, s := range l.sides {
				l.close(s.pair)
			}
			l.mu.Unlock()
			l.finishEnded()
			l.ep.close()
			return
		}
	}
}

// event handles readiness of s.
func (l *relayLoop) event(s *relaySide, ev uint32) {
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		if s.eof && ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// Read to its end and now reset or closed: nothing more can
			// be written to it either, and its peer may be silent.
			l.close(s.pair)
			return
		}
		s.hup = true
		s.fin = ev&unix.EPOLLERR == 0 && (s.fin || ev&unix.EPOLLRDHUP != 0)
	}
	if ev&unix.EPOLLPRI != 0 {
		s.urgent = true
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
		s.readable = true
	}
	if s.pend != nil && ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.flush(s)
	}
	l.pump(s, s.peer)
	l.pump(s.peer, s)
}

// pump copies from src to dst while src has data and dst takes it. In a
// batch of events it reads once, into l.batch, for sendBatch to write.
func (l *relayLoop) pump(src, dst *relaySide) {
	p := src.pair
	for src.readable && !src.eof && dst.pend == nil && !dst.queued && !p.closed {
		buf := l.buf
		if l.batching {
			if rest := len(l.batch) - l.used; rest < relayBufSize {
				l.batching = false // full: the rest of the batch writes at once
			} else {
				buf = l.batch[l.used : l.used+relayBufSize]
			}
		}
		n, err := 0, error(nil)
		if !src.atEnd {
			n, err = recv(src.fd, buf)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			src.readable = false
			if src.urgent {
				l.watchSide(src, true) // see socketEvents
			}
			return
		case err != nil:
			l.close(p)
			return
		case n == 0:
			// Relay the half-close; the pair ends when both directions
			// have.
			src.eof, src.readable = true, false
			src.last = l.now
			if dst.eof {
				l.close(p)
				return
			}
			shutdownWrite(dst.fd)
			return
		}
		src.n += int64(n)
		src.last = l.now
		if n < len(buf) && !src.urgent {
			switch {
			case src.fin:
				src.atEnd = true
			case !src.hup:
				// A short read drained the socket: it is readable again
				// at its next edge.
				src.readable = false
			}
		}
		if l.batching {
			l.used += n
			l.out = append(l.out, relayOut{dst, buf[:n]})
			dst.queued = true
			return
		}
		if !l.deliver(dst, buf[:n]) {
			return
		}
	}
}

// deliver writes b to dst, keeping what it does not take for later;
// false when it did not take it all, or the write failed.
func (l *relayLoop) deliver(dst *relaySide, b []byte) bool {
	w := l.write(dst, b)
	if w < 0 {
		return false
	}
	if w < len(b) {
		dst.pend = relayBufs.Get().(*[]byte)
		dst.pendData = append((*dst.pend)[:0], b[w:]...)
		return false
	}
	return true
}

// sendBatch ends a batch of events: it writes what the batch read, in
// order, and goes on relaying from each source as outside a batch.
func (l *relayLoop) sendBatch() {
	l.batching = false
	for _, o := range l.out {
		o.dst.queued = false
		if !o.dst.pair.closed && l.deliver(o.dst, o.data) {
			l.pump(o.dst.peer, o.dst)
		}
	}
	clear(l.out)
	l.out = l.out[:0]
	l.used = 0
}

// flush writes what waits for s; when all is taken, its peer is read
// again (see event).
func (l *relayLoop) flush(s *relaySide) {
	w := l.write(s, s.pendData)
	if w < 0 {
		return
	}
	s.pendData = s.pendData[w:]
	if len(s.pendData) == 0 {
		relayBufs.Put(s.pend)
		s.pend, s.pendData = nil, nil
		s.peer.last = l.now // awaited again from now
	}
}

// write writes b to s until it would block; it returns how much it wrote,
// or -1 when the write failed and the pair is closed.
func (l *relayLoop) write(s *relaySide, b []byte) int {
	// What a peer at its end sent last is followed at once by the end
	// (shutdown or close): MSG_MORE holds it for the FIN to go in the
	// same packet, which saves the client an ACK and the machine two
	// packets a connection, as a server closing after its answer does.
	flags := 0
	if s.peer.atEnd {
		flags = unix.MSG_MORE
	}
	w := 0
	for w < len(b) {
		n, err := sendFlags(s.fd, b[w:], flags)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			if !s.room {
				// Re-armed for room, the socket reports it at once if
				// some was made since the write.
				s.room = true
				if l.watchSide(s, true) != nil {
					l.close(s.pair)
					return -1
				}
			}
			break
		}
		if err != nil {
			l.close(s.pair)
			return -1
		}
		w += n
	}
	if w > 0 {
		s.last = l.now
	}
	return w
}

// close closes both sockets of p (l.mu held); its owner is told in the
// finisher, woken once l.mu is released (finishEnded).
func (l *relayLoop) close(p *relayPair) {
	if p.closed {
		return
	}
	p.closed = true
	// A pair's sockets have no descriptor but the loop's (see detach), so
	// closing one takes it out of the epoll set too: no EPOLL_CTL_DEL.
	for _, s := range []*relaySide{&p.client, &p.server} {
		delete(l.sides, int32(s.fd))
		closeSocket(s.fd)
		if s.pend != nil {
			relayBufs.Put(s.pend)
			s.pend, s.pendData = nil, nil
		}
	}
	l.ended = append(l.ended, p)
}

// finishEnded has the finisher tell the ended pairs' owners (l.mu not
// held).
func (l *relayLoop) finishEnded() {
	select {
	case l.finishing <- struct{}{}:
	default: // it is awake already
	}
}

// finisher tells the owners of ended pairs, outside the loop: an owner logs
// and takes its frontend's locks, and a slow log must not hold up the
// relaying. It ends with the loop, once the epoll set has failed and every
// pair has been told.
func (l *relayLoop) finisher() {
	var ps []*relayPair
	for range l.finishing {
		l.mu.Lock()
		ps, l.ended = l.ended, ps[:0]
		done := l.failed != nil
		l.mu.Unlock()
		for i, p := range ps {
			p.owner.relayed(p.client.n, p.server.n, p.err)
			ps[i] = nil
		}
		if done {
			return
		}
	}
}

// sweep closes the pairs with a side silent beyond its timeout.
func (l *relayLoop) sweep() {
	l.mu.Lock()
	l.now = time.Since(l.epoch)
	for _, s := range l.sides {
		if s.timeout > 0 && s.awaited() && l.now-s.last > s.timeout {
			l.close(s.pair)
		}
	}
	ended := len(l.ended)
	l.swept = len(l.sides) > 0
	if l.swept {
		l.timer.Reset(relaySweep)
	}
	l.mu.Unlock()
	if ended > 0 {
		l.finishEnded()
	}
}

// awaited reports whether the relay waits on s: for it to take what waits
// for it, or for it to send more (it has not ended, and its peer is not
// holding it back). A side held back by a slow peer, or done sending, is
// not silent, and its timeout does not run (as HAProxy's).
func (s *relaySide) awaited() bool {
	return s.pend != nil || !s.eof && s.peer.pend == nil
}

// local returns the client socket's local address (zero once closed).
func (p *relayPair) local() netip.Addr {
	p.loop.mu.Lock()
	defer p.loop.mu.Unlock()
	if p.closed {
		return netip.Addr{}
	}
	a, err := localAddr(p.client.fd)
	if err != nil {
		return netip.Addr{}
	}
	return a.Addr().Unmap()
}

// shut closes the pair now. Its owner is told in the loop's finisher: the
// caller may hold locks that the owner takes.
func (p *relayPair) shut() {
	l := p.loop
	l.mu.Lock()
	l.close(p)
	ended := len(l.ended)
	l.mu.Unlock()
	if ended > 0 {
		l.finishEnded()
	}
}
