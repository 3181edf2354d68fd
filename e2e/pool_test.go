package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/servertest"
	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
)

// poolFixture is one `gpufabric pool` process (store and broker) and
// three server processes that joined it with a server token, each with
// two 1 GiB devices and a 2 s lease.
type poolFixture struct {
	url       string
	adminFile string
	token     string
	servers   []*servertest.Server
}

func startPool(t *testing.T) *poolFixture {
	t.Helper()
	// The store in a process of its own, built without the race
	// detector: in this one it slowed the store enough on a loaded
	// machine that 2 s registrations ran out.
	return joinPool(t, startStoreProc(t), 3, 2)
}

// joinPool starts n server processes of devices 1 GiB devices each, with
// 2 s leases, joined to the pool of store with a server token, and makes
// ann's token.
func joinPool(t *testing.T, store *storeProc, n, devices int) *poolFixture {
	t.Helper()
	f := &poolFixture{url: store.url(), adminFile: filepath.Join(store.dir, broker.AdminTokenFile)}
	serverToken := strings.TrimSpace(f.cli(t, "token", "create", "--server"))
	for i := range n {
		f.servers = append(f.servers, startServer(t, "1GiB", "--devices", strconv.Itoa(devices), "--pool", f.url, "--pool-token", serverToken, "--pool-name", fmt.Sprintf("s%d", i), "--pool-ttl", "2s"))
	}
	f.token = strings.TrimSpace(f.cli(t, "token", "create", "--user", "ann", "--group", "lab"))
	return f
}

// cli runs a gpufabric command against the pool and returns its stdout.
func (f *poolFixture) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := f.try(args...)
	if err != nil {
		t.Fatalf("gpufabric %v: %v\n%s", args, err, out)
	}
	return out
}

func (f *poolFixture) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpufabric, args...)
	cmd.Env = f.env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

func (f *poolFixture) env(extra ...string) []string {
	env := append(os.Environ(), "GPUFABRIC_POOL="+f.url, "GPUFABRIC_POOL_TOKEN="+f.token, "GPUFABRIC_POOL_ADMIN_TOKEN_FILE="+f.adminFile, "GPUFABRIC_KERNELS="+kernels)
	return append(env, extra...)
}

// held is the reservations `list` shows.
func (f *poolFixture) held(t *testing.T) int {
	t.Helper()
	out := f.cli(t, "list")
	_, resv, _ := strings.Cut(out, "RESERVATION")
	return strings.Count(resv, "\n") - 1
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func TestPool(t *testing.T) {
	requireBuild(t, "vector_add", "session_end")
	f := startPool(t)
	list := f.cli(t, "list")
	for _, s := range []string{"s0", "s1", "s2"} {
		if strings.Count(list, s+" ") != 2 {
			t.Fatalf("list lacks the two devices of %s:\n%s", s, list)
		}
	}

	// request, then a run on the reservation, then release.
	id := strings.TrimSpace(f.cli(t, "request", "-n", "1", "-p", "0.5", "--hold", "1m"))
	if n := f.held(t); n != 1 {
		t.Fatalf("%d reservations listed after request, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpufabric, "run", "--", example("vector_add"), kernels)
	cmd.Env = f.env("GPUFABRIC_RESERVATION=" + id)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "elements correct") || !strings.Contains(string(out), id) {
		t.Fatalf("run on reservation %s: %v\n%s", id, err, out)
	}
	f.cli(t, "release", id)
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations listed after release", n)
	}
	if out, err := f.try("release", id); err == nil || !strings.Contains(out, "no such reservation") {
		t.Fatalf("a second release: %v\n%s", err, out)
	}

	// run reserves for the command's lifetime and releases at its exit.
	if out := f.cli(t, "run", "-n", "1", "-p", "0.5", "--", example("vector_add"), kernels); !strings.Contains(out, "elements correct") {
		t.Fatalf("run from the pool:\n%s", out)
	}
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations held after the run exited", n)
	}

	// A server of the pool refuses a session no reservation backs.
	addr := f.servers[0].Addr
	if out, err := f.try("run", "--server", addr, "--", example("vector_add"), kernels); err == nil || !strings.Contains(out, "NOT_PERMITTED") && !strings.Contains(out, "refused") {
		t.Fatalf("a run past the pool: %v\n%s", err, out)
	}

	// A quota refuses a request.
	f.cli(t, "quota", "set", "--user", "ann", "--max-devices", "2")
	if out, err := f.try("request", "-n", "3", "-p", "0.1"); err == nil || !strings.Contains(out, "quota exceeded") {
		t.Fatalf("past the quota: %v\n%s", err, out)
	}
}

// TestPoolKilledClient kills a `gpufabric run` holding a whole device: the
// capacity is free again within the lease's TTL.
func TestPoolKilledClient(t *testing.T) {
	requireBuild(t)
	f := startPool(t)
	cmd := exec.Command(gpufabric, "run", "-n", "2", "-p", "1", "--pool-ttl", "1s", "--", "sleep", "60")
	cmd.Env = f.env()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the run's reservation appears", func() bool { return f.held(t) == 1 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	took := waitFor(t, 10*time.Second, "the killed client's capacity returns", func() bool { return f.held(t) == 0 })
	t.Logf("capacity free %v after the client's SIGKILL (TTL 1 s)", took.Round(10*time.Millisecond))
}

// untilReady starts `gpufabric run ARGS` on the pool and reads the
// program's output up to its line "ready"; the program then waits for a
// line on stdin.
func (f *poolFixture) untilReady(ctx context.Context, t *testing.T, args ...string) (*exec.Cmd, io.Writer, *bufio.Reader, *servertest.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, gpufabric, append([]string{"run"}, args...)...)
	cmd.Env = f.env()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(servertest.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("no line \"ready\": %v; stderr:\n%s", err, stderr.String())
		}
		if strings.TrimSpace(line) == "ready" {
			return cmd, stdin, out, stderr
		}
	}
}

// TestPoolTimeLimit runs a program past its reservation's time limit: the
// server ends its session (its calls then fail), run says why on stderr.
func TestPoolTimeLimit(t *testing.T) {
	requireBuild(t, "session_end")
	f := startPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, stdin, out, stderr := f.untilReady(ctx, t, "-n", "1", "-p", "0.5", "--time-limit", "2s", "--", example("session_end"), kernels)
	waitFor(t, 20*time.Second, "run says the time limit ended the reservation", func() bool {
		return strings.Contains(stderr.String(), "reached its time limit")
	})
	fmt.Fprintln(stdin, "go")
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("session_end: %v\n%s\nstderr:\n%s", err, rest, stderr.String())
	}
	if !strings.Contains(string(rest), "cuMemAlloc = 4 (CUDA_ERROR_DEINITIALIZED)") {
		t.Fatalf("calls after the time limit:\n%s", rest)
	}
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations held after the time limit", n)
	}
}

// TestPoolKilledServer kills a server process holding a reservation: it
// leaves the pool within its lease's TTL, and the reservation shows lost.
func TestPoolKilledServer(t *testing.T) {
	requireBuild(t)
	f := startPool(t)
	id := strings.TrimSpace(f.cli(t, "request", "-n", "2", "-p", "0.5", "--hold", "1m"))
	list := f.cli(t, "list")
	var victim *servertest.Server
	for i, s := range f.servers {
		if strings.Contains(list, fmt.Sprintf("s%d:", i)) {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("reservation %s on no server:\n%s", id, list)
	}
	victim.Kill()
	took := waitFor(t, 15*time.Second, "the killed server leaves the pool", func() bool {
		return strings.Count(f.cli(t, "list"), " ok ") == 4
	})
	t.Logf("server gone from the pool %v after its SIGKILL (TTL 2 s)", took.Round(10*time.Millisecond))
	if out := f.cli(t, "list"); !strings.Contains(out, "lost") {
		t.Fatalf("reservation %s not shown lost:\n%s", id, out)
	}
	if out, err := f.try("health"); err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("health after the kill: %v\n%s", err, out)
	}
}

// TestPoolTwoServers runs a program whose two devices are on two servers
// (`run -n 2 --spread`): it adds vectors on each and copies between them
// with cuMemcpyPeer, cuMemcpyPeerAsync, cuMemcpy and cuMemcpyDtoD; the
// reservation is released on both servers at its exit. Then one server of
// such a run is killed: device 1's calls fail with a CUDA error and a line
// on stderr, device 0 keeps working.
func TestPoolTwoServers(t *testing.T) {
	requireBuild(t, "two_servers")
	f := startPool(t)
	out, err := f.try("run", "-n", "2", "-p", "0.5", "--spread", "--", example("two_servers"), kernels, "300000")
	if err != nil || !strings.Contains(out, "two_servers: 300000 elements correct on 2 devices") {
		t.Fatalf("two_servers across two servers: %v\n%s", err, out)
	}
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations held after the run exited", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdin, rd, stderr := f.untilReady(ctx, t, "-n", "2", "-p", "0.5", "--spread", "--", example("two_servers"), kernels, "65536", "lose")
	// The reservation's line names its holds in device order:
	// "reservation ID: s0:1(512 MiB) s2:0(512 MiB)". Device 1's server dies.
	holds := regexp.MustCompile(`\b(s\d):\d+\(`).FindAllStringSubmatch(stderr.String(), 2)
	if len(holds) < 2 {
		cmd.Process.Kill()
		t.Fatalf("no holds on stderr:\n%s", stderr.String())
	}
	first, second := holds[0][1], holds[1][1]
	if first == second {
		cmd.Process.Kill()
		t.Fatalf("--spread put both devices on %s", first)
	}
	victim := -1
	for i := range f.servers {
		if fmt.Sprintf("s%d", i) == second {
			victim = i
		}
	}
	if victim < 0 {
		cmd.Process.Kill()
		t.Fatalf("device 1's server %q is not one of the pool's", second)
	}
	f.servers[victim].Kill()
	fmt.Fprintln(stdin, "go")
	rest, _ := io.ReadAll(rd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("two_servers after a server died: %v\n%s\nstderr:\n%s", err, rest, stderr.String())
	}
	if !strings.Contains(string(rest), "cuMemAlloc = 4 (CUDA_ERROR_DEINITIALIZED)") || !strings.Contains(string(rest), "device 0 still works") {
		t.Fatalf("after device 1's server died:\n%s\nstderr:\n%s", rest, stderr.String())
	}
	if !strings.Contains(stderr.String(), "(device 1 of this program) lost") {
		t.Fatalf("no line on stderr says device 1's server was lost:\n%s", stderr.String())
	}
	t.Logf("after device 1's server was killed:\n%s%s", rest, stderr.String())
}

// TestPoolEmbeddedInServer: `gpufabric server --pool embedded` runs the
// store and its broker in the server; a run reserves through it with a
// token issued with the admin token the first start wrote.
func TestPoolEmbeddedInServer(t *testing.T) {
	requireBuild(t, "vector_add")
	dir := t.TempDir()
	srv := startServer(t, "1GiB", "--pool", "embedded", "--pool-data", dir, "--pool-listen", "127.0.0.1:0", "--pool-name", "solo")
	m := regexp.MustCompile(`pool store serving \(embedded\).* url=(\S+)`).FindStringSubmatch(srv.Log())
	if m == nil {
		t.Fatalf("no store URL in the server's log:\n%s", srv.Log())
	}
	f := &poolFixture{url: m[1], adminFile: filepath.Join(dir, broker.AdminTokenFile)}
	f.token = strings.TrimSpace(f.cli(t, "token", "create", "--user", "ann"))
	if out := f.cli(t, "run", "-n", "1", "-p", "0.5", "--", example("vector_add"), kernels); !strings.Contains(out, "elements correct") {
		t.Fatalf("run through the server's own broker:\n%s", out)
	}
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations held after the run", n)
	}
}

// TestPoolServerNeedsToken: a server without a server token cannot join
// a pool whose store has a broker, and says what to give it; a user's
// token is no server's.
func TestPoolServerNeedsToken(t *testing.T) {
	requireBuild(t)
	f := startPool(t)
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"no token", nil, "--pool-token"},
		{"a user's token", []string{"--pool-token", f.token}, "a user's token"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		args := append([]string{"server", "--listen", "127.0.0.1:0", "--backend", "host", "--pool", f.url}, tc.args...)
		out, err := exec.CommandContext(ctx, gpufabric, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
		}
	}
}

// TestPoolOverTLS: a store served over https that requires client
// certificates serves its broker over the same TLS: a server joins and a
// run reserves with the CA and a client certificate; a client without the
// certificate is refused before it reaches the broker.
func TestPoolOverTLS(t *testing.T) {
	requireBuild(t, "vector_add")
	pk := newPKI(t)
	dir := t.TempDir()
	p, err := broker.Start(context.Background(), pool.EmbeddedConfig{Dir: dir, Listen: "127.0.0.1:0", Peer: "127.0.0.1:0", CertFile: pk.serverCert, KeyFile: pk.serverKey, ClientCA: pk.ca}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if !strings.HasPrefix(p.Store.ClientURL, "https://") {
		t.Fatalf("store URL %s", p.Store.ClientURL)
	}
	certs := []string{"GPUFABRIC_POOL_CA=" + pk.ca, "GPUFABRIC_POOL_CERT=" + pk.clientCert, "GPUFABRIC_POOL_KEY=" + pk.clientKey}
	f := &poolFixture{url: p.Store.ClientURL, adminFile: filepath.Join(dir, broker.AdminTokenFile)}
	withCerts := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gpufabric, args...)
		cmd.Env = f.env(certs...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpufabric %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	serverToken := strings.TrimSpace(withCerts("token", "create", "--server"))
	startServer(t, "1GiB", "--pool", f.url, "--pool-token", serverToken, "--pool-name", "s0", "--pool-ca", pk.ca, "--pool-cert", pk.clientCert, "--pool-key", pk.clientKey)
	f.token = strings.TrimSpace(withCerts("token", "create", "--user", "ann"))
	if out := withCerts("run", "-n", "1", "-p", "0.5", "--", example("vector_add"), kernels); !strings.Contains(out, "elements correct") {
		t.Fatalf("run over TLS:\n%s", out)
	}
	if out, err := f.try("list"); err == nil || !strings.Contains(out, "pool store unreachable") {
		t.Fatalf("list without the client certificate: %v\n%s", err, out)
	}
}

// TestPoolFrontingExternalStore: `gpufabric pool --etcd URL` runs the
// broker alone in front of a store it does not embed; a server joins
// through it (told where the store is) and a run reserves through it.
func TestPoolFrontingExternalStore(t *testing.T) {
	requireBuild(t, "vector_add")
	e, err := pool.StartEmbedded(pool.EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	front := exec.CommandContext(ctx, gpufabric, "pool", "--etcd", e.ClientURL, "--data-dir", dir, "--listen", "127.0.0.1:0")
	log := new(servertest.Buffer)
	front.Stdout, front.Stderr = log, log
	if err := front.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = front.Wait() })
	url := regexp.MustCompile(`pool broker serving.* url=(\S+)`)
	waitFor(t, 30*time.Second, "the broker serves", func() bool { return url.MatchString(log.String()) })
	f := &poolFixture{url: url.FindStringSubmatch(log.String())[1], adminFile: filepath.Join(dir, broker.AdminTokenFile)}
	serverToken := strings.TrimSpace(f.cli(t, "token", "create", "--server"))
	startServer(t, "1GiB", "--pool", f.url, "--pool-token", serverToken, "--pool-name", "s0")
	f.token = strings.TrimSpace(f.cli(t, "token", "create", "--user", "ann"))
	if out := f.cli(t, "run", "-n", "1", "-p", "0.5", "--", example("vector_add"), kernels); !strings.Contains(out, "elements correct") {
		t.Fatalf("run through the front broker:\n%s", out)
	}
	if n := f.held(t); n != 0 {
		t.Fatalf("%d reservations held after the run", n)
	}
}
