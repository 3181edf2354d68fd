package tcp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// pki is a throwaway CA and the PEM files of what it signed.
type pki struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func newCA(t testing.TB, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), cert: cert, key: key}
	p.write(t, name+".pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t testing.TB, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a certificate for name (a server's, for 127.0.0.1, or a
// client's) and returns its certificate and key files.
func (p *pki) issue(t testing.TB, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"tenant"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kder)
}

func (p *pki) caFile() string { return filepath.Join(p.dir, p.cert.Subject.CommonName+".pem") }

// tlsServer listens with a certificate of ca's, requiring client
// certificates of ca's when clientCerts.
func tlsServer(t testing.TB, ca *pki, clientCerts bool) *tcp.Listener {
	t.Helper()
	cert, key := ca.issue(t, "server", true)
	clientCA := ""
	if clientCerts {
		clientCA = ca.caFile()
	}
	cfg, err := tcp.ServerTLSConfig(cert, key, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.ListenTLS("127.0.0.1:0", cfg, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// clientConfig trusts ca and presents a certificate of issuer's named
// name, or none when issuer is nil.
func clientConfig(t testing.TB, ca, issuer *pki, name string) *tls.Config {
	t.Helper()
	var cert, key string
	if issuer != nil {
		cert, key = issuer.issue(t, name, false)
	}
	cfg, err := tcp.ClientTLSConfig(ca.caFile(), cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	if issuer != nil {
		// Present it whatever CAs the server names: Go's client would
		// otherwise keep a certificate the server does not trust to itself.
		own := cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &own, nil }
	}
	return cfg
}

// tlsPair connects a client with cfg to l and returns both ends.
func tlsPair(t testing.TB, l *tcp.Listener, cfg *tls.Config) (client, server transport.Conn) {
	t.Helper()
	type res struct {
		c   transport.Conn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		accepted <- res{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := tcp.DialTLS(ctx, l.Addr(), cfg, transport.Options{})
	if err != nil {
		t.Fatalf("DialTLS: %v", err)
	}
	r := <-accepted
	if r.err != nil {
		client.Close()
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// roundTrip sends a frame each way.
func roundTrip(t testing.TB, a, b transport.Conn) {
	t.Helper()
	payload := pattern(300<<10, 9) // large: written from the caller's slice
	if err := a.Send([]byte("call"), payload); err != nil {
		t.Fatal(err)
	}
	body, got, err := recvFrame(b)
	if err != nil || string(body) != "call" || string(got) != string(payload) {
		t.Fatalf("call arrived as %q with %d payload bytes, %v", body, len(got), err)
	}
	if err := transport.SendNow(b, []byte("reply"), nil); err != nil {
		t.Fatal(err)
	}
	if body, _, err := recvFrame(a); err != nil || string(body) != "reply" {
		t.Fatalf("reply arrived as %q, %v", body, err)
	}
}

func TestTLSRoundTrip(t *testing.T) {
	ca := newCA(t, "ca")
	l := tlsServer(t, ca, false)
	c, s := tlsPair(t, l, clientConfig(t, ca, nil, ""))
	roundTrip(t, c, s)
	ci, si := c.Info(), s.Info()
	if ci.Transport != tcp.Name || si.Transport != tcp.Name || !ci.Secure || !si.Secure {
		t.Fatalf("Info: %+v, %+v; want transport tcp, secure", ci, si)
	}
	if si.Peer != "tcp:127.0.0.1" || si.PeerSubject != "" {
		t.Errorf("server Info: Peer %q, PeerSubject %q; want tcp:127.0.0.1 and none", si.Peer, si.PeerSubject)
	}
	if !strings.Contains(ci.PeerSubject, "CN=server") {
		t.Errorf("client Info.PeerSubject = %q, want the server's", ci.PeerSubject)
	}
}

// TestTLSClientCerts: a listener that requires client certificates admits
// only clients with one of its CA's, and names them; the refused do not
// stop the listener, and a bystander connects.
func TestTLSClientCerts(t *testing.T) {
	ca, rogue := newCA(t, "ca"), newCA(t, "rogue")
	cases := []struct {
		name   string
		issuer *pki
		ok     bool
	}{
		{"no certificate", nil, false},
		{"unknown CA", rogue, false},
		{"our CA", ca, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := tlsServer(t, ca, true)
			cfg := clientConfig(t, ca, tc.issuer, "tenant-a")
			if tc.ok {
				c, s := tlsPair(t, l, cfg)
				roundTrip(t, c, s)
				if got := s.Info().PeerSubject; !strings.Contains(got, "CN=tenant-a") {
					t.Fatalf("server Info.PeerSubject = %q, want the client's", got)
				}
				return
			}
			// TLS 1.3 clients finish their side before the server has
			// checked their certificate: the refusal may come at the
			// first read.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := tcp.DialTLS(ctx, l.Addr(), cfg, transport.Options{})
			if err == nil {
				defer c.Close()
				c.Send([]byte("call"), nil)
				if _, _, err = c.Recv(); err == nil {
					t.Fatal("a client without a valid certificate got a reply")
				}
			}
			t.Logf("refused: %v", err)
			waitRejected(t, l, 1)
			bc, bs := tlsPair(t, l, clientConfig(t, ca, ca, "bystander"))
			roundTrip(t, bc, bs)
		})
	}
}

// waitRejected waits for l to count n rejected peers.
func waitRejected(t *testing.T, l *tcp.Listener, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); l.Rejected() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("listener counts %d rejected peers, want %d", l.Rejected(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTLSPlainClient: a plain client against a TLS listener fails cleanly
// and hurts no one.
func TestTLSPlainClient(t *testing.T) {
	ca := newCA(t, "ca")
	l := tlsServer(t, ca, false)
	c, err := tcp.Dial(context.Background(), l.Addr(), transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send([]byte("plain call"), nil)
	if _, _, err := c.Recv(); err == nil {
		t.Fatal("a plain client got a frame from a TLS listener")
	}
	waitRejected(t, l, 1)
	bc, bs := tlsPair(t, l, clientConfig(t, ca, nil, ""))
	roundTrip(t, bc, bs)
}

// TestTLSSilentPeers: peers that connect and never start their handshake
// do not hold up Accept for others.
func TestTLSSilentPeers(t *testing.T) {
	ca := newCA(t, "ca")
	l := tlsServer(t, ca, false)
	for range 20 {
		nc, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	bc, bs := tlsPair(t, l, clientConfig(t, ca, nil, ""))
	roundTrip(t, bc, bs)
}

func TestTLSAcceptClosed(t *testing.T) {
	ca := newCA(t, "ca")
	l := tlsServer(t, ca, false)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Accept still waiting 10 s after Close")
	}
}

func TestTLSConfigFiles(t *testing.T) {
	ca := newCA(t, "ca")
	cert, key := ca.issue(t, "server", true)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := tcp.ServerTLSConfig(cert, key, missing); err == nil {
		t.Error("ServerTLSConfig with a missing client CA file: no error")
	}
	if _, err := tcp.ServerTLSConfig(missing, key, ""); err == nil {
		t.Error("ServerTLSConfig with a missing certificate: no error")
	}
	if _, err := tcp.ClientTLSConfig(key, "", "", ""); err == nil {
		t.Error("ClientTLSConfig with a CA file holding no certificate: no error")
	}
	if _, err := tcp.ListenTLS("127.0.0.1:0", &tls.Config{}, transport.Options{}); err == nil {
		t.Error("ListenTLS without a certificate: no error")
	}
}

// benchPair returns a connected pair, over TLS or not.
func benchPair(b *testing.B, secure bool) (client, server transport.Conn) {
	if !secure {
		return pair(b, transport.Options{})
	}
	ca := newCA(b, "ca")
	return tlsPair(b, tlsServer(b, ca, false), clientConfig(b, ca, nil, ""))
}

// BenchmarkTLSRoundTrip: a small call and its reply, with and without TLS.
func BenchmarkTLSRoundTrip(b *testing.B) {
	for _, secure := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "tls"}[secure], func(b *testing.B) {
			c, s := benchPair(b, secure)
			go echo(s)
			body := make([]byte, 56)
			b.ReportAllocs()
			for b.Loop() {
				if err := transport.SendNow(c, body, nil); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/roundtrip")
		})
	}
}

// BenchmarkTLSStream64MiB: 64 MiB payloads one way, with and without TLS.
func BenchmarkTLSStream64MiB(b *testing.B) {
	const size = 64 << 20
	for _, secure := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "tls"}[secure], func(b *testing.B) {
			c, s := benchPair(b, secure)
			src, dst := pattern(size, 1), make([]byte, size)
			done := make(chan error, 1)
			b.SetBytes(size)
			b.ResetTimer()
			go func() {
				for range b.N {
					if _, _, err := s.Recv(); err != nil {
						done <- err
						return
					}
					if err := s.ReadPayload(dst); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if err := c.Send(nil, src); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/(1<<30), "GiB/s")
		})
	}
}
