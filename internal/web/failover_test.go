package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/dbha"
	"fulcrum/internal/guestbook"
)

// phase counts one kind of request over a run: how many were sent, how many
// failed, and the longest time without a success.
type phase struct {
	mu                sync.Mutex
	sent, failed      int
	lastOK, start     time.Time
	longest           time.Duration
	failedStatusCodes map[int]int
}

func (p *phase) record(ok bool, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.lastOK.IsZero() {
		p.lastOK, p.start = now, now
	}
	p.sent++
	if ok {
		p.longest = max(p.longest, now.Sub(p.lastOK))
		p.lastOK = now
		return
	}
	p.failed++
	if p.failedStatusCodes == nil {
		p.failedStatusCodes = map[int]int{}
	}
	p.failedStatusCodes[status]++
}

func (p *phase) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("sent %d, failed %d %v, longest without success %v", p.sent, p.failed, p.failedStatusCodes, p.longest.Round(time.Millisecond))
}

// TestGuestbookFailover kills the database primary under a steady load of
// posts and reads through one web server, with the failover manager
// running, and measures what a visitor sees: the writes' outage, failed
// reads, /healthz, and that every acknowledged post is still there.
func TestGuestbookFailover(t *testing.T) {
	cluster := startCluster(t)
	creds := cluster.Credentials()
	addrs := cluster.Addrs()
	oldPrimary, newPrimary := addrs[0], addrs[1]
	mgr, err := dbha.NewManager(cluster.ManagerConfig())
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopMgr := context.WithCancel(context.Background())
	mgrDone := make(chan struct{})
	go func() { mgr.Run(mctx); close(mgrDone) }()
	t.Cleanup(func() { stopMgr(); <-mgrDone; mgr.Close() })

	off := false
	s, err := New(&config.Web{Name: "web1", Listen: "127.0.0.1:0", App: "guestbook", AccessLog: &off,
		Database: &config.WebDatabase{Nodes: addrs, User: creds.AppUser, Password: creds.AppPassword,
			Name: creds.Database, CheckInterval: config.Duration(100 * time.Millisecond)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, s)
	waitHealthy(t, addr)
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}

	var writes, reads, health phase
	var mu sync.Mutex
	var acked []guestbook.Message
	writtenOnNew := make(chan struct{})
	var once sync.Once
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	loop := func(f func(i int)) {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				f(i)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	loop(func(i int) {
		resp, err := client.Post(base+"/api/messages", "application/json",
			strings.NewReader(fmt.Sprintf(`{"name":"load","message":"post %d"}`, i)))
		if err != nil {
			writes.record(false, 0)
			return
		}
		defer resp.Body.Close()
		var m guestbook.Message
		ok := resp.StatusCode == 201 && json.NewDecoder(resp.Body).Decode(&m) == nil
		writes.record(ok, resp.StatusCode)
		if ok {
			mu.Lock()
			acked = append(acked, m)
			mu.Unlock()
			if resp.Header.Get("X-DB-Node") == newPrimary {
				once.Do(func() { close(writtenOnNew) })
			}
		}
	})
	loop(func(int) {
		resp, err := client.Get(base + "/api/messages?limit=5")
		if err != nil {
			reads.record(false, 0)
			return
		}
		resp.Body.Close()
		reads.record(resp.StatusCode == 200, resp.StatusCode)
	})
	var lastBody string
	loop(func(int) {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			health.record(false, 0)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != lastBody {
			t.Logf("%s healthz %d %s", time.Now().Format("15:04:05.000"), resp.StatusCode, b)
			lastBody = string(b)
		}
		resp.Body.Close()
		health.record(resp.StatusCode == 200, resp.StatusCode)
	})

	time.Sleep(time.Second)
	killed := time.Now()
	if err := cluster.Kill(cluster.Nodes()[0].Name); err != nil {
		t.Fatalf("killing the primary: %v", err)
	}
	select {
	case <-writtenOnNew:
		t.Logf("first write on the new primary %s %v after kill -9 of %s", newPrimary, time.Since(killed).Round(time.Millisecond), oldPrimary)
	case <-time.After(30 * time.Second):
		t.Errorf("no write reached the new primary %s within 30s of killing %s", newPrimary, oldPrimary)
	}
	time.Sleep(time.Second)
	stopLoad()
	wg.Wait()
	t.Logf("writes:  %v", &writes)
	t.Logf("reads:   %v", &reads)
	t.Logf("healthz: %v", &health)

	// Nothing acknowledged is lost.
	lost := 0
	for _, m := range acked {
		resp, err := client.Get(fmt.Sprintf("%s/api/messages/%d", base, m.ID))
		if err != nil {
			t.Fatal(err)
		}
		var got guestbook.Message
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got != m {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged posts are not readable after the failover", lost, len(acked))
	}
	if writes.longest > 10*time.Second {
		t.Errorf("writes failed for %v, want well under 10s", writes.longest)
	}
}
