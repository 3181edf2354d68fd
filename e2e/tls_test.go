package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a CA and the files of a server and a client certificate it
// signed, written into a test's temporary directory.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gpufabric test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", keyDER)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestTLS runs a C example under `gpufabric run` against a server that
// serves TCP over TLS and requires client certificates; a client without
// TLS, or without a certificate, is refused before its program starts.
func TestTLS(t *testing.T) {
	requireBuild(t, "vector_add")
	p := newPKI(t)
	srv := startServer(t, "256MiB", "--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--tls-client-ca", p.ca)
	if !strings.Contains(srv.Log(), "tls=mutual") {
		t.Fatalf("the server does not say it requires client certificates:\n%s", srv.Log())
	}
	tlsArgs := []string{"--tls-ca", p.ca, "--tls-cert", p.clientCert, "--tls-key", p.clientKey}
	// Over TCP, then as chosen: shared memory, on this host, needs no TLS.
	for _, tr := range []string{"tcp", "auto"} {
		r := run(t, srv.Addr, append([]string{"-p", "0.25", "--transport", tr}, tlsArgs...), example("vector_add"), kernels, "65536")
		if r.status != 0 || !strings.Contains(r.out, "vector_add: 65536 elements correct") {
			t.Fatalf("vector_add over %s with TLS exited %d:\n%s", tr, r.status, r.out)
		}
	}
	for name, args := range map[string][]string{
		"no TLS":                {"--transport", "tcp"},
		"no client certificate": {"--transport", "tcp", "--tls-ca", p.ca},
		"an unknown CA":         {"--transport", "tcp", "--tls-ca", p.clientCert, "--tls-cert", p.clientCert, "--tls-key", p.clientKey},
	} {
		if r := run(t, srv.Addr, args, example("vector_add"), kernels, "1024"); r.status == 0 || strings.Contains(r.out, "elements correct") {
			t.Errorf("%s: the program ran (status %d):\n%s", name, r.status, r.out)
		}
	}
	// smi over TLS: the programs left nothing behind.
	out, err := exec.Command(gpufabric, append([]string{"smi", "--server", srv.Addr, "--json"}, tlsArgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("smi over TLS: %v\n%s", err, out)
	}
	var st struct {
		Devices []struct {
			ReservedBytes uint64 `json:"reserved_bytes"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(st.Devices) != 1 || st.Devices[0].ReservedBytes != 0 {
		t.Fatalf("smi after the programs exited:\n%s", out)
	}
}
