// Package balance holds fulcrum's server selection algorithms: given the
// servers of one backend, their weights and whether they are usable, it
// says which one takes the next connection or request.
//
// The algorithms and the HAProxy 2.6 code whose behaviour they follow
// (doc/configuration.txt, "balance"):
//
//   - roundrobin: HAProxy's fast weighted round robin (src/lb_fwrr.c). Each
//     usable server has an effective weight of weight×16 (BE_WEIGHT_SCALE)
//     and a next position npos in a window as wide as the total effective
//     weight; picking a server advances npos by total/eweight, carrying the
//     remainder in rweight. Servers wait in three trees: "curr" ordered by
//     npos (heavier first on equal positions), "init" and "next" ordered by
//     weight; init and next swap when the window is used up. Weight changes
//     and servers going down or up follow fwrr_update_server_weight,
//     fwrr_set_server_status_down and fwrr_set_server_status_up, including
//     where a returning server is placed (curr_pos + remaining window /
//     eweight). For the same servers, weights and history, Pick returns the
//     sequence HAProxy 2.6 does, avoid (a redispatched retry) included;
//     TestHAProxyRoundRobin checks it against the real haproxy.
//   - static-rr: HAProxy's map (src/lb_map.c): a table of total-weight slots
//     (weights divided by their greatest common divisor) filled by
//     recalc_server_map and walked in order. HAProxy accepts only 0% or
//     100% as a runtime weight for static-rr and refuses `add server`;
//     fulcrum accepts any weight 0..256 and Add, and rebuilds the table.
//     With 0 or the initial weight it gives HAProxy's sequence
//     (TestHAProxyStaticRR). Where HAProxy walks the slots of an avoided
//     server one by one, Pick jumps to the same slot in O(1).
//   - leastconn: fewest in-flight connections relative to weight (key 0
//     when idle, else (inflight+1)/weight), ties in round robin order
//     because a server is requeued behind its equals (src/lb_fwlc.c).
//   - first: the first usable server in index order that is below its
//     MaxConn (src/lb_fas.c). When every usable server is at its MaxConn,
//     HAProxy queues the request; fulcrum returns the usable server with the
//     lowest in-flight/MaxConn ratio and leaves queueing to the caller.
//   - source, uri: consistent hashing in the manner of hash-type consistent
//     (src/lb_chash.c): a ring with 16 points per unit of weight; a key
//     goes to the owner of the first point at or after its hash. Removing
//     one of N servers moves only the keys it held, about 1/N of them.
//     Hashes (HashKey, FNV-1a then splitmix64) and points differ from
//     HAProxy's, so the mapping is fulcrum's own, but it depends only on
//     the key, the server indexes and their weights: two load balancers
//     with the same servers agree whatever their history.
//   - random: power of two random choices (random(2)): two servers drawn
//     with probability proportional to weight, the one with fewer in-flight
//     connections per unit of weight wins.
//
// Every Balancer is safe for concurrent use (one mutex each). Pick does
// not allocate and is O(log n) for n servers (O(log P) for the P ring
// points of source and uri, O(1) for static-rr). Weight and state changes
// are O(log n) for roundrobin and leastconn, O(n) for random, O(P) for
// source and uri, and O(total weight × n) for static-rr.
package balance
