package tcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// TLS listeners run each peer's handshake on a goroutine of its own, off
// the accept loop, so that a slow or silent peer delays no other.
const (
	// TLSHandshakeTimeout bounds a peer's TLS handshake.
	TLSHandshakeTimeout = 10 * time.Second
	// MaxTLSHandshakes bounds the handshakes a TLS listener runs at once,
	// counting connections waiting for Accept; past it new peers are
	// closed at once.
	MaxTLSHandshakes = 64
)

// ErrBusy is why a TLS listener closed a peer at once: MaxTLSHandshakes
// handshakes were in progress.
var ErrBusy = errors.New("tcp: too many TLS handshakes in progress")

// tlsAcceptor is the part of a Listener that serves TLS.
type tlsAcceptor struct {
	cfg      *tls.Config
	ready    chan *transport.FramedConn
	errs     chan error
	slots    chan struct{}
	done     chan struct{}
	rejected atomic.Uint64
	wg       sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{}
	closed  bool
}

// ListenTLS listens on addr ("host:port") and serves TLS with cfg, which
// must hold a certificate; setting cfg.ClientAuth and cfg.ClientCAs asks
// peers for certificates, whose verified subject their connection's
// Info.PeerSubject then carries (see ServerTLSConfig). Conns it accepts
// have Info.Transport "tcp" and Info.Secure set.
//
// Accept returns only handshaken connections; a peer whose handshake fails
// or takes longer than TLSHandshakeTimeout is closed and counted
// (Rejected), and never makes Accept fail.
func ListenTLS(addr string, cfg *tls.Config, opts transport.Options) (*Listener, error) {
	if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil) {
		return nil, fmt.Errorf("tcp: listen %s: TLS config without a certificate", addr)
	}
	l, err := Listen(addr, opts)
	if err != nil {
		return nil, err
	}
	l.tls = &tlsAcceptor{
		cfg:     cfg.Clone(),
		ready:   make(chan *transport.FramedConn),
		errs:    make(chan error),
		slots:   make(chan struct{}, MaxTLSHandshakes),
		done:    make(chan struct{}),
		pending: make(map[net.Conn]struct{}),
	}
	l.tls.wg.Add(1)
	go l.acceptTLS()
	return l, nil
}

// Rejected is the number of peers a TLS listener closed because their
// handshake failed or there were too many; 0 for a plain listener.
func (l *Listener) Rejected() uint64 {
	if l.tls == nil {
		return 0
	}
	return l.tls.rejected.Load()
}

// acceptTLS accepts peers and starts their handshakes. An accept error is
// the listener's (out of file descriptors, say): it waits for an Accept to
// take it, so the loop goes no faster than its caller retries.
func (l *Listener) acceptTLS() {
	a := l.tls
	defer a.wg.Done()
	for {
		c, err := l.l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case a.errs <- err:
				continue
			case <-a.done:
				return
			}
		}
		select {
		case a.slots <- struct{}{}:
		default:
			a.rejected.Add(1)
			c.Close()
			continue
		}
		if !a.track(c) {
			c.Close()
			<-a.slots
			return
		}
		a.wg.Add(1)
		go l.serveTLS(c)
	}
}

func (a *tlsAcceptor) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.pending[c] = struct{}{}
	return true
}

func (a *tlsAcceptor) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.pending, c)
	a.mu.Unlock()
}

// serveTLS runs one peer's handshake and hands its connection to Accept.
func (l *Listener) serveTLS(c *net.TCPConn) {
	a := l.tls
	defer a.wg.Done()
	tc := tls.Server(c, a.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), TLSHandshakeTimeout)
	c.SetDeadline(time.Now().Add(TLSHandshakeTimeout)) // for a peer that stalls after the handshake's last read
	err := tc.HandshakeContext(ctx)
	cancel()
	c.SetDeadline(time.Time{})
	a.untrack(c)
	if err != nil {
		c.Close()
		<-a.slots
		select {
		case <-a.done: // aborted by Close: not the peer's doing
		default:
			a.rejected.Add(1)
		}
		return
	}
	fc := wrapTLS(c, tc, l.opts)
	// The slot is held until Accept takes the connection.
	select {
	case a.ready <- fc:
	case <-a.done:
		fc.Close()
	}
	<-a.slots
}

// accept waits for the next handshaken connection. It fails only when
// the listener is closed (errors.Is(err, net.ErrClosed)) or accepting
// failed at the listener, for want of file descriptors or memory: back off
// and call Accept again.
func (a *tlsAcceptor) accept() (transport.Conn, error) {
	select {
	case c := <-a.ready:
		return c, nil
	case err := <-a.errs:
		return nil, err
	case <-a.done:
		return nil, net.ErrClosed
	}
}

// close stops the handshakes in progress and waits for the goroutines;
// l.l is closed by then.
func (a *tlsAcceptor) close(closeListener func() error) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.done)
	for c := range a.pending {
		c.Close()
	}
	a.mu.Unlock()
	err := closeListener()
	a.wg.Wait()
	return err
}

// DialTLS connects to addr over TLS with cfg (see ClientTLSConfig); the
// server's name defaults to addr's host. ctx bounds the connection and
// the handshake. The Conn's Info has Secure set, and PeerSubject the
// server certificate's subject.
func DialTLS(ctx context.Context, addr string, cfg *tls.Config, opts transport.Options) (transport.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
	}
	c := nc.(*net.TCPConn)
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tcp: dial %s: TLS handshake: %w", addr, err)
	}
	return wrapTLS(c, tc, opts), nil
}

// wrapTLS frames a handshaken TLS connection over c.
//
// Writes go through tc, so TrySend never writes from its caller here: it
// queues and leaves the write to the connection's writer. Close sends
// TLS's close_notify, unless a write is in flight (then it just closes
// the socket); against a peer that reads nothing and a full socket
// buffer, that alert can take crypto/tls's bound of 5 s.
func wrapTLS(c *net.TCPConn, tc *tls.Conn, opts transport.Options) *transport.FramedConn {
	c.SetNoDelay(true)
	c.SetKeepAlive(true)
	in := info(c)
	in.Secure = true
	if cs := tc.ConnectionState(); len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0 {
		in.PeerSubject = cs.PeerCertificates[0].Subject.String()
	}
	return transport.NewFramedConn(tc, in, opts)
}

// ServerTLSConfig builds a server's TLS config from PEM files: its
// certificate (with the chain to present) and key, and, when clientCAFile
// is not empty, the CAs whose client certificates it requires and
// verifies. For optional client certificates, set ClientAuth to
// tls.VerifyClientCertIfGiven on the result.
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tcp: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tcp: client CAs: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLSConfig builds a client's TLS config from PEM files: the CAs it
// trusts (the system's when caFile is empty), its certificate and key
// when certFile is not empty, and the name the server's certificate must
// carry (addr's host when empty; see DialTLS).
func ClientTLSConfig(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("tcp: server CAs: %w", err)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tcp: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", file)
	}
	return pool, nil
}
