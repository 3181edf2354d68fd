//go:build linux

package shm

// PeerClosed reports, without receiving, whether the peer has closed the
// connection or died. A server that has stopped reading a client (to push
// back on it) asks, so that a client gone while held back does not have
// its backlog in the ring run for nobody.
func (c *Conn) PeerClosed() bool { return c.peerGone.Load() }
