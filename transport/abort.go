package transport

import "net"

// Abort closes the connection at once and drops what the peer has not yet
// taken: over TCP it resets the connection (SO_LINGER 0) rather than
// closing it, so a server that was pushing back on us sees us gone now
// (Conn.PeerClosed) instead of reading, and running, whatever backlog the
// kernel still holds for it. A client uses it when it leaves without the
// server's goodbye.
func (c *FramedConn) Abort() error {
	nc := c.rw
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = u.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	return c.Close()
}

// Aborter is implemented by connections that can be closed abruptly,
// dropping what the peer has not read.
type Aborter interface {
	Abort() error
}

// Abort aborts c when it can, else closes it.
func Abort(c Conn) error {
	if a, ok := c.(Aborter); ok {
		return a.Abort()
	}
	return c.Close()
}
