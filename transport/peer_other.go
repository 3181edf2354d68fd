//go:build !linux

package transport

// PeerClosed cannot tell without reading on this platform: it reports false,
// and a closed peer is seen when the connection is next read.
func (c *FramedConn) PeerClosed() bool { return false }
