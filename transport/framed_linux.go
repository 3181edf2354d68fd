//go:build linux

package transport

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// writeNonblock makes one writev of bufs on rw's socket without waiting
// for room in it, and returns how much it took: 0 when the socket is full
// (EAGAIN), interrupted, failed (the writer goroutine's write then meets
// the error and reports it), or rw is not a socket of this process.
func writeNonblock(rw net.Conn, bufs [][]byte) int {
	sc, ok := rw.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var n int
	// Returning true ends the write after one attempt: the runtime never
	// parks the caller waiting for the socket to become writable.
	rc.Write(func(fd uintptr) bool {
		if m, err := unix.Writev(int(fd), bufs); err == nil {
			n = m
		}
		return true
	})
	return n
}
