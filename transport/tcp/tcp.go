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

// Accept waits for the next connection.
func (l *Listener) Accept() (transport.Conn, error) {
	c, err := l.l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return wrap(c, l.opts), nil
}

// Close stops listening.
func (l *Listener) Close() error { return l.l.Close() }

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

func wrap(c *net.TCPConn, opts transport.Options) *transport.FramedConn {
	// Go sets TCP_NODELAY by default; say so, since batching without Nagle
	// is the design: the writer coalesces, the kernel must not wait.
	c.SetNoDelay(true)
	c.SetKeepAlive(true)
	info := transport.Info{Transport: Name, Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
	return transport.NewFramedConn(c, info, opts)
}
