//go:build linux

package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/transport"
)

// The greeting the server sends with the region's file descriptor.
const (
	greetingMagic = 0x4f4c4c4548534647 // "GFSHELLO" as a little-endian u64
	greetingSize  = 24                 // u64 magic, u32 version, u32 zero, u64 region size
	handshakeTime = 10 * time.Second   // bound on a handshake with no deadline of its own
)

// Listener accepts shared-memory connections on a Unix socket.
type Listener struct {
	l    *net.UnixListener
	opts Options
}

var _ transport.Listener = (*Listener)(nil)

// Listen listens on the Unix socket path; a leading "@" puts it in the
// abstract namespace. opts sets the sizes of the regions this listener
// creates.
func Listen(path string, opts Options) (*Listener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("shm: listen %s: %w", path, err)
	}
	return &Listener{l: l, opts: opts.withDefaults()}, nil
}

// Accept waits for the next client and sets up its region. An error from a
// failed handshake closes only that client's socket; the listener goes on,
// and errors.Is(err, net.ErrClosed) tells a closed listener.
func (l *Listener) Accept() (transport.Conn, error) {
	uc, err := l.l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	c, err := serverHandshake(uc, l.opts, l.Addr())
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("shm: accept on %s: %w", l.Addr(), err)
	}
	return c, nil
}

// Close stops listening.
func (l *Listener) Close() error { return l.l.Close() }

// Addr is the socket path listened on.
func (l *Listener) Addr() string { return l.l.Addr().String() }

func serverHandshake(uc *net.UnixConn, opts Options, local string) (*Conn, error) {
	g := geometry{ring: uint64(opts.RingSize), slab: uint64(opts.SlabSize)}
	if err := g.valid(); err != nil {
		return nil, err
	}
	reg, fd, err := createRegion(int(g.total()))
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd) // the message in flight holds its own reference
	writeHeader(reg.mem, g)

	var greet [greetingSize]byte
	binary.LittleEndian.PutUint64(greet[0:], greetingMagic)
	binary.LittleEndian.PutUint32(greet[8:], regionVersion)
	binary.LittleEndian.PutUint64(greet[16:], g.total())
	uc.SetWriteDeadline(time.Now().Add(handshakeTime))
	if _, _, err := uc.WriteMsgUnix(greet[:], unix.UnixRights(fd), nil); err != nil {
		reg.unmap()
		return nil, fmt.Errorf("send region: %w", err)
	}
	uc.SetWriteDeadline(time.Time{})

	remote := "unknown"
	if pid, err := peerPID(uc); err == nil {
		remote = fmt.Sprintf("pid:%d", pid)
	}
	info := transport.Info{Transport: Name, Local: local, Remote: remote}
	return newConn(uc, reg, g, true, opts, info), nil
}

// peerPID is the pid of the process at the other end of uc.
func peerPID(uc *net.UnixConn) (int32, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Pid, nil
}

// Dial connects to the server listening on path and maps the region it
// sends. Only opts' transport limits and Spin apply: the sizes are the
// server's. ctx bounds the connection and handshake.
func Dial(ctx context.Context, path string, opts Options) (transport.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("shm: dial %s: %w", path, err)
	}
	uc := nc.(*net.UnixConn)
	c, err := clientHandshake(ctx, uc, opts, path)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("shm: dial %s: %w", path, err)
	}
	return c, nil
}

func clientHandshake(ctx context.Context, uc *net.UnixConn, opts Options, path string) (*Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(handshakeTime)
	}
	uc.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var greet [greetingSize]byte
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for more fds than expected, to see them and close them
	n, oobn, flags, _, err := uc.ReadMsgUnix(greet[:], oob)
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for i := range msgs {
				if got, err := unix.ParseUnixRights(&msgs[i]); err == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd) // the mapping keeps the file
		}
	}()
	if err == nil && n < greetingSize {
		_, err = io.ReadFull(uc, greet[n:])
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("handshake: %w", cerr)
		}
		if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			// The read deadline was ctx's; its timer may not have fired yet.
			return nil, fmt.Errorf("handshake: %w: %w", context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("handshake: %w", err)
	}
	le := binary.LittleEndian
	switch {
	case le.Uint64(greet[0:]) != greetingMagic:
		return nil, errors.New("handshake: not a gpufabric shm server")
	case le.Uint32(greet[8:]) != regionVersion:
		return nil, fmt.Errorf("handshake: server speaks version %d, want %d", le.Uint32(greet[8:]), regionVersion)
	case flags&unix.MSG_CTRUNC != 0 || len(fds) != 1:
		return nil, fmt.Errorf("handshake: got %d file descriptors with the greeting, want 1", len(fds))
	}
	total := le.Uint64(greet[16:])
	if total < pageSize || total > pageSize+2*(maxRingSize+maxSlabSize) {
		return nil, fmt.Errorf("handshake: region of %d bytes announced", total)
	}
	if err := checkSealed(fds[0], int(total)); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	reg, err := mapRegion(fds[0], int(total))
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	g, err := readHeader(reg.mem)
	if err != nil {
		reg.unmap()
		return nil, fmt.Errorf("handshake: region header: %w", err)
	}
	if !stop() {
		reg.unmap()
		return nil, fmt.Errorf("handshake: %w", ctx.Err())
	}
	uc.SetReadDeadline(time.Time{})
	info := transport.Info{Transport: Name, Local: fmt.Sprintf("pid:%d", os.Getpid()), Remote: path}
	return newConn(uc, reg, g, false, opts, info), nil
}
