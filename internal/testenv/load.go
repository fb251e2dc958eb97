package testenv

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load sends GETs to one URL from several clients, each over its own
// keep-alive connections, and counts the failures: an error, or a status
// other than 200. It stops at Stop, after Limit requests, or at Deadline,
// whichever comes first.
type Load struct {
	URL      string
	Clients  int       // default 8
	Limit    int64     // requests in all; 0: no limit
	Deadline time.Time // zero: none

	sent, failed atomic.Int64
	firstErr     atomic.Value
	stop         chan struct{}
	wg           sync.WaitGroup
}

// Start starts the clients.
func (l *Load) Start() *Load {
	if l.Clients <= 0 {
		l.Clients = 8
	}
	l.stop = make(chan struct{})
	for i := 0; i < l.Clients; i++ {
		l.wg.Add(1)
		go l.client()
	}
	return l
}

func (l *Load) client() {
	defer l.wg.Done()
	c := &http.Client{Timeout: 10 * time.Second}
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if l.Limit > 0 && l.sent.Load() >= l.Limit || !l.Deadline.IsZero() && time.Now().After(l.Deadline) {
			return
		}
		l.sent.Add(1)
		resp, err := c.Get(l.URL)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			l.failed.Add(1)
			l.firstErr.CompareAndSwap(nil, err.Error())
		}
	}
}

// Sent returns the number of requests sent so far.
func (l *Load) Sent() int64 { return l.sent.Load() }

// Stop stops the clients and waits for them.
func (l *Load) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// Wait waits for the clients to reach Limit or Deadline.
func (l *Load) Wait() { l.wg.Wait() }

// Result returns the requests sent, those that failed, and the first
// failure ("" when none).
func (l *Load) Result() (sent, failed int64, first string) {
	first, _ = l.firstErr.Load().(string)
	return l.sent.Load(), l.failed.Load(), first
}
