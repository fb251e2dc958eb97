package dbha

// Socket is the node's unix socket, where root connects without a
// password whatever the network allows.
func (n LocalNode) Socket() string { return n.socket() }
