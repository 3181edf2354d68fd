package interpose

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gpufabric/gpufabric/transport/tcp"
)

// TLSFiles name a client's TLS configuration: the CA that signed the
// server's certificate, and the client's own certificate and key for a
// server that requires one. ServerName is the name the server's
// certificate must carry; the host of the server's address when empty.
type TLSFiles struct {
	CA, Cert, Key, ServerName string
}

// The environment variables that carry TLSFiles to the interposer, which
// `gpufabric run` sets from its flags.
const (
	EnvTLSCA         = "GPUFABRIC_TLS_CA"
	EnvTLSCert       = "GPUFABRIC_TLS_CERT"
	EnvTLSKey        = "GPUFABRIC_TLS_KEY"
	EnvTLSServerName = "GPUFABRIC_TLS_SERVER_NAME"
)

// TLSFilesFromEnv reads TLSFiles from the environment through getenv.
func TLSFilesFromEnv(getenv func(string) string) TLSFiles {
	return TLSFiles{CA: getenv(EnvTLSCA), Cert: getenv(EnvTLSCert), Key: getenv(EnvTLSKey), ServerName: getenv(EnvTLSServerName)}
}

// Enabled reports whether TLS is asked for: a CA, or a client certificate.
func (f TLSFiles) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Abs makes the files' paths absolute, for a process started elsewhere.
func (f TLSFiles) Abs() (TLSFiles, error) {
	for _, p := range []*string{&f.CA, &f.Cert, &f.Key} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return f, err
		}
		*p = abs
	}
	return f, nil
}

// Config loads the files into the TLS configuration of Options.TLS: nil
// when TLS is not asked for.
func (f TLSFiles) Config() (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("interpose: TLS: a client certificate needs its key, and a key its certificate")
	}
	cfg, err := tcp.ClientTLSConfig(f.CA, f.Cert, f.Key, f.ServerName)
	if err != nil {
		return nil, fmt.Errorf("interpose: TLS: %w", err)
	}
	return cfg, nil
}
