package interpose_test

import (
	"path/filepath"
	"testing"

	"github.com/gpufabric/gpufabric/interpose"
)

func TestTLSFiles(t *testing.T) {
	if cfg, err := (interpose.TLSFiles{}).Config(); cfg != nil || err != nil {
		t.Errorf("no files: %v, %v; want no TLS", cfg, err)
	}
	if (interpose.TLSFiles{ServerName: "gpu-1"}).Enabled() {
		t.Error("a server name alone asks for TLS")
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, f := range []interpose.TLSFiles{
		{CA: missing},
		{Cert: missing},
		{Key: missing},
		{Cert: missing, Key: missing},
	} {
		if _, err := f.Config(); err == nil {
			t.Errorf("%+v: accepted", f)
		}
	}
	env := map[string]string{interpose.EnvTLSCA: "ca.pem", interpose.EnvTLSKey: "/k.pem"}
	f := interpose.TLSFilesFromEnv(func(k string) string { return env[k] })
	abs, err := f.Abs()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(abs.CA) || abs.Key != "/k.pem" || abs.Cert != "" {
		t.Errorf("Abs of %+v = %+v", f, abs)
	}
}
