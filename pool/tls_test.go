package pool

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA issues certificates for 127.0.0.1 into a test's directory.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newTestCA(t *testing.T) *testCA {
	ca := &testCA{t: t, dir: t.TempDir()}
	ca.cert, ca.key, ca.file = ca.issue("ca", nil)
	return ca
}

// issue makes a certificate signed by the CA (self-signed when usage is
// nil, for the CA itself) and returns it with its key and its file.
func (ca *testCA) issue(name string, usage []x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	parent, signer := tmpl, key
	if usage == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	} else {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(ca.dir, name+".pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return cert, key, file
}

// issueFiles issues a certificate and writes its key too.
func (ca *testCA) issueFiles(name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	_, key, certFile := ca.issue(name, []x509.ExtKeyUsage{usage})
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	keyFile = filepath.Join(ca.dir, name+"-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSStore serves the store over TLS with client certificates: a
// client with the CA and a certificate connects; one without a
// certificate, without the CA, or over plain TCP is refused.
func TestTLSStore(t *testing.T) {
	ca := newTestCA(t)
	srvCert, srvKey := ca.issueFiles("server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issueFiles("client", x509.ExtKeyUsageClientAuth)
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0", CertFile: srvCert, KeyFile: srvKey, ClientCA: ca.file})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx := context.Background()
	cli, err := Connect(ctx, StoreConfig{Endpoints: []string{e.ClientURL}, CA: ca.file, Cert: cliCert, Key: cliKey})
	if err != nil {
		t.Fatalf("a client with the CA and a certificate: %v", err)
	}
	defer cli.Close()
	if _, err := CreateToken(ctx, cli, Identity{User: "ann"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    StoreConfig
	}{
		{"no certificate", StoreConfig{Endpoints: []string{e.ClientURL}, CA: ca.file}},
		{"no CA", StoreConfig{Endpoints: []string{e.ClientURL}, Cert: cliCert, Key: cliKey}},
		{"plain TCP", StoreConfig{Endpoints: []string{"http://" + e.ClientURL[len("https://"):]}}},
	} {
		tc.c.DialTimeout = time.Second
		if c, err := Connect(ctx, tc.c); !errors.Is(err, ErrUnavailable) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: %v, want ErrUnavailable", tc.name, err)
		}
	}
	if _, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), CertFile: srvCert}); err == nil {
		t.Error("a certificate without its key was accepted")
	}
}
