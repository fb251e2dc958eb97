// Package vrrp implements the Virtual Router Redundancy Protocol version 3
// (RFC 5798, with the clarifications of RFC 9568) for fulcrum's load
// balancers: the instances of one virtual router elect which of them holds
// the virtual addresses, and a backup takes them over when the master stops
// advertising.
//
// The package has three layers, each behind a small interface so that the
// election can be tested without sockets or root:
//
//   - Advert: the VRRPv3 advertisement, its wire format and checksum.
//   - Router: the RFC state machine (Initialize, Backup, Master), driven by
//     an injected Clock, a Transport that carries adverts and a VIPs that
//     holds or releases the virtual addresses.
//   - Transports and VIP handlers: raw IP protocol 112 (multicast to
//     224.0.0.18 / ff02::12, or unicast to listed peers) with netlink and
//     gratuitous ARP / unsolicited neighbour advertisements for real
//     networks; unicast UDP on loopback with a callback into the owner for
//     local mode (one machine, no root), where "holding the VIP" means
//     serving a shared front address.
//
// FromConfig builds a Router from the `vrrp` section of an LB file, and
// ListenFreebind lets a load balancer bind a frontend on a VIP it does not
// hold yet.
package vrrp
