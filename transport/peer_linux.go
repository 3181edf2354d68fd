//go:build linux

package transport

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerClosed reports, without reading, whether the peer has closed its end
// of the connection or it has failed: a zero-timeout poll for POLLRDHUP,
// which the kernel sets on the peer's FIN even while unread data is still
// queued. A server that has stopped reading a client (to push back on it)
// asks, so that a client gone while held back does not have the backlog
// still in the socket run for nobody.
func (c *FramedConn) PeerClosed() bool {
	nc := c.rw
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			closed = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return closed || err != nil
}
