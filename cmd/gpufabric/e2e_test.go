package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/internal/servertest"
)

// The end-to-end tests of the spine: the server, the demo client and smi as
// separate processes over loopback, built from this tree.

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gpufabric-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for pkg, name := range map[string]string{".": "gpufabric", "../../examples/saxpy": "saxpy-demo"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			panic("building " + pkg + ": " + err.Error())
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func startServer(t *testing.T, args ...string) *servertest.Server {
	t.Helper()
	return servertest.Start(t, servertest.Config{Bin: filepath.Join(binDir, "gpufabric"), Args: args})
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestDemoClientAgainstServerProcess(t *testing.T) {
	srv := startServer(t, "--devices", "2", "--device-memory", "256MiB")
	out := run(t, "saxpy-demo", "-server", srv.Addr, "-p", "0.25", "-n", "4194304")
	for _, want := range []string{"all 4194304 elements correct", "past the share is refused: CUDA_ERROR_OUT_OF_MEMORY", "share 0.25 = 64 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	// The demo has exited: its session said Goodbye, and the server
	// answered once it had freed everything, so smi sees it all free now.
	var st api.Status
	if err := json.Unmarshal([]byte(run(t, "gpufabric", "smi", "--server", srv.Addr, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 2 || !st.Devices[0].Emulated || st.Devices[0].TotalBytes != 256<<20 {
		t.Fatalf("smi devices: %+v", st.Devices)
	}
	for _, d := range st.Devices {
		if d.ReservedBytes != 0 || d.SessionBytes != 0 || d.Sessions != 0 {
			t.Fatalf("the demo's session left memory behind after it exited: %+v", d)
		}
	}
	table := run(t, "gpufabric", "smi", "--server", srv.Addr)
	if !strings.Contains(table, "host (emulated)") {
		t.Fatalf("smi table:\n%s", table)
	}
}

func TestServerStopsCleanlyOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		srv := startServer(t)
		if err := srv.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if err := srv.Wait(10 * time.Second); err != nil {
			t.Fatalf("%v: server exited with %v\n%s", sig, err, srv.Log())
		}
		if !strings.Contains(srv.Log(), "msg=stopped") {
			t.Fatalf("%v: no clean stop in the log:\n%s", sig, srv.Log())
		}
	}
}

func TestServerFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"server", "--backend", "tpu"},
		{"server", "--device-memory", "lots"},
		{"server", "--devices", "0"},
		{"nonsense"},
	} {
		out, err := exec.Command(filepath.Join(binDir, "gpufabric"), args...).CombinedOutput()
		if err == nil {
			t.Errorf("%v succeeded:\n%s", args, out)
		}
	}
}

func TestDiag(t *testing.T) {
	srv := startServer(t)
	var report struct {
		Host struct {
			Hostname string `json:"hostname"`
			NICs     []struct {
				Name string `json:"name"`
			} `json:"nics"`
		} `json:"host"`
		Server *struct {
			CallLane   string `json:"call_lane"`
			Candidates []struct {
				Transport string  `json:"transport"`
				P50       float64 `json:"latency_p50_seconds"`
				Bandwidth float64 `json:"bandwidth_bytes_per_second"`
				Error     string  `json:"error"`
			} `json:"candidates"`
		} `json:"server"`
	}
	out := run(t, "gpufabric", "diag", "--server", srv.Addr, "--json")
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if report.Host.Hostname == "" || len(report.Host.NICs) == 0 {
		t.Fatalf("host part: %+v", report.Host)
	}
	if report.Server == nil || len(report.Server.Candidates) != 2 || report.Server.CallLane == "" {
		t.Fatalf("server part: %s", out)
	}
	for _, c := range report.Server.Candidates {
		if c.Error != "" || c.P50 <= 0 || c.Bandwidth <= 0 {
			t.Fatalf("candidate %+v not measured", c)
		}
	}
	table := run(t, "gpufabric", "diag", "--server", srv.Addr)
	for _, want := range []string{"shm", "tcp", "none"} {
		if !strings.Contains(table, want) {
			t.Errorf("diag table lacks %q:\n%s", want, table)
		}
	}
}

// TestServerTokenAndLimits: a server with every limit set and its token
// from a private file admits a client with the token and no other; a
// token on the command line is warned about.
func TestServerTokenAndLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--token-file", path, "--handshake-timeout", "5s", "--max-conns", "64", "--max-conns-per-peer", "32",
		"--slow-consumer", "5s", "--max-inflight", "256", "--max-module-size", "64MiB", "--max-streams", "16",
		"--max-events", "256", "--max-modules", "8")
	if out, err := exec.Command(filepath.Join(binDir, "gpufabric"), "smi", "--server", srv.Addr).CombinedOutput(); err == nil {
		t.Fatalf("smi without the token succeeded:\n%s", out)
	}
	run(t, "gpufabric", "smi", "--server", srv.Addr, "--token", "s3cret")
	if strings.Contains(srv.Log(), "process list") {
		t.Errorf("a token from a file is warned about:\n%s", srv.Log())
	}

	flagged := startServer(t, "--token", "s3cret")
	run(t, "gpufabric", "smi", "--server", flagged.Addr, "--token", "s3cret")
	if !strings.Contains(flagged.Log(), "process list") {
		t.Errorf("no warning for --token on the command line:\n%s", flagged.Log())
	}
}

// TestBenchProbeCost: `gpufabric bench --scenarios probe-cost` starts
// servers from its own binary without and with probes, and records both
// sides of each transport. Where BPF cannot load, the probed servers
// refuse to start and the run says why; the test then skips.
func TestBenchProbeCost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts twenty servers")
	}
	jsonFile := filepath.Join(t.TempDir(), "probe-cost.json")
	out, err := exec.Command(filepath.Join(binDir, "gpufabric"), "bench", "--scenarios", "probe-cost",
		"--duration", "200ms", "--transport", "tcp", "--json", jsonFile).CombinedOutput()
	if err != nil && strings.Contains(string(out), "--probe on:") {
		t.Skipf("the probed server could not load its probes here:\n%s", out)
	}
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		ProbeCost *struct {
			Servers    int    `json:"servers"`
			Loaded     string `json:"loaded"`
			Transports []struct {
				Transport string  `json:"transport"`
				XCall     float64 `json:"x_call"`
				XLaunch   float64 `json:"x_launch"`
			} `json:"transports"`
		} `json:"probe_cost"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	pc := res.ProbeCost
	if pc == nil || pc.Servers != 2*10 || len(pc.Transports) != 1 || pc.Transports[0].Transport != "tcp" {
		t.Fatalf("probe cost %+v, want 20 servers over tcp:\n%s", pc, out)
	}
	if tr := pc.Transports[0]; tr.XCall <= 0 || tr.XLaunch <= 0 {
		t.Errorf("tcp: x call %g, x launch %g: a side was not measured:\n%s", tr.XCall, tr.XLaunch, out)
	}
	if !strings.HasPrefix(pc.Loaded, "all") {
		t.Errorf("probes loaded: %q, want every program (or all but some, named)", pc.Loaded)
	}
	if !strings.Contains(string(out), "WHAT THE EBPF PROBES COST") {
		t.Errorf("the table has no probe-cost section:\n%s", out)
	}
}

// TestMetricsEndpoint: --metrics serves the server's state to Prometheus.
func TestMetricsEndpoint(t *testing.T) {
	srv := startServer(t, "--metrics", "127.0.0.1:0", "--device-memory", "256MiB")
	url := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(srv.Log())
	if url == nil {
		t.Fatalf("the server logged no metrics URL:\n%s", srv.Log())
	}
	resp, err := http.Get(url[1])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`gpufabric_device_memory_bytes{backend="host",device="0",kind="total",name="gpufabric host emulation (CPU)"} 2.68435456e+08`,
		"gpufabric_goroutine_wait_seconds_count",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
