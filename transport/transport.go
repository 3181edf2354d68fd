package transport

import (
	"errors"
	"fmt"
)

// Conn is one connection's frame stream. Send may be called from many
// goroutines at once; Recv and ReadPayload from one.
type Conn interface {
	// Send queues one frame. body is copied before Send returns. A payload
	// of at most the connection's eager limit is copied too; a larger one is
	// written from the caller's slice, and Send returns once it is no longer
	// needed. Frames are delivered in the order their Sends returned.
	Send(body, payload []byte) error

	// Recv returns the next frame's body and the length of its payload.
	// The body is valid until the next Recv. A payload must be consumed with
	// ReadPayload before the next Recv, or it is discarded.
	Recv() (body []byte, payloadLen int, err error)

	// ReadPayload reads the current frame's payload into dst, which must be
	// exactly as long as Recv said.
	ReadPayload(dst []byte) error

	// Close closes the connection; blocked calls return ErrClosed.
	Close() error

	// Info describes the connection, for logs, diagnostics and selection.
	Info() Info
}

// Urgent is implemented by connections that can write a frame at once,
// from the caller, rather than hand it to a writer: for calls whose sender
// waits for the answer, and for answers someone waits for. It has Send's
// contract, and the frame has been written when it returns.
type Urgent interface {
	SendNow(body, payload []byte) error
}

// SendNow sends a frame with c's SendNow when it has one, else with Send.
func SendNow(c Conn, body, payload []byte) error {
	if u, ok := c.(Urgent); ok {
		return u.SendNow(body, payload)
	}
	return c.Send(body, payload)
}

// TrySender is implemented by connections that can send a frame without
// waiting: for a server thread that must never wait on a client (a GPU
// shard replying to a session whose peer stopped reading).
//
// TrySend either sends or queues the whole frame without waiting for the
// peer or for another sender, and returns nil, with body and payload copied
// or written, so the caller may reuse them at once; or it sends nothing and
// returns ErrWouldBlock. Other errors are Send's. A frame sent with TrySend
// keeps its place in the connection's send order among frames sent with
// Send and SendNow.
type TrySender interface {
	TrySend(body, payload []byte) error
}

// TrySend sends a frame with c's TrySend when it has one; a Conn without
// one cannot promise not to wait, so TrySend returns ErrWouldBlock.
func TrySend(c Conn, body, payload []byte) error {
	if t, ok := c.(TrySender); ok {
		return t.TrySend(body, payload)
	}
	return ErrWouldBlock
}

// Listener accepts connections of one transport.
type Listener interface {
	Accept() (Conn, error)
	Close() error
	Addr() string
}

// Info describes a connection.
type Info struct {
	Transport string // "tcp", "shm", "rdma"
	Local     string
	Remote    string
	// Peer identifies who is at the other end, stably across connections,
	// for per-peer limits: "uid:N" for shared memory (the peer process's
	// user, from the kernel), "tcp:IP" for TCP (the address without port).
	// Empty when unknown, as on the dialing side.
	Peer string
	// Secure reports that the stream is encrypted and the server
	// authenticated (TLS).
	Secure bool
	// PeerSubject is the subject of the peer's verified certificate, when
	// it presented one over TLS.
	PeerSubject string
}

// Options tune a connection. The zero value means the defaults.
type Options struct {
	// EagerLimit is the largest payload Send copies; larger ones are written
	// from the caller's memory.
	EagerLimit int
	// MaxBody bounds a received body; a larger one closes the connection.
	MaxBody int
	// MaxPayload bounds a received payload; a larger one closes the connection.
	MaxPayload int
	// MaxQueued bounds the bytes waiting to be written; Send blocks past
	// it, TrySend refuses a frame that would pass it.
	MaxQueued int
	// ZeroCopy is the smallest write a FramedConn on a TCP socket makes
	// with MSG_ZEROCOPY (Linux); 0 or less makes none. transport/tcp picks
	// its default for 0, by where it pays.
	ZeroCopy int
}

// Defaults. EagerLimit is where a copy into the send queue starts costing
// more than waiting for the write: measured with BenchmarkSendPayload, the
// gathered write of a caller's slice wins from about 64 KiB on loopback.
const (
	DefaultEagerLimit = 64 << 10
	DefaultMaxBody    = 1 << 20
	DefaultMaxPayload = 1 << 30
	DefaultMaxQueued  = 8 << 20
)

func (o Options) withDefaults() Options {
	if o.EagerLimit <= 0 {
		o.EagerLimit = DefaultEagerLimit
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	return o
}

var (
	// ErrClosed is returned by calls on a closed connection.
	ErrClosed = errors.New("transport: connection closed")
	// ErrFrameTooLarge is returned when a peer announces a body or payload
	// past the limits; the connection is closed.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrNotSupported is returned by transports that this host cannot use.
	ErrNotSupported = errors.New("transport: not supported on this host")
	// ErrWouldBlock is returned by TrySend when the frame cannot be sent
	// without waiting; nothing was sent.
	ErrWouldBlock = errors.New("transport: send would block")
)

// FrameError describes a framing violation by the peer.
type FrameError struct {
	What  string
	Size  int
	Limit int
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("transport: %s of %d bytes exceeds the limit of %d", e.What, e.Size, e.Limit)
}

func (e *FrameError) Is(target error) bool { return target == ErrFrameTooLarge }
