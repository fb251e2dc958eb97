package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
)

// UDPTransport carries adverts over unicast UDP between instances on one
// machine: local mode, which needs neither root nor an interface. The
// adverts are the same VRRPv3 messages, checksummed over the IPv4 or IPv6
// pseudo-header of the UDP endpoints.
type UDPTransport struct {
	conn  *net.UDPConn
	self  netip.AddrPort
	peers []netip.AddrPort
}

var _ Transport = (*UDPTransport)(nil)

// ListenUDP listens on listen (port 0 picks one) and sends to peers. Only
// adverts from peers are received.
func ListenUDP(listen netip.AddrPort, peers []netip.AddrPort) (*UDPTransport, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return nil, fmt.Errorf("vrrp: local mode: %w", err)
	}
	self := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	self = netip.AddrPortFrom(self.Addr().Unmap(), self.Port())
	return &UDPTransport{conn: conn, self: self, peers: peers}, nil
}

// SetPeers replaces the peers; for tests that learn ports after listening.
// It must be called before the router runs.
func (t *UDPTransport) SetPeers(peers []netip.AddrPort) { t.peers = peers }

// Send implements Transport.
func (t *UDPTransport) Send(a *Advert) error {
	var first error
	for _, p := range t.peers {
		b, err := a.Marshal(t.self.Addr(), p.Addr())
		if err != nil {
			return err
		}
		// A peer that is down refuses; the others must still hear us.
		if _, err := t.conn.WriteToUDPAddrPort(b, p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Receive implements Transport.
func (t *UDPTransport) Receive() (Packet, error) {
	buf := make([]byte, 1500)
	for {
		n, src, err := t.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isConnRefused(err) {
				continue // the ICMP of an earlier send to a stopped peer
			}
			return Packet{}, err
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !slices.Contains(t.peers, src) {
			continue
		}
		return Packet{Src: src, Dst: t.self.Addr(), TTL: -1, Data: slices.Clone(buf[:n])}, nil
	}
}

// LocalAddr implements Transport.
func (t *UDPTransport) LocalAddr() netip.AddrPort { return t.self }

// Close implements Transport.
func (t *UDPTransport) Close() error { return t.conn.Close() }

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
