package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

func TestParseRunArgs(t *testing.T) {
	for _, k := range []string{"GPUFABRIC_SERVER", "GPUFABRIC_SHARE", "GPUFABRIC_DEVICES", "GPUFABRIC_TRACE", "GPUFABRIC_TOKEN", "GPUFABRIC_TRANSPORT", "GPUFABRIC_BULK_TRANSPORT"} {
		t.Setenv(k, "")
	}
	o, err := parseRunArgs([]string{"--server", "10.1.2.3:7070", "-n", "2", "-m", "512MiB", "--token", "t", "--trace", "calls.jsonl", "--bulk-transport", "shm", "--", "python", "-c", "pass"})
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("calls.jsonl")
	want := runOptions{server: "10.1.2.3:7070", transport: "auto", bulk: "shm", devices: "2", share: "536870912B", token: "t", trace: abs, command: []string{"python", "-c", "pass"}}
	if o.server != want.server || o.transport != want.transport || o.bulk != want.bulk || o.devices != want.devices || o.share != want.share ||
		o.token != want.token || o.trace != want.trace || !slices.Equal(o.command, want.command) {
		t.Errorf("got %+v\nwant %+v", *o, want)
	}

	t.Setenv("GPUFABRIC_SERVER", "envhost:1")
	t.Setenv("GPUFABRIC_SHARE", "0.5")
	o, err = parseRunArgs([]string{"true"})
	if err != nil || o.server != "envhost:1" || o.share != "0.5" || o.devices != "1" {
		t.Errorf("defaults from the environment: %+v, %v", o, err)
	}
	if o, err = parseRunArgs([]string{"-p", "0.25", "true"}); err != nil || o.share != "0.25" {
		t.Errorf("-p 0.25: %+v, %v", o, err)
	}

	for _, bad := range [][]string{
		{},
		{"-p", "0.5", "-m", "1GiB", "true"},
		{"-p", "1.5", "true"},
		{"-p", "half", "true"},
		{"-m", "lots", "true"},
		{"-n", "0", "true"},
		{"--transport", "rdma", "true"},
		{"--bulk-transport", "rdma", "true"},
	} {
		if _, err := parseRunArgs(bad); err == nil {
			t.Errorf("parseRunArgs(%q) succeeded", bad)
		}
	}
}

func TestParseRunTLS(t *testing.T) {
	for _, k := range []string{"GPUFABRIC_TLS_CA", "GPUFABRIC_TLS_CERT", "GPUFABRIC_TLS_KEY", "GPUFABRIC_TLS_SERVER_NAME"} {
		t.Setenv(k, "")
	}
	o, err := parseRunArgs([]string{"true"})
	if err != nil || o.tls.Enabled() {
		t.Errorf("no TLS asked: %+v, %v", o, err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, bad := range [][]string{
		{"--tls-cert", missing, "true"},
		{"--tls-key", missing, "true"},
		{"--tls-ca", missing, "true"},
	} {
		if _, err := parseRunArgs(bad); err == nil {
			t.Errorf("parseRunArgs(%q) succeeded", bad)
		}
	}
	t.Setenv("GPUFABRIC_TLS_CA", missing)
	if _, err := parseRunArgs([]string{"true"}); err == nil {
		t.Error("a CA file that is not there, from $GPUFABRIC_TLS_CA, was accepted")
	}
}

func TestChildEnv(t *testing.T) {
	base := []string{"PATH=/bin", "GPUFABRIC_SHARE=0.9", "GPUFABRIC_TRACE=/old", "HOME=/home/u"}
	got := childEnv(base, map[string]string{"GPUFABRIC_SHARE": "0.25", "GPUFABRIC_TRACE": "", "LD_LIBRARY_PATH": "/lib"})
	want := []string{"PATH=/bin", "HOME=/home/u", "GPUFABRIC_SHARE=0.25", "LD_LIBRARY_PATH=/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("childEnv = %q, want %q", got, want)
	}
	if p := prependPath("/opt/gf/lib", "/usr/lib::/opt/gf/lib:/x"); p != "/opt/gf/lib:/usr/lib:/x" {
		t.Errorf("prependPath = %q", p)
	}
	if p := prependPath("/opt/gf/lib", ""); p != "/opt/gf/lib" {
		t.Errorf("prependPath on empty = %q", p)
	}
}

func TestLibDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GPUFABRIC_LIB", dir)
	if _, err := libDir(); err == nil {
		t.Error("a directory without libcuda.so.1 was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "libcuda.so.1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := libDir(); err != nil || got != dir {
		t.Errorf("libDir = %q, %v; want %q", got, err, dir)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	} {
		cmd := exec.Command("sh", "-c", tc.script)
		status, err := runForwarding(cmd)
		if err != nil || status != tc.want {
			t.Errorf("%q: status %d, %v; want %d", tc.script, status, err, tc.want)
		}
	}
}

// TestForwardsSignals sends SIGTERM to this process while it waits on a
// child that traps it: the child must receive it and its status come back.
func TestForwardsSignals(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command("sh", "-c", `trap 'exit 42' TERM; touch "$1"; while :; do sleep 0.05; done`, "sh", ready)
	go func() {
		for range 200 {
			if _, err := os.Stat(ready); err == nil {
				syscall.Kill(os.Getpid(), syscall.SIGTERM)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	status, err := runForwarding(cmd)
	if err != nil || status != 42 {
		t.Errorf("status %d, %v; want 42 from the child's trap", status, err)
	}
}

// startServer runs a GPU server on the host backend on a loopback port.
func startServer(t *testing.T) string {
	t.Helper()
	dev, err := host.New(host.Config{Index: 0, MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(engine.Config{}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); dev.Close() })
	return l.Addr()
}

func TestRunCommand(t *testing.T) {
	addr := startServer(t)
	lib := t.TempDir()
	if err := os.WriteFile(filepath.Join(lib, "libcuda.so.1"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GPUFABRIC_LIB", lib)
	t.Setenv("LD_LIBRARY_PATH", "/somewhere")
	out := filepath.Join(t.TempDir(), "env")
	script := `echo "$GPUFABRIC_SERVER|$GPUFABRIC_SHARE|$GPUFABRIC_DEVICES|$LD_LIBRARY_PATH" > "$1"; exit 3`
	err := runRun(context.Background(), []string{"--server", addr, "-p", "0.5", "-n", "1", "--", "sh", "-c", script, "sh", out})
	var exit exitError
	if !errors.As(err, &exit) || exit != 3 {
		t.Fatalf("runRun = %v, want exit status 3", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := addr + "|0.5|1|" + lib + ":/somewhere"
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("the child saw %q, want %q", got, want)
	}

	// An unreachable server stops gpufabric run before the command starts.
	err = runRun(context.Background(), []string{"--server", "127.0.0.1:1", "--", "sh", "-c", "touch " + out + ".ran"})
	if err == nil {
		t.Error("an unreachable server was accepted")
	}
	if _, serr := os.Stat(out + ".ran"); serr == nil {
		t.Error("the command ran although the server is unreachable")
	}
}
