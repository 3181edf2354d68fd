//go:build linux

package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// zeroCopier sends large payloads with MSG_ZEROCOPY: the kernel pins the
// pages and the NIC reads them, instead of copying them into socket
// buffers. Each sendmsg gets a number; the kernel reports on the socket's
// error queue, in ranges, when it has let go of each one's pages, and says
// whether it copied after all (SO_EE_CODE_ZEROCOPY_COPIED: on loopback,
// and where the device cannot gather from user pages). The payload must
// not change until then, so a batch's write returns only once every
// zero-copy send in it is released: the Conn's contract (Send returns once
// the payload is no longer needed) holds as it does for a plain write.
type zeroCopier struct {
	rc        syscall.RawConn
	threshold int

	next uint32 // number of the next zero-copy sendmsg
	done uint32 // every send numbered below done is released

	stats ZeroCopyStats
}

// ZeroCopyStats counts a connection's MSG_ZEROCOPY sends.
type ZeroCopyStats struct {
	// Sends are sendmsg calls with MSG_ZEROCOPY; Copied of them were
	// copied by the kernel after all (it says so in the completion).
	Sends, Copied atomic.Int64
	// Bytes went through them.
	Bytes atomic.Int64
	// Fallbacks are payloads written plainly because the kernel refused
	// (ENOBUFS: the socket's optmem limit).
	Fallbacks atomic.Int64
}

// newZeroCopier enables SO_ZEROCOPY on c's socket; nil when c is not a
// socket or the kernel refuses (before 4.14, or not TCP).
func newZeroCopier(c net.Conn, threshold int) *zeroCopier {
	sc, ok := c.(syscall.Conn)
	if !ok || threshold <= 0 {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ZEROCOPY, 1)
	}); err != nil || serr != nil {
		return nil
	}
	return &zeroCopier{rc: rc, threshold: threshold}
}

// write writes bufs to w in order: segments of at least the threshold with
// MSG_ZEROCOPY, the others gathered in plain writes between them. It
// returns once the kernel has released every zero-copy segment.
func (z *zeroCopier) write(w io.Writer, bufs net.Buffers) error {
	start := 0
	var err error
	for i, b := range bufs {
		if len(b) < z.threshold {
			continue
		}
		if i > start {
			small := net.Buffers(bufs[start:i])
			if _, err = small.WriteTo(w); err != nil {
				break
			}
		}
		if err = z.send(w, b); err != nil {
			break
		}
		start = i + 1
	}
	if err == nil && start < len(bufs) {
		rest := net.Buffers(bufs[start:])
		_, err = rest.WriteTo(w)
	}
	if werr := z.wait(); err == nil {
		err = werr
	}
	return err
}

// send writes b with MSG_ZEROCOPY, in as many sendmsg calls as the socket
// takes it in.
func (z *zeroCopier) send(w io.Writer, b []byte) error {
	for len(b) > 0 {
		var n int
		var serr error
		err := z.rc.Write(func(fd uintptr) bool {
			n, serr = unix.SendmsgN(int(fd), b, nil, nil, unix.MSG_ZEROCOPY)
			return serr != unix.EAGAIN
		})
		if err == nil {
			err = serr
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// Out of option memory for notifications: copy this one.
			z.stats.Fallbacks.Add(1)
			_, err := w.Write(b)
			return err
		case err != nil:
			return fmt.Errorf("transport: zero-copy send: %w", err)
		}
		z.next++
		z.stats.Sends.Add(1)
		z.stats.Bytes.Add(int64(n))
		b = b[n:]
	}
	return nil
}

// zeroCopyPoll is how long wait sleeps in poll before it looks again; a
// close of the socket shows as POLLNVAL or an error sooner.
const zeroCopyPoll = 100 * time.Millisecond

// wait reads completions from the error queue until every send so far is
// released.
func (z *zeroCopier) wait() error {
	oob := make([]byte, 256)
	for int32(z.next-z.done) > 0 {
		var got bool
		var rerr error
		err := z.rc.Control(func(fd uintptr) {
			got, rerr = z.readCompletion(int(fd), oob)
			if got || rerr != nil {
				return
			}
			// Nothing yet: sleep until the error queue has something.
			// Events 0: poll reports only POLLERR, POLLHUP and POLLNVAL.
			fds := []unix.PollFd{{Fd: int32(fd)}}
			if _, err := unix.Poll(fds, int(zeroCopyPoll/time.Millisecond)); err != nil && err != unix.EINTR {
				rerr = err
			} else if fds[0].Revents&(unix.POLLNVAL|unix.POLLHUP) != 0 {
				// POLLHUP: the peer is gone; the kernel has dropped the
				// send queue, and with it the pages.
				z.done = z.next
			}
		})
		if err != nil {
			return fmt.Errorf("transport: zero-copy completions: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("transport: zero-copy completions: %w", rerr)
		}
	}
	return nil
}

// readCompletion takes one notification from the error queue.
func (z *zeroCopier) readCompletion(fd int, oob []byte) (bool, error) {
	_, oobn, _, _, err := unix.Recvmsg(fd, nil, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if !(m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR ||
			m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			continue
		}
		ee, ok := parseExtendedErr(m.Data)
		if !ok || ee.Origin != unix.SO_EE_ORIGIN_ZEROCOPY {
			continue
		}
		// [Info, Data] are the numbers released, inclusive.
		if int32(ee.Data+1-z.done) > 0 {
			z.done = ee.Data + 1
		}
		if ee.Code&unix.SO_EE_CODE_ZEROCOPY_COPIED != 0 {
			z.stats.Copied.Add(int64(ee.Data - ee.Info + 1))
		}
	}
	return true, nil
}

// sizeofExtendedErr is sizeof(struct sock_extended_err).
const sizeofExtendedErr = 16

// parseExtendedErr decodes a struct sock_extended_err from a control
// message, field by field, so that no unsafe cast is needed.
func parseExtendedErr(b []byte) (unix.SockExtendedErr, bool) {
	if len(b) < sizeofExtendedErr {
		return unix.SockExtendedErr{}, false
	}
	return unix.SockExtendedErr{
		Errno:  binary.NativeEndian.Uint32(b[0:]),
		Origin: b[4],
		Type:   b[5],
		Code:   b[6],
		Pad:    b[7],
		Info:   binary.NativeEndian.Uint32(b[8:]),
		Data:   binary.NativeEndian.Uint32(b[12:]),
	}, true
}
