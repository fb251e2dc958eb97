package edge

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// PROXY protocol, versions 1 and 2, as specified in HAProxy's
// doc/proxy-protocol.txt.
//
// Version 1 is one line of at most 107 bytes:
//
//	"PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF
//	"PROXY" SP "UNKNOWN" [anything] CRLF
//
// Version 2 is binary:
//
//	 0..11  signature \r\n\r\n\0\r\nQUIT\n
//	12      version (high nibble, 2) | command (low nibble: 0 LOCAL, 1 PROXY)
//	13      address family (high nibble: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX)
//	        | transport (low nibble: 0 UNSPEC, 1 STREAM, 2 DGRAM)
//	14..15  length of what follows, big endian
//	16..    addresses: INET 4+4+2+2 bytes, INET6 16+16+2+2, UNIX 108+108;
//	        then TLVs, which are skipped
var (
	// ErrNoProxyHeader: the connection does not start with a PROXY
	// protocol signature.
	ErrNoProxyHeader = errors.New("edge: no PROXY protocol header")
	// ErrBadProxyHeader: a PROXY protocol header is malformed.
	ErrBadProxyHeader = errors.New("edge: malformed PROXY protocol header")
)

var proxyV2Sig = [12]byte{'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'}

const proxyV1Max = 107 // section 2.1: the longest v1 line, CRLF included

// ReadProxyHeader reads a PROXY protocol v1 or v2 header from br and
// returns the addresses it carries: the original client (src) and the
// address it connected to (dst). Both are zero for the LOCAL command
// (health checks by the proxy itself), v1 UNKNOWN and v2 UNSPEC or UNIX
// addresses; the caller then uses the connection's own addresses. It reads
// exactly the header and nothing after it. The caller sets a read deadline.
func ReadProxyHeader(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	first, err := br.Peek(1)
	if err != nil {
		return src, dst, fmt.Errorf("edge: reading PROXY header: %w", err)
	}
	switch first[0] {
	case 'P':
		return readProxyV1(br)
	case '\r':
		return readProxyV2(br)
	}
	return src, dst, ErrNoProxyHeader
}

func readProxyV1(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	var buf [proxyV1Max]byte
	n := 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			return src, dst, fmt.Errorf("edge: PROXY v1 header: %w", unexpected(err))
		}
		buf[n] = c
		n++
		if c == '\n' {
			break
		}
		if n == len(buf) {
			return src, dst, fmt.Errorf("%w: v1 line longer than %d bytes", ErrBadProxyHeader, proxyV1Max)
		}
		// Fail fast on something that is not a PROXY line at all.
		if n <= 6 && c != "PROXY "[n-1] {
			return src, dst, fmt.Errorf("%w: v1 signature", ErrBadProxyHeader)
		}
	}
	if n < 8 || buf[n-2] != '\r' {
		return src, dst, fmt.Errorf("%w: v1 line must end with CRLF", ErrBadProxyHeader)
	}
	line := buf[6 : n-2]
	if bytes.HasPrefix(line, []byte("UNKNOWN")) {
		return src, dst, nil // section 2.1: the rest is ignored
	}
	var f [5][]byte // protocol, src, dst, sport, dport
	for i := 0; i < 4; i++ {
		j := bytes.IndexByte(line, ' ')
		if j <= 0 {
			return src, dst, fmt.Errorf("%w: v1 needs 5 fields after PROXY", ErrBadProxyHeader)
		}
		f[i], line = line[:j], line[j+1:]
	}
	if len(line) == 0 || bytes.IndexByte(line, ' ') >= 0 {
		return src, dst, fmt.Errorf("%w: v1 needs 5 fields after PROXY", ErrBadProxyHeader)
	}
	f[4] = line
	v6 := false
	switch string(f[0]) {
	case "TCP4":
	case "TCP6":
		v6 = true
	default:
		return src, dst, fmt.Errorf("%w: v1 protocol %q", ErrBadProxyHeader, f[0])
	}
	sa, err1 := netip.ParseAddr(string(f[1]))
	da, err2 := netip.ParseAddr(string(f[2]))
	if err1 != nil || err2 != nil || sa.Is6() != v6 || da.Is6() != v6 || sa.Zone() != "" || da.Zone() != "" {
		return src, dst, fmt.Errorf("%w: v1 addresses %q %q for %s", ErrBadProxyHeader, f[1], f[2], f[0])
	}
	sp, ok1 := parsePort(f[3])
	dp, ok2 := parsePort(f[4])
	if !ok1 || !ok2 {
		return src, dst, fmt.Errorf("%w: v1 ports %q %q", ErrBadProxyHeader, f[3], f[4])
	}
	return netip.AddrPortFrom(sa, sp), netip.AddrPortFrom(da, dp), nil
}

// parsePort parses 0..65535 in decimal without leading zeros.
func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return uint16(n), n <= 65535
}

func readProxyV2(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	hdr, err := br.Peek(16)
	if err != nil {
		if len(hdr) < len(proxyV2Sig) && !bytes.HasPrefix(proxyV2Sig[:], hdr) {
			return src, dst, ErrNoProxyHeader
		}
		return src, dst, fmt.Errorf("edge: PROXY v2 header: %w", unexpected(err))
	}
	if !bytes.Equal(hdr[:12], proxyV2Sig[:]) {
		return src, dst, ErrNoProxyHeader
	}
	verCmd, fam := hdr[12], hdr[13]
	length := int(binary.BigEndian.Uint16(hdr[14:16]))
	if verCmd>>4 != 2 {
		return src, dst, fmt.Errorf("%w: v2 version %d", ErrBadProxyHeader, verCmd>>4)
	}
	cmd := verCmd & 0xf
	if cmd > 1 {
		return src, dst, fmt.Errorf("%w: v2 command %d", ErrBadProxyHeader, cmd)
	}
	if cmd == 0 {
		// LOCAL: the family and the block are ignored (section 2.2).
		if n, err := br.Discard(16 + length); err != nil || n != 16+length {
			return src, dst, fmt.Errorf("edge: PROXY v2 header: %w", unexpected(err))
		}
		return src, dst, nil
	}
	var need int
	switch fam {
	case 0x00: // UNSPEC
	case 0x11, 0x12: // TCP4, UDP4
		need = 12
	case 0x21, 0x22: // TCP6, UDP6
		need = 36
	case 0x31, 0x32: // UNIX stream, dgram
		need = 216
	default:
		return src, dst, fmt.Errorf("%w: v2 address family 0x%02x", ErrBadProxyHeader, fam)
	}
	if length < need {
		return src, dst, fmt.Errorf("%w: v2 length %d, family 0x%02x needs %d", ErrBadProxyHeader, length, fam, need)
	}
	if _, err := br.Discard(16); err != nil {
		return src, dst, fmt.Errorf("edge: PROXY v2 header: %w", unexpected(err))
	}
	var addr [36]byte
	read := 0
	if need == 12 || need == 36 {
		if _, err := io.ReadFull(br, addr[:need]); err != nil {
			return src, dst, fmt.Errorf("edge: PROXY v2 addresses: %w", unexpected(err))
		}
		read = need
	}
	// TLVs and LOCAL/UNIX payloads are skipped; Discard does not buffer them.
	if n, err := br.Discard(length - read); err != nil || n != length-read {
		return src, dst, fmt.Errorf("edge: PROXY v2 header: %w", unexpected(err))
	}
	switch read {
	case 12:
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[0:4])), binary.BigEndian.Uint16(addr[8:10]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[4:8])), binary.BigEndian.Uint16(addr[10:12]))
	case 36:
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[0:16])), binary.BigEndian.Uint16(addr[32:34]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[16:32])), binary.BigEndian.Uint16(addr[34:36]))
	}
	return src, dst, nil
}

func unexpected(err error) error {
	if err == io.EOF || err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendProxyV1 appends a v1 header for a connection from src to dst: TCP4
// when both are IPv4, TCP6 otherwise (IPv4 written as ::ffff:a.b.c.d), and
// UNKNOWN when either is not valid.
func AppendProxyV1(b []byte, src, dst netip.AddrPort) []byte {
	if !src.IsValid() || !dst.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	sa, da := src.Addr().Unmap().WithZone(""), dst.Addr().Unmap().WithZone("")
	if sa.Is4() && da.Is4() {
		b = append(b, "PROXY TCP4 "...)
	} else {
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
		b = append(b, "PROXY TCP6 "...)
	}
	b = sa.AppendTo(b)
	b = append(b, ' ')
	b = da.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, '\r', '\n')
}

// AppendProxyV2 appends a v2 PROXY header (TCP over IPv4 when both are
// IPv4, TCP over IPv6 otherwise, UNSPEC when either is not valid) without
// TLVs.
func AppendProxyV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, proxyV2Sig[:]...)
	b = append(b, 0x21) // version 2, PROXY
	if !src.IsValid() || !dst.IsValid() {
		return append(b, 0x00, 0, 0)
	}
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() && da.Is4() {
		b = append(b, 0x11, 0, 12)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
