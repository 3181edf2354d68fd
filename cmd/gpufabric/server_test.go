package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
)

func TestParseServerArgs(t *testing.T) {
	for _, k := range []string{"GPUFABRIC_TOKEN", "GPUFABRIC_TOKEN_FILE", "GPUFABRIC_LISTEN"} {
		t.Setenv(k, "")
	}
	o, err := parseServerArgs([]string{"--handshake-timeout", "3s", "--max-conns", "100", "--max-conns-per-peer", "7",
		"--slow-consumer", "2s", "--max-inflight", "64", "--max-module-size", "16MiB", "--max-streams", "8",
		"--max-events", "9", "--max-modules", "10", "--min-share", "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Config{MinShare: 0.1, HandshakeTimeout: 3 * time.Second, MaxConns: 100, MaxConnsPerPeer: 7,
		SlowConsumer: 2 * time.Second, MaxInflight: 64, MaxModuleImage: 16 << 20, MaxStreams: 8, MaxEvents: 9, MaxModules: 10}
	got := o.limits
	if got.Token != "" || got.MinShare != want.MinShare || got.HandshakeTimeout != want.HandshakeTimeout ||
		got.MaxConns != want.MaxConns || got.MaxConnsPerPeer != want.MaxConnsPerPeer || got.SlowConsumer != want.SlowConsumer ||
		got.MaxInflight != want.MaxInflight || got.MaxModuleImage != want.MaxModuleImage || got.MaxStreams != want.MaxStreams ||
		got.MaxEvents != want.MaxEvents || got.MaxModules != want.MaxModules {
		t.Errorf("limits %+v\nwant %+v", got, want)
	}

	// Unset, every limit is the engine's default: zero here.
	o, err = parseServerArgs(nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := o.limits; l.HandshakeTimeout != 0 || l.MaxConns != 0 || l.MaxConnsPerPeer != 0 || l.SlowConsumer != 0 ||
		l.MaxInflight != 0 || l.MaxModuleImage != 0 || l.MaxStreams != 0 || l.MaxEvents != 0 || l.MaxModules != 0 || o.tokenOnCommandLine {
		t.Errorf("defaults %+v", o)
	}

	for _, bad := range [][]string{
		{"--max-conns", "-1"},
		{"--slow-consumer", "-1s"},
		{"--max-module-size", "huge"},
		{"--max-streams", "many"},
		{"stray"},
	} {
		if _, err := parseServerArgs(bad); err == nil {
			t.Errorf("parseServerArgs(%q) succeeded", bad)
		}
	}
}

func TestServerToken(t *testing.T) {
	for _, k := range []string{"GPUFABRIC_TOKEN", "GPUFABRIC_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	private := write("token", "  s3cret \nsecond line\n", 0o600)

	o, err := parseServerArgs([]string{"--token-file", private})
	if err != nil || o.limits.Token != "s3cret" || o.tokenOnCommandLine {
		t.Errorf("--token-file: %+v, %v", o, err)
	}
	t.Setenv("GPUFABRIC_TOKEN_FILE", private)
	if o, err := parseServerArgs(nil); err != nil || o.limits.Token != "s3cret" {
		t.Errorf("$GPUFABRIC_TOKEN_FILE: %+v, %v", o, err)
	}
	t.Setenv("GPUFABRIC_TOKEN_FILE", "")

	o, err = parseServerArgs([]string{"--token", "flag"})
	if err != nil || o.limits.Token != "flag" || !o.tokenOnCommandLine {
		t.Errorf("--token: %+v, %v", o, err)
	}
	t.Setenv("GPUFABRIC_TOKEN", "env")
	o, err = parseServerArgs(nil)
	if err != nil || o.limits.Token != "env" || o.tokenOnCommandLine {
		t.Errorf("$GPUFABRIC_TOKEN: %+v, %v", o, err)
	}
	// The file wins over the environment's token, which is only a default.
	if o, err := parseServerArgs([]string{"--token-file", private}); err != nil || o.limits.Token != "s3cret" {
		t.Errorf("--token-file with $GPUFABRIC_TOKEN: %+v, %v", o, err)
	}

	for name, args := range map[string][]string{
		"group-readable": {"--token-file", write("group", "t\n", 0o640)},
		"world-readable": {"--token-file", write("world", "t\n", 0o604)},
		"empty":          {"--token-file", write("empty", " \n", 0o600)},
		"missing":        {"--token-file", filepath.Join(dir, "nothing")},
		"a directory":    {"--token-file", dir},
		"both":           {"--token", "x", "--token-file", private},
	} {
		if _, err := parseServerArgs(args); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "group-readable" && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s: %v does not say how to fix it", name, err)
		}
	}
}
