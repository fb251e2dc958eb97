package proxy

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"sync"
)

var (
	errBadChunk = errors.New("proxy: malformed chunked body")
	// errSrcRead and errDstWrite tell which side of a copy failed.
	errSrcRead  = errors.New("read side failed")
	errDstWrite = errors.New("write side failed")
)

// copyError says which side of a body copy failed, so the caller knows whom
// to blame (client or server) and whether a retry is possible.
type copyError struct {
	side error // errSrcRead or errDstWrite
	err  error
}

func (e *copyError) Error() string { return e.side.Error() + ": " + e.err.Error() }
func (e *copyError) Unwrap() []error {
	return []error{e.side, e.err}
}

const copyBufSize = 32 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyN copies exactly n bytes from src to dst. before is called before each
// read (to extend deadlines); it may be nil.
func copyN(dst io.Writer, src io.Reader, n int64, before func()) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var done int64
	for done < n {
		if before != nil {
			before()
		}
		want := int64(len(buf))
		if rem := n - done; rem < want {
			want = rem
		}
		r, err := src.Read(buf[:want])
		if r > 0 {
			if _, werr := dst.Write(buf[:r]); werr != nil {
				return done, &copyError{errDstWrite, werr}
			}
			done += int64(r)
		}
		if err != nil {
			if err == io.EOF && done < n {
				err = io.ErrUnexpectedEOF
			}
			if done < n {
				return done, &copyError{errSrcRead, err}
			}
		}
	}
	return done, nil
}

// copyUntilEOF copies src to dst until src ends (a response delimited by the
// server closing the connection).
func copyUntilEOF(dst io.Writer, src io.Reader, before func()) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var done int64
	for {
		if before != nil {
			before()
		}
		r, err := src.Read(buf)
		if r > 0 {
			if _, werr := dst.Write(buf[:r]); werr != nil {
				return done, &copyError{errDstWrite, werr}
			}
			done += int64(r)
		}
		if err == io.EOF {
			return done, nil
		}
		if err != nil {
			return done, &copyError{errSrcRead, err}
		}
	}
}

// copyChunked reads a chunked body (RFC 9112 section 7.1) from src and writes
// it to dst, re-framed as chunked when rechunk is set (extensions dropped,
// trailer fields kept) or as the bare data otherwise. It returns the number
// of data bytes.
func copyChunked(dst *bufio.Writer, src byteSource, rechunk bool, before func()) (int64, error) {
	var total int64
	var line [64]byte
	for {
		if before != nil {
			before()
		}
		size, err := readChunkSize(src)
		if err != nil {
			return total, &copyError{errSrcRead, err}
		}
		if size == 0 {
			break
		}
		if rechunk {
			b := strconv.AppendInt(line[:0], size, 16)
			b = append(b, '\r', '\n')
			if _, err := dst.Write(b); err != nil {
				return total, &copyError{errDstWrite, err}
			}
		}
		n, err := copyN(dst, src, size, before)
		total += n
		if err != nil {
			return total, err
		}
		if err := readCRLF(src); err != nil {
			return total, &copyError{errSrcRead, err}
		}
		if rechunk {
			if _, err := dst.WriteString("\r\n"); err != nil {
				return total, &copyError{errDstWrite, err}
			}
		}
	}
	// The trailer section: field lines up to an empty line.
	if rechunk {
		if _, err := dst.WriteString("0\r\n"); err != nil {
			return total, &copyError{errDstWrite, err}
		}
	}
	trailer := 0
	for {
		l, err := src.ReadSlice('\n')
		if err != nil {
			return total, &copyError{errSrcRead, errBadChunk}
		}
		trailer += len(l)
		if trailer > 16<<10 {
			return total, &copyError{errSrcRead, errBadChunk}
		}
		empty := len(l) == 1 || len(l) == 2 && l[0] == '\r'
		if !empty {
			var h head
			if parseField(&h, trimEOL(l)) != nil {
				return total, &copyError{errSrcRead, errBadChunk}
			}
		}
		if rechunk {
			if _, err := dst.Write(l); err != nil {
				return total, &copyError{errDstWrite, err}
			}
		}
		if empty {
			return total, nil
		}
	}
}

func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
	}
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l
}

// readChunkSize reads "hex-size [; ext] CRLF".
func readChunkSize(src byteSource) (int64, error) {
	l, err := src.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return 0, errBadChunk
		}
		return 0, err
	}
	l = trimEOL(l)
	var n int64
	digits := 0
	i := 0
	for ; i < len(l); i++ {
		c := l[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			goto rest
		}
		if digits == 15 {
			return 0, errBadChunk // over 2^60: refuse rather than overflow
		}
		n = n<<4 | int64(v)
		digits++
	}
rest:
	if digits == 0 {
		return 0, errBadChunk
	}
	ext := trimOWS(l[i:])
	if len(ext) > 0 && ext[0] != ';' {
		return 0, errBadChunk
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, errBadChunk
		}
	}
	return n, nil
}

func readCRLF(src io.ByteReader) error {
	c, err := src.ReadByte()
	if err != nil {
		return err
	}
	if c == '\r' {
		if c, err = src.ReadByte(); err != nil {
			return err
		}
	}
	if c != '\n' {
		return errBadChunk
	}
	return nil
}
