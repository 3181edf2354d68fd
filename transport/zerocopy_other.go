//go:build !linux

package transport

import (
	"io"
	"net"
	"sync/atomic"
)

// zeroCopier is Linux's MSG_ZEROCOPY; elsewhere connections write plainly.
type zeroCopier struct{ stats ZeroCopyStats }

// ZeroCopyStats counts a connection's MSG_ZEROCOPY sends: none here.
type ZeroCopyStats struct {
	Sends, Copied, Bytes, Fallbacks atomic.Int64
}

func newZeroCopier(net.Conn, int) *zeroCopier { return nil }

func (z *zeroCopier) write(w io.Writer, bufs net.Buffers) error {
	_, err := bufs.WriteTo(w)
	return err
}
