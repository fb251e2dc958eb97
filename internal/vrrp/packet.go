package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// IPProtocol is the IP protocol number of VRRP (RFC 5798 section 5.1.1.4).
const IPProtocol = 112

// Version is the VRRP version this package speaks.
const Version = 3

// typeAdvertisement is the only VRRP packet type (RFC 5798 section 5.2.2).
const typeAdvertisement = 1

// headerLen is the fixed part of an advertisement, before the addresses.
const headerLen = 8

// maxInterval is the largest Max Advert Int: 12 bits of centiseconds.
const maxInterval = 0x0fff

// Multicast groups adverts are sent to (RFC 5798 section 5.1.1.2 and 5.1.2.2).
var (
	GroupIPv4 = netip.MustParseAddr("224.0.0.18")
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// Errors returned when an advertisement cannot be parsed or built.
var (
	ErrShortPacket  = errors.New("vrrp: packet too short")
	ErrVersion      = errors.New("vrrp: version is not 3")
	ErrType         = errors.New("vrrp: type is not advertisement")
	ErrNoAddresses  = errors.New("vrrp: advertisement carries no address")
	ErrLength       = errors.New("vrrp: length does not match the address count")
	ErrMixedFamily  = errors.New("vrrp: IPv4 and IPv6 addresses mixed in one advertisement")
	ErrInterval     = errors.New("vrrp: advertisement interval out of range")
	ErrTooManyAddrs = errors.New("vrrp: more than 255 addresses")
	ErrChecksum     = errors.New("vrrp: bad checksum")
)

// Advert is a VRRPv3 advertisement (RFC 5798 section 5.2). Its wire format:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        IPvX Address(es): Count × 4 (IPv4) or × 16 (IPv6)      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The family of the addresses is implied by the length, since the count is
// at least 1.
type Advert struct {
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Priority is 1..254 for a backup-capable router, 255 for the address
	// owner, 0 for a master that resigns.
	Priority uint8
	// Interval is the Max Advert Int in centiseconds (12 bits).
	Interval uint16
	// Checksum is the value read by UnmarshalBinary and written as is by
	// MarshalBinary; Marshal computes it.
	Checksum uint16
	// Addrs are the virtual addresses, all of one family.
	Addrs []netip.Addr
}

// IntervalDuration is Interval as a time.Duration.
func (a *Advert) IntervalDuration() time.Duration {
	return time.Duration(a.Interval) * 10 * time.Millisecond
}

// IsIPv6 reports whether the advert carries IPv6 addresses.
func (a *Advert) IsIPv6() bool { return len(a.Addrs) > 0 && a.Addrs[0].Is6() }

// Centiseconds converts an advert interval to the wire unit, rounding down,
// and reports ErrInterval when it does not fit in 1..4095.
func Centiseconds(d time.Duration) (uint16, error) {
	cs := d / (10 * time.Millisecond)
	if cs < 1 || cs > maxInterval {
		return 0, fmt.Errorf("%w: %v: want 10ms..40.95s", ErrInterval, d)
	}
	return uint16(cs), nil
}

// MarshalBinary encodes the advert with its Checksum field unchanged.
func (a *Advert) MarshalBinary() ([]byte, error) {
	if len(a.Addrs) == 0 {
		return nil, ErrNoAddresses
	}
	if len(a.Addrs) > 255 {
		return nil, ErrTooManyAddrs
	}
	if a.Interval > maxInterval {
		return nil, ErrInterval
	}
	v6 := a.Addrs[0].Is6()
	size := 4
	if v6 {
		size = 16
	}
	b := make([]byte, headerLen, headerLen+size*len(a.Addrs))
	b[0] = Version<<4 | typeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	binary.BigEndian.PutUint16(b[4:6], a.Interval)
	binary.BigEndian.PutUint16(b[6:8], a.Checksum)
	for _, ip := range a.Addrs {
		if ip.Is6() != v6 || ip.Is4In6() {
			return nil, ErrMixedFamily
		}
		b = append(b, ip.AsSlice()...)
	}
	return b, nil
}

// UnmarshalBinary decodes an advert without checking its checksum (see
// ParseAdvert).
func (a *Advert) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen {
		return ErrShortPacket
	}
	if v := b[0] >> 4; v != Version {
		return fmt.Errorf("%w: got %d", ErrVersion, v)
	}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		return fmt.Errorf("%w: got type %d", ErrType, t)
	}
	n := int(b[3])
	if n == 0 {
		return ErrNoAddresses
	}
	size := 0
	switch len(b) - headerLen {
	case 4 * n:
		size = 4
	case 16 * n:
		size = 16
	default:
		if len(b)-headerLen < 4*n {
			return ErrShortPacket
		}
		return fmt.Errorf("%w: %d bytes for %d addresses", ErrLength, len(b), n)
	}
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		off := headerLen + i*size
		if size == 4 {
			addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		} else {
			addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		}
	}
	*a = Advert{
		VRID:     b[1],
		Priority: b[2],
		// The top 4 bits are reserved: sent as zero, ignored on receipt.
		Interval: binary.BigEndian.Uint16(b[4:6]) & maxInterval,
		Checksum: binary.BigEndian.Uint16(b[6:8]),
		Addrs:    addrs,
	}
	return nil
}

// Marshal encodes the advert with its checksum computed over the
// pseudo-header of src and dst (RFC 5798 section 5.2.8). For IPv4 this is
// the form keepalived sends and, by default, requires; RFC 9568 section 5.2.8
// would have it over the message alone, which receivers here accept too.
func (a *Advert) Marshal(src, dst netip.Addr) ([]byte, error) {
	c := *a
	c.Checksum = 0
	b, err := c.MarshalBinary()
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(b[6:8], checksum(pseudoSum(src, dst, len(b)), b))
	a.Checksum = binary.BigEndian.Uint16(b[6:8])
	return b, nil
}

// ParseAdvert decodes b, received from src and sent to dst, and verifies its
// checksum: for IPv6 over the pseudo-header; for IPv4 either with the
// pseudo-header or, as RFC 9568 reads, over the message alone.
func ParseAdvert(b []byte, src, dst netip.Addr) (*Advert, error) {
	var a Advert
	if err := a.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if checksum(pseudoSum(src, dst, len(b)), b) == 0 {
		return &a, nil
	}
	if !a.IsIPv6() && checksum(0, b) == 0 {
		return &a, nil
	}
	return nil, ErrChecksum
}

// pseudoSum is the one's complement sum of the IPv4 or IPv6 pseudo-header
// (RFC 768 / RFC 8200 section 8.1) for a VRRP payload of length n.
func pseudoSum(src, dst netip.Addr, n int) uint32 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += IPProtocol
	sum += uint32(n)
	return sum
}

// checksum folds the Internet checksum (RFC 1071) of b onto initial; it
// returns 0 when b, including its checksum field, verifies.
func checksum(initial uint32, b []byte) uint16 {
	sum := initial
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
