package tcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
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
var ErrBusy = transport.ErrBusy

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
	cfg = cfg.Clone()
	l.tls = transport.NewAdmission(func() (net.Conn, error) { return l.l.AcceptTCP() }, MaxTLSHandshakes,
		func(c net.Conn) (transport.Conn, error) { return handshakeTLS(c.(*net.TCPConn), cfg, opts) }, nil)
	return l, nil
}

// Rejected is the number of peers a TLS listener closed because their
// handshake failed or there were too many; 0 for a plain listener.
func (l *Listener) Rejected() uint64 {
	if l.tls == nil {
		return 0
	}
	return l.tls.Rejected()
}

// handshakeTLS runs a peer's TLS handshake, within TLSHandshakeTimeout.
func handshakeTLS(c *net.TCPConn, cfg *tls.Config, opts transport.Options) (transport.Conn, error) {
	tc := tls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), TLSHandshakeTimeout)
	defer cancel()
	c.SetDeadline(time.Now().Add(TLSHandshakeTimeout)) // for a peer that stalls after the handshake's last read
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return wrapTLS(c, tc, opts), nil
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
