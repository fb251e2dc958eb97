package vrrp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// inetSum is a plain RFC 1071 checksum over a whole buffer, written apart
// from the package's incremental one to cross-check it.
func inetSum(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		v := uint32(b[i]) << 8
		if i+1 < len(b) {
			v |= uint32(b[i+1])
		}
		s += v
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func TestMarshalLayoutAndChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.11"), GroupIPv4
	a := &Advert{VRID: 51, Priority: 150, Interval: 10, Addrs: []netip.Addr{vip, netip.MustParseAddr("192.0.2.51")}}
	b, err := a.Marshal(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x31, 51, 150, 2, 0x00, 10, 0, 0, 192, 0, 2, 50, 192, 0, 2, 51}
	got := append([]byte(nil), b...)
	got[6], got[7] = 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Marshal() = % x, want % x (checksum zeroed)", got, want)
	}
	// The IPv4 pseudo-header: src, dst, zero, protocol, length.
	ph := append(append(src.AsSlice(), dst.AsSlice()...), 0, IPProtocol, 0, byte(len(b)))
	if sum := inetSum(append(ph, got...)); binary.BigEndian.Uint16(b[6:]) != sum {
		t.Fatalf("checksum = %#04x, want %#04x", binary.BigEndian.Uint16(b[6:]), sum)
	}
}

func TestMarshalIPv6Checksum(t *testing.T) {
	src, dst := netip.MustParseAddr("fe80::1"), GroupIPv6
	a := &Advert{VRID: 7, Priority: 100, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::50")}}
	b, err := a.Marshal(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 24 {
		t.Fatalf("len = %d, want 24", len(b))
	}
	ph := append(append(src.AsSlice(), dst.AsSlice()...), 0, 0, 0, byte(len(b)), 0, 0, 0, IPProtocol)
	zeroed := append([]byte(nil), b...)
	zeroed[6], zeroed[7] = 0, 0
	if got, want := binary.BigEndian.Uint16(b[6:]), inetSum(append(ph, zeroed...)); got != want {
		t.Fatalf("checksum = %#04x, want %#04x", got, want)
	}
	if _, err := ParseAdvert(b, src, dst); err != nil {
		t.Fatalf("ParseAdvert() = %v", err)
	}
	// IPv6 has no message-only form.
	c := append([]byte(nil), zeroed...)
	binary.BigEndian.PutUint16(c[6:], inetSum(zeroed))
	if _, err := ParseAdvert(c, src, dst); !errors.Is(err, ErrChecksum) {
		t.Fatalf("ParseAdvert(message-only IPv6 checksum) = %v, want ErrChecksum", err)
	}
}

func TestParseAcceptsBothIPv4ChecksumForms(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.12"), GroupIPv4
	a := &Advert{VRID: 51, Priority: 100, Interval: 100, Addrs: []netip.Addr{vip}}
	withPH, err := a.Marshal(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	msgOnly := append([]byte(nil), withPH...)
	msgOnly[6], msgOnly[7] = 0, 0
	binary.BigEndian.PutUint16(msgOnly[6:], inetSum(msgOnly))
	for name, b := range map[string][]byte{"pseudo-header": withPH, "message only (RFC 9568)": msgOnly} {
		got, err := ParseAdvert(b, src, dst)
		if err != nil {
			t.Fatalf("ParseAdvert(%s) = %v", name, err)
		}
		if got.VRID != 51 || got.Priority != 100 || got.IntervalDuration() != time.Second {
			t.Fatalf("ParseAdvert(%s) = %+v", name, got)
		}
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShortPacket},
		{"header only 7", []byte{0x31, 1, 1, 1, 0, 100, 0}, ErrShortPacket},
		{"version 2", []byte{0x21, 1, 1, 1, 0, 100, 0, 0, 1, 2, 3, 4}, ErrVersion},
		{"type 2", []byte{0x32, 1, 1, 1, 0, 100, 0, 0, 1, 2, 3, 4}, ErrType},
		{"no address", []byte{0x31, 1, 1, 0, 0, 100, 0, 0}, ErrNoAddresses},
		{"missing address bytes", []byte{0x31, 1, 1, 2, 0, 100, 0, 0, 1, 2, 3, 4}, ErrShortPacket},
		{"trailing bytes", []byte{0x31, 1, 1, 1, 0, 100, 0, 0, 1, 2, 3, 4, 5}, ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Advert
			if err := a.UnmarshalBinary(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("UnmarshalBinary() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUnmarshalIgnoresReservedBits(t *testing.T) {
	var a Advert
	if err := a.UnmarshalBinary([]byte{0x31, 1, 1, 1, 0xf0, 100, 0, 0, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if a.Interval != 100 {
		t.Fatalf("Interval = %d, want 100", a.Interval)
	}
}

func TestMarshalErrors(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = vip
	}
	tests := []struct {
		name string
		a    Advert
		want error
	}{
		{"no address", Advert{VRID: 1}, ErrNoAddresses},
		{"256 addresses", Advert{VRID: 1, Addrs: many}, ErrTooManyAddrs},
		{"interval 13 bits", Advert{VRID: 1, Interval: 0x1000, Addrs: []netip.Addr{vip}}, ErrInterval},
		{"mixed", Advert{VRID: 1, Addrs: []netip.Addr{vip, netip.MustParseAddr("::1")}}, ErrMixedFamily},
	}
	for _, tt := range tests {
		if _, err := tt.a.MarshalBinary(); !errors.Is(err, tt.want) {
			t.Errorf("%s: MarshalBinary() = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestCentiseconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint16
		err  bool
	}{
		{10 * time.Millisecond, 1, false},
		{100 * time.Millisecond, 10, false},
		{time.Second, 100, false},
		{40950 * time.Millisecond, 4095, false},
		{105 * time.Millisecond, 10, false},
		{9 * time.Millisecond, 0, true},
		{41 * time.Second, 0, true},
	}
	for _, tt := range tests {
		got, err := Centiseconds(tt.d)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("Centiseconds(%v) = %d, %v; want %d, error %v", tt.d, got, err, tt.want, tt.err)
		}
	}
}

// FuzzAdvert parses arbitrary bytes; what parses must marshal back to the
// same bytes and parse to the same advert.
func FuzzAdvert(f *testing.F) {
	for _, a := range []*Advert{
		{VRID: 51, Priority: 150, Interval: 10, Addrs: []netip.Addr{vip}},
		{VRID: 1, Priority: 0, Interval: 4095, Addrs: []netip.Addr{vip, netip.MustParseAddr("198.51.100.1")}},
		{VRID: 255, Priority: 255, Interval: 100, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::50")}},
	} {
		b, err := a.Marshal(netip.MustParseAddr("192.0.2.11"), GroupIPv4)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Advert
		if err := a.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary() of a parsed advert = %v", err)
		}
		want := append([]byte(nil), b...)
		want[4] &= 0x0f // reserved bits are not kept
		if !reflect.DeepEqual(out, want) {
			t.Fatalf("MarshalBinary() = % x, want % x", out, want)
		}
		var again Advert
		if err := again.UnmarshalBinary(out); err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("UnmarshalBinary(MarshalBinary()) = %+v, %v; want %+v", again, err, a)
		}
		_, _ = ParseAdvert(b, netip.MustParseAddr("192.0.2.11"), GroupIPv4)
	})
}
