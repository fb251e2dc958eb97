package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
)

// lines reads r with ReadSlice('\n') to the end, as readHead does.
func readLines(r byteSource) ([]string, error) {
	var out []string
	for {
		l, err := r.ReadSlice('\n')
		if len(l) > 0 {
			out = append(out, string(l))
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// FuzzConnReader checks connReader against bufio.Reader: the same bytes in
// the same chunks give the same slices, whatever the chunking.
func FuzzConnReader(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add(bytes.Repeat([]byte("x"), 9000), uint8(255))
	f.Add([]byte("a\nb\n\nc"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		step := int(chunk)%64 + 1
		a, b := net.Pipe()
		go func() {
			for i := 0; i < len(data); i += step {
				a.Write(data[i:min(i+step, len(data))])
			}
			a.Close()
		}()
		got, err := readLines(newConnReader(b))
		if err != nil {
			t.Fatalf("connReader: %v", err)
		}
		want, _ := readLines(bufio.NewReaderSize(bytes.NewReader(data), readBufSize))
		if !bytes.Equal([]byte(join(got)), []byte(join(want))) {
			t.Fatalf("connReader read %q, bufio %q", join(got), join(want))
		}
	})
}

func join(s []string) string {
	var b bytes.Buffer
	for _, x := range s {
		b.WriteString(x)
	}
	return b.String()
}

// An idle TCP connection holds no buffer; data that arrives is read in full.
func TestConnReaderDetachesWhenIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newConnReader(s)
	for i, msg := range []string{"first line\n", "second\n"} {
		done := make(chan error, 1)
		go func() { done <- r.waitData() }()
		c.Write([]byte(msg))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		l, err := r.ReadSlice('\n')
		if err != nil || string(l) != msg {
			t.Fatalf("line %d = %q, %v; want %q", i, l, err, msg)
		}
		r.release()
		if r.bufp != nil {
			t.Fatalf("buffer held after the data was consumed")
		}
	}
	c.Close()
	if err := r.waitData(); err != io.EOF {
		t.Errorf("waitData after close = %v, want EOF", err)
	}
}
