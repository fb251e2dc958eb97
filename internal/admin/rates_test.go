package admin

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestRates(t *testing.T) {
	a, f := newTestAdmin(t, func(o *Options) { o.History = 4 })
	now := fakeEpoch
	step := func(web1, web2 uint64) {
		f.serve("web", "web1", web1)
		f.serve("web", "web2", web2)
		now = now.Add(2 * time.Second) // rates are per second, not per sample
		a.rates.sample(now, f.Status())
	}
	a.rates.sample(now, f.Status())
	if got := a.rates.history(serverKey("web", "web1")); len(got) != 0 {
		t.Errorf("history after one sample = %v, want none", got)
	}
	step(20, 0)
	step(40, 20)
	st := a.status()
	web1, web2 := st.Backends[0].Servers[0], st.Backends[0].Servers[1]
	if web1.Rate != 20 {
		t.Errorf("web1 rate = %v, want 20", web1.Rate)
	}
	if want := []float64{10, 20}; !slices.Equal(web1.RateHistory, want) {
		t.Errorf("web1 history = %v, want %v", web1.RateHistory, want)
	}
	if want := 60.0 / 80; web1.Share != want {
		t.Errorf("web1 share = %v, want %v (60 of the last 80 requests)", web1.Share, want)
	}
	if want := 20.0 / 80; web2.Share != want {
		t.Errorf("web2 share = %v, want %v", web2.Share, want)
	}
	if got := st.Backends[0].Rate; got != 30 {
		t.Errorf("backend web rate = %v, want 30", got)
	}
	if got := st.Frontends[0].Rate; got != 30 {
		t.Errorf("frontend rate = %v, want 30", got)
	}

	// The ring keeps the latest History samples, oldest first.
	step(2, 0)
	step(4, 0)
	step(6, 0)
	if got, want := a.rates.history(serverKey("web", "web1")), []float64{20, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("web1 history after wrapping = %v, want %v", got, want)
	}

	// A server deleted and added again starts from zero, never negative.
	f.mu.Lock()
	f.backends[0].servers[0].requests = 4
	f.mu.Unlock()
	now = now.Add(time.Second)
	a.rates.sample(now, f.Status())
	if got := a.rates.rate(serverKey("web", "web1")); got != 4 {
		t.Errorf("rate after a counter reset = %v, want 4", got)
	}

	// A server gone from the status leaves the rates.
	if err := f.DelServer("api", "api2"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	a.rates.sample(now, f.Status())
	if _, ok := a.rates.series[serverKey("api", "api2")]; ok {
		t.Error("api/api2 still sampled after it was deleted")
	}

	// A clock that did not move is no sample.
	before := a.rates.history(serverKey("web", "web1"))
	a.rates.sample(now, f.Status())
	if got := a.rates.history(serverKey("web", "web1")); !slices.Equal(got, before) {
		t.Errorf("history after a sample at the same time = %v, want %v", got, before)
	}
}

func TestShareWithoutRecentTraffic(t *testing.T) {
	a, _ := newTestAdmin(t, nil)
	st := a.status()
	// No samples yet: shares come from the totals, 600 and 200 requests.
	if got := st.Backends[0].Servers[0].Share; got != 0.75 {
		t.Errorf("web1 share = %v, want 0.75", got)
	}
	if got := st.Backends[1].Servers[0].Share; got != 0 {
		t.Errorf("api1 share with no requests at all = %v, want 0", got)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	a, f := newTestAdmin(t, func(o *Options) { o.Interval = 5 * time.Millisecond; o.Now = time.Now })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(a.rates.history(serverKey("web", "web1"))) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Run took no 3 samples in 5s")
		}
		f.serve("web", "web1", 1)
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
