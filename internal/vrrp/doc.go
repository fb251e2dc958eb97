// Package vrrp implements the Virtual Router Redundancy Protocol version 3
// (RFC 5798, with the clarifications of RFC 9568) for fulcrum's load
// balancers: the instances of one virtual router elect which of them holds
// the virtual addresses, and a backup takes them over when the master stops
// advertising.
//
// RFC 9568 renames the Master state Active (Active_Down_Interval, …); this
// package keeps RFC 5798's names, which keepalived and its users know.
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
// # Embedding in a load balancer
//
//   - FromConfig builds the virtual routers of the `vrrp` section of an LB
//     file (one, or more for active-active) as a Group.
//   - Frontends on a VIP are bound with ListenFreebind on every instance,
//     backup included, so that a takeover needs no rebind: connections
//     arrive as soon as VRRP adds the address to the interface.
//   - In ip mode Options.Released is called once the VIPs have left the
//     interface: the LB drains its connections on them, whose clients now
//     reach the peer. Their answers under way still leave from the VIP
//     (ListenFreebind's IP_TRANSPARENT).
//   - In local mode the VIP is the shared front address: Options.Up binds
//     it when the instance becomes master, Options.Down closes it.
//   - SetFault(backend, true) when every server of a tracked backend is
//     down, SetFault(backend, false) when one is back.
//   - Run until shutdown; cancel it first on SIGTERM, so that the priority 0
//     advert hands the VIP over in Skew_Time while the old master drains.
//   - Status feeds /metrics and the status page; OnChange sees every state
//     change as it happens.
//
// Receivers drop adverts whose TTL (hop limit) is not 255, in unicast mode
// too (RFC 5798 section 7.1; keepalived sends 255 in both modes), and
// adverts of other VRIDs.
package vrrp
