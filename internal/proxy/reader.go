package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"syscall"
)

// byteSource is what the parsers read from: a client's connReader or a
// server connection's bufio.Reader.
type byteSource interface {
	io.Reader
	io.ByteReader
	ReadSlice(delim byte) ([]byte, error)
}

var (
	_ byteSource = (*connReader)(nil)
	_ byteSource = (*bufio.Reader)(nil)
)

const readBufSize = 4096

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// connReader is a buffered reader over a client connection that holds its
// buffer only while it has data: an idle keep-alive connection waits for its
// next request with no buffer at all (see waitData), which is most of the
// memory a connection would otherwise hold.
type connReader struct {
	src  io.Reader // the connection
	pc   *pollConn // set when src is a pollConn: lets waitData read without a buffer held
	bufp *[]byte   // nil while detached
	r, w int
}

func newConnReader(c net.Conn) *connReader {
	b := &connReader{}
	b.reset(c)
	return b
}

// reset reads from c from now on (TLS over the raw connection); what is
// buffered is dropped.
func (b *connReader) reset(c net.Conn) {
	b.release()
	b.src = c
	b.pc, _ = c.(*pollConn)
}

func (b *connReader) buf() []byte { return *b.bufp }

// release gives the buffer back when it holds nothing.
func (b *connReader) release() {
	if b.bufp != nil && b.r == b.w {
		readBufs.Put(b.bufp)
		b.bufp, b.r, b.w = nil, 0, 0
	}
}

// Buffered returns the number of bytes buffered.
func (b *connReader) Buffered() int { return b.w - b.r }

// buffered returns the buffered bytes without consuming them.
func (b *connReader) buffered() []byte {
	if b.bufp == nil {
		return nil
	}
	return b.buf()[b.r:b.w]
}

// waitData waits until data is buffered. With the buffer empty it is given
// back first, and the wait happens in the network poller with a read into a
// freshly taken buffer once the socket is readable: no buffer is held while
// the client is silent.
func (b *connReader) waitData() error {
	if b.r < b.w {
		return nil
	}
	b.release()
	if b.pc == nil {
		return b.fill()
	}
	for {
		if err := b.pc.readable(); err != nil {
			return err
		}
		bp := readBufs.Get().(*[]byte)
		n, err := b.pc.recv(*bp)
		if err == nil {
			b.bufp, b.r, b.w = bp, 0, n
			return nil
		}
		readBufs.Put(bp)
		if err != syscall.EAGAIN {
			return err
		}
	}
}

// fill reads more into the buffer (taking one when detached), after moving
// unread bytes to its start.
func (b *connReader) fill() error {
	if b.bufp == nil {
		b.bufp = readBufs.Get().(*[]byte)
		b.r, b.w = 0, 0
	}
	buf := b.buf()
	if b.r > 0 {
		copy(buf, buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.w == len(buf) {
		return bufio.ErrBufferFull
	}
	for i := 0; i < 100; i++ {
		n, err := b.src.Read(buf[b.w:])
		b.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// ReadSlice reads until delim, like bufio.Reader.ReadSlice: the slice is
// valid until the next read; with a full buffer it returns what it has and
// bufio.ErrBufferFull.
func (b *connReader) ReadSlice(delim byte) ([]byte, error) {
	scanned := 0
	for {
		if b.bufp != nil {
			buf := b.buf()
			if i := bytes.IndexByte(buf[b.r+scanned:b.w], delim); i >= 0 {
				line := buf[b.r : b.r+scanned+i+1]
				b.r += scanned + i + 1
				return line, nil
			}
			scanned = b.w - b.r
		}
		if err := b.fill(); err != nil {
			var line []byte
			if b.bufp != nil {
				line = b.buf()[b.r:b.w]
				b.r = b.w
			}
			return line, err
		}
	}
}

// Read reads into p: from the buffer when it holds data, else straight
// from the connection for large reads (bodies), else through the buffer.
func (b *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if len(p) >= readBufSize {
			b.release()
			return b.src.Read(p)
		}
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf()[b.r:b.w])
	b.r += n
	return n, nil
}

// ReadByte reads one byte.
func (b *connReader) ReadByte() (byte, error) {
	if b.r == b.w {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	c := b.buf()[b.r]
	b.r++
	return c, nil
}
