package tcp

import (
	"context"
	"fmt"
	"net"

	"github.com/gpufabric/gpufabric/transport"
)

// Name is the transport's name in Info and in selection.
const Name = "tcp"

// Listener accepts framed TCP connections.
type Listener struct {
	l    *net.TCPListener
	opts transport.Options
	tls  *transport.Admission // TLS handshakes; nil: plain TCP
}

var _ transport.Listener = (*Listener)(nil)

// Listen listens on addr ("host:port"; port 0 picks one).
func Listen(addr string, opts transport.Options) (*Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen %s: %w", addr, err)
	}
	return &Listener{l: l.(*net.TCPListener), opts: opts}, nil
}

// Accept waits for the next connection. On a TLS listener, the next
// handshaken one; see ListenTLS.
func (l *Listener) Accept() (transport.Conn, error) {
	if l.tls != nil {
		c, err := l.tls.Accept()
		if err != nil {
			return nil, fmt.Errorf("tcp: accept on %s: %w", l.Addr(), err)
		}
		return c, nil
	}
	c, err := l.l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return wrap(c, l.opts), nil
}

// Close stops listening. On a TLS listener it also ends the handshakes in
// progress; connections already accepted stay open.
func (l *Listener) Close() error {
	if l.tls != nil {
		return l.tls.Close(l.l.Close)
	}
	return l.l.Close()
}

// Addr is the address listened on.
func (l *Listener) Addr() string { return l.l.Addr().String() }

// Dial connects to addr.
func Dial(ctx context.Context, addr string, opts transport.Options) (transport.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
	}
	return wrap(c.(*net.TCPConn), opts), nil
}

// DefaultZeroCopy is the smallest write sent with MSG_ZEROCOPY to a peer
// on another host, when Options.ZeroCopy is 0 (negative turns it off).
// Never on loopback: there the kernel copies anyway, and pinning pages and
// reading completions made 16 KiB-4 MiB payloads 0.35-0.55x as fast as
// plain writes (BenchmarkZeroCopy, docs/benchmarks.md). On a NIC it saves
// the copy into socket buffers, but a write then waits until the peer has
// acknowledged the data (the kernel holds the pages for retransmission):
// a megabyte amortises that round trip (1 MiB takes 335 us at 25 Gb/s;
// a data-centre round trip is 20-50 us).
const DefaultZeroCopy = 1 << 20

func wrap(c *net.TCPConn, opts transport.Options) *transport.FramedConn {
	// Go sets TCP_NODELAY by default; say so, since batching without Nagle
	// is the design: the writer coalesces, the kernel must not wait.
	c.SetNoDelay(true)
	c.SetKeepAlive(true)
	if opts.ZeroCopy == 0 && !isLoopback(c.RemoteAddr()) {
		opts.ZeroCopy = DefaultZeroCopy
	}
	return transport.NewFramedConn(c, info(c), opts)
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// info describes c, a plain TCP connection.
func info(c net.Conn) transport.Info {
	return transport.Info{
		Transport: Name,
		Local:     c.LocalAddr().String(),
		Remote:    c.RemoteAddr().String(),
		Peer:      peerOf(c.RemoteAddr()),
	}
}

// peerOf identifies a remote address for per-peer limits: its IP, without
// the port, which a client picks at will.
func peerOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return "tcp:" + ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return "tcp:" + a.String()
	}
	return "tcp:" + host
}
