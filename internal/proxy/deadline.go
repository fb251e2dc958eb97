package proxy

import (
	"net"
	"time"
)

// deadlines moves a connection's read and write deadlines lazily. Setting a
// deadline costs a timer update; on a busy keep-alive connection doing it
// two or three times per request is a measurable share of the CPU. So a
// deadline is set a little beyond where it must be (by an eighth of the
// timeout), and left alone while it stays within that slack: a timeout then
// fires between 100% and 112.5% of its value, never early.
type deadlines struct {
	c      net.Conn
	rd, wd time.Time // as set; zero: none
}

func (d *deadlines) read(now time.Time, timeout time.Duration) {
	if at, ok := lazy(d.rd, now, timeout); ok {
		d.rd = at
		d.c.SetReadDeadline(at)
	}
}

func (d *deadlines) write(now time.Time, timeout time.Duration) {
	if at, ok := lazy(d.wd, now, timeout); ok {
		d.wd = at
		d.c.SetWriteDeadline(at)
	}
}

// lazy returns the deadline to set for a timeout from now, and whether it
// differs enough from cur to be worth setting.
func lazy(cur, now time.Time, timeout time.Duration) (time.Time, bool) {
	if timeout <= 0 {
		return time.Time{}, !cur.IsZero()
	}
	want := now.Add(timeout)
	slack := timeout / 8
	if !cur.IsZero() && !cur.Before(want) && cur.Sub(want) <= slack {
		return cur, false
	}
	return want.Add(slack), true
}
