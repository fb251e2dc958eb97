package vrrp

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/testenv"
)

// A lone local-mode instance (its peer is not running) becomes master
// after Master_Down_Interval, calls Up, runs the notify command, and on
// cancel calls Down and resigns.
func TestFromConfigLocalMode(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "notify.log")
	yes := true
	c := &config.VRRP{
		Mode: "local", VirtualRouterID: 7, Priority: 100, Preempt: &yes,
		AdvertInterval: config.Duration(10 * time.Millisecond),
		Local:          &config.VRRPLocal{Address: "127.0.0.1:8080", Listen: "127.0.0.1:0", Peers: []string{testenv.FreeAddr(t, "udp")}},
		Notify:         config.VRRPNotify{Master: `echo "$FULCRUM_VRRP_STATE $FULCRUM_VRRP_VRID" >> ` + log},
	}
	var ups, downs atomic.Int32
	changes := make(chan State, 8)
	g, err := FromConfig(c, Options{
		Up:       func() error { ups.Add(1); return nil },
		Down:     func() error { downs.Add(1); return nil },
		OnChange: func(vrid uint8, _, to State) { changes <- to },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	for _, want := range []State{Backup, Master} {
		select {
		case s := <-changes:
			if s != want {
				t.Fatalf("state change to %v, want %v", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change to %v", want)
		}
	}
	if ups.Load() != 1 {
		t.Fatalf("Up calls = %d, want 1", ups.Load())
	}
	st := g.Status()[0]
	if st.VRID != 7 || st.State != Master || st.AdvertsSent == 0 {
		t.Fatalf("Status() = %+v, want vrid 7 master with adverts sent", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if downs.Load() != 2 { // at startup, and on resigning
		t.Fatalf("Down calls = %d, want 2", downs.Load())
	}
	eventually(t, 5*time.Second, "notify command ran", func() bool {
		b, _ := os.ReadFile(log)
		return strings.TrimSpace(string(b)) == "master 7"
	})
}

func TestFromConfigLocalModeNeedsCallbacks(t *testing.T) {
	yes := true
	c := &config.VRRP{Mode: "local", VirtualRouterID: 7, Priority: 100, Preempt: &yes,
		AdvertInterval: config.Duration(time.Second),
		Local:          &config.VRRPLocal{Address: "127.0.0.1:8080", Listen: "127.0.0.1:0", Peers: []string{"127.0.0.1:1"}}}
	if _, err := FromConfig(c, Options{}); err == nil {
		t.Fatal("FromConfig() without Up/Down = nil error, want one")
	}
}

// ListenFreebind binds an address this host does not have; net.Listen
// cannot (unless net.ipv4.ip_nonlocal_bind is set).
func TestListenFreebind(t *testing.T) {
	const nonlocal = "192.0.2.99:0"
	l, err := ListenFreebind("tcp4", nonlocal)
	if err != nil {
		t.Fatalf("ListenFreebind(%s) = %v", nonlocal, err)
	}
	l.Close()
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_nonlocal_bind"); strings.TrimSpace(string(b)) == "0" {
		if l, err := net.Listen("tcp4", nonlocal); err == nil {
			l.Close()
			t.Fatalf("net.Listen(%s) succeeded; the test proves nothing here", nonlocal)
		} else if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Fatalf("net.Listen(%s) = %v, want EADDRNOTAVAIL", nonlocal, err)
		}
	}
	pc, err := ListenPacketFreebind("udp4", nonlocal)
	if err != nil {
		t.Fatalf("ListenPacketFreebind(%s) = %v", nonlocal, err)
	}
	pc.Close()
}

func TestNeighborAdvert(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b := neighborAdvert(vip6, mac)
	want := append([]byte{136, 0, 0, 0, 0x20, 0, 0, 0}, vip6.AsSlice()...)
	want = append(want, 2, 1, 2, 0, 0, 0, 0, 1)
	if string(b) != string(want) {
		t.Fatalf("neighborAdvert() = % x, want % x", b, want)
	}
}

func TestARPAnnouncement(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	got := arpAnnouncement(mac, vip)
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet
		0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
		2, 0, 0, 0, 0, 1, 192, 0, 2, 50, // sender
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 192, 0, 2, 50, // target: itself
	}
	if string(got) != string(want) {
		t.Fatalf("arpAnnouncement() = % x, want % x", got, want)
	}
}
