//go:build linux

package shm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
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

// The handshake. The client speaks first, before the server has spent
// anything on it: a preamble of u64 magic, u32 version, u32 token length,
// then the token. The server checks who the peer is (SO_PEERCRED) and its
// token, and only then creates the region and answers with the greeting,
// carrying the region's file descriptor.
const (
	preambleMagic = 0x494c434d48534647 // "GFSHMCLI" as a little-endian u64
	preambleSize  = 16                 // u64 magic, u32 version, u32 token length
	greetingMagic = 0x4f4c4c4548534647 // "GFSHELLO" as a little-endian u64
	greetingSize  = 24                 // u64 magic, u32 version, u32 zero, u64 region size
	// handshakeVersion is the version of the preamble and the greeting: 3
	// since the client's preamble (2 was the region's version, a greeting
	// sent unasked).
	handshakeVersion = 3
	handshakeTime    = 10 * time.Second // bound on a Dial with no deadline of its own
)

// Listener accepts shared-memory connections on a Unix socket.
//
// Peers are accepted by a goroutine of the listener's own and their
// handshakes run concurrently, each under Options.HandshakeTimeout, at
// most Options.MaxHandshakes at once: a slow or hostile peer delays no
// other. A peer is admitted, and its region created, only once its
// credentials and token pass (see Options.Token). A peer that fails is
// closed, counted (Rejected) and reported to Options.OnReject; it never
// makes Accept fail.
type Listener struct {
	l    *net.UnixListener
	opts Options
	uid  uint32 // the server's user
	adm  *transport.Admission
}

var _ transport.Listener = (*Listener)(nil)

// Listen listens on the Unix socket path; a leading "@" puts it in the
// abstract namespace. opts sets the sizes of the regions this listener
// creates, who it admits and how it bounds handshakes.
func Listen(path string, opts Options) (*Listener, error) {
	opts = opts.withDefaults()
	if len(opts.Token) > MaxTokenLen {
		return nil, fmt.Errorf("shm: listen %s: token of %d bytes, the most is %d", path, len(opts.Token), MaxTokenLen)
	}
	if err := (geometry{ring: uint64(opts.RingSize), slab: uint64(opts.SlabSize)}).valid(); err != nil {
		return nil, fmt.Errorf("shm: listen %s: %w", path, err)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("shm: listen %s: %w", path, err)
	}
	l := &Listener{l: ul, opts: opts, uid: uint32(os.Geteuid())}
	l.adm = transport.NewAdmission(func() (net.Conn, error) { return ul.AcceptUnix() }, opts.MaxHandshakes,
		l.handshake, func(c net.Conn, err error) {
			if opts.OnReject != nil {
				opts.OnReject(describePeer(c.(*net.UnixConn)), err)
			}
		})
	return l, nil
}

// Accept waits for the next admitted peer with its region set up. It
// fails only when:
//   - the listener is closed: errors.Is(err, net.ErrClosed); stop.
//   - accepting failed at the listener, not because of a peer: out of file
//     descriptors (errors.Is(err, syscall.EMFILE) or ENFILE) or kernel
//     memory (ENOBUFS, ENOMEM). The listener goes on: back off and call
//     Accept again.
//
// A peer's failure (it closed, stalled, was not admitted) never makes
// Accept fail; see Options.OnReject.
func (l *Listener) Accept() (transport.Conn, error) {
	c, err := l.adm.Accept()
	if err != nil {
		return nil, fmt.Errorf("shm: accept on %s: %w", l.Addr(), err)
	}
	return c, nil
}

// Close stops listening, aborts the handshakes in progress and waits for
// the listener's goroutines. Connections already accepted stay open.
func (l *Listener) Close() error { return l.adm.Close(l.l.Close) }

// Addr is the socket path listened on.
func (l *Listener) Addr() string { return l.l.Addr().String() }

// Rejected is the number of peers turned away or whose handshake failed.
func (l *Listener) Rejected() uint64 { return l.adm.Rejected() }

// handshake admits the peer and sets up its region, all within the
// handshake timeout.
func (l *Listener) handshake(nc net.Conn) (transport.Conn, error) {
	uc := nc.(*net.UnixConn)
	cred, err := peerCred(uc)
	if err != nil {
		return nil, fmt.Errorf("peer credentials: %w", err)
	}
	uc.SetDeadline(time.Now().Add(l.opts.HandshakeTimeout))
	// Turn away another user at once when no token could admit it.
	if !trusted(cred.Uid, l.uid) && l.opts.Token == "" {
		return nil, fmt.Errorf("%w: uid %d, and the listener takes no token", ErrNotAdmitted, cred.Uid)
	}
	token, err := readPreamble(uc)
	if err != nil {
		return nil, err
	}
	if err := admit(cred.Uid, l.uid, token, l.opts.Token); err != nil {
		return nil, err
	}
	c, err := serverHandshake(uc, l.opts, l.Addr(), cred)
	if err != nil {
		return nil, err
	}
	uc.SetDeadline(time.Time{})
	return c, nil
}

// trusted reports whether a peer of uid is admitted without a token: it
// is the server's user, or root, who could read the server's memory anyway.
func trusted(uid, server uint32) bool { return uid == server || uid == 0 }

// admit decides whether a peer of uid that presented token may connect
// to a server of user server whose listener's token is want.
func admit(uid, server uint32, token []byte, want string) error {
	if trusted(uid, server) {
		return nil
	}
	if want == "" {
		return fmt.Errorf("%w: uid %d, and the listener takes no token", ErrNotAdmitted, uid)
	}
	// Compare digests, so that the time taken tells nothing of the token,
	// its length included.
	got, exp := sha256.Sum256(token), sha256.Sum256([]byte(want))
	if len(token) == 0 || subtle.ConstantTimeCompare(got[:], exp[:]) != 1 {
		return fmt.Errorf("%w: uid %d did not present the listener's token", ErrNotAdmitted, uid)
	}
	return nil
}

// readPreamble reads the client's preamble and returns its token.
func readPreamble(uc *net.UnixConn) ([]byte, error) {
	var b [preambleSize]byte
	if _, err := io.ReadFull(uc, b[:]); err != nil {
		return nil, fmt.Errorf("preamble: %w", err)
	}
	le := binary.LittleEndian
	switch {
	case le.Uint64(b[0:]) != preambleMagic:
		return nil, errors.New("preamble: not a gpufabric shm client")
	case le.Uint32(b[8:]) != handshakeVersion:
		return nil, fmt.Errorf("preamble: client speaks version %d, want %d", le.Uint32(b[8:]), handshakeVersion)
	}
	n := le.Uint32(b[12:])
	if n > MaxTokenLen {
		return nil, fmt.Errorf("preamble: token of %d bytes, the most is %d", n, MaxTokenLen)
	}
	token := make([]byte, n)
	if _, err := io.ReadFull(uc, token); err != nil {
		return nil, fmt.Errorf("preamble: token: %w", err)
	}
	return token, nil
}

// preamble is the client's preamble presenting token.
func preamble(token string) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, preambleSize+len(token)), preambleMagic)
	b = binary.LittleEndian.AppendUint32(b, handshakeVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(token)))
	return append(b, token...)
}

// serverHandshake creates an admitted peer's region and sends it.
func serverHandshake(uc *net.UnixConn, opts Options, local string, cred *unix.Ucred) (*Conn, error) {
	g := geometry{ring: uint64(opts.RingSize), slab: uint64(opts.SlabSize)}
	reg, fd, err := createRegion(int(g.total()))
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd) // the message in flight holds its own reference
	writeHeader(reg.mem, g)

	var greet [greetingSize]byte
	binary.LittleEndian.PutUint64(greet[0:], greetingMagic)
	binary.LittleEndian.PutUint32(greet[8:], handshakeVersion)
	binary.LittleEndian.PutUint64(greet[16:], g.total())
	if _, _, err := uc.WriteMsgUnix(greet[:], unix.UnixRights(fd), nil); err != nil {
		reg.unmap()
		return nil, fmt.Errorf("send region: %w", err)
	}
	info := transport.Info{
		Transport: Name,
		Local:     local,
		Remote:    fmt.Sprintf("pid:%d", cred.Pid),
		Peer:      fmt.Sprintf("uid:%d", cred.Uid),
	}
	return newConn(uc, reg, g, true, opts, info), nil
}

// peerCred is the identity of the process at the other end of uc, as the
// kernel saw it when the connection was made.
func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	return cred, nil
}

// describePeer names the peer of uc for OnReject.
func describePeer(uc *net.UnixConn) string {
	cred, err := peerCred(uc)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("uid:%d pid:%d", cred.Uid, cred.Pid)
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
	if len(opts.Token) > MaxTokenLen {
		return nil, fmt.Errorf("handshake: token of %d bytes, the most is %d", len(opts.Token), MaxTokenLen)
	}
	uc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// Speak first: the server creates nothing until it has our preamble.
	_, err := uc.Write(preamble(opts.Token))
	if err != nil {
		return nil, handshakeErr(ctx, "preamble", err)
	}

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
		return nil, handshakeErr(ctx, "greeting", err)
	}
	le := binary.LittleEndian
	switch {
	case le.Uint64(greet[0:]) != greetingMagic:
		return nil, errors.New("handshake: not a gpufabric shm server")
	case le.Uint32(greet[8:]) != handshakeVersion:
		return nil, fmt.Errorf("handshake: server speaks version %d, want %d", le.Uint32(greet[8:]), handshakeVersion)
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
	uc.SetDeadline(time.Time{})
	info := transport.Info{Transport: Name, Local: fmt.Sprintf("pid:%d", os.Getpid()), Remote: path}
	if cred, err := peerCred(uc); err == nil {
		info.Peer = fmt.Sprintf("uid:%d", cred.Uid)
	}
	return newConn(uc, reg, g, false, opts, info), nil
}

// handshakeErr describes a failed handshake step: ctx's error when ctx
// ended it, and a hint when the server closed on us, which is how it turns
// a peer away.
func handshakeErr(ctx context.Context, step string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("handshake: %w", cerr)
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline was ctx's; its timer may not have fired yet.
		return fmt.Errorf("handshake: %w: %w", context.DeadlineExceeded, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("handshake: the server closed the connection at the %s (turned away: another user without its token, or too many handshakes?): %w", step, err)
	}
	return fmt.Errorf("handshake: %s: %w", step, err)
}
