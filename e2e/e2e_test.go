package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/servertest"
)

var (
	root        = ".." // the repository, from this package's directory
	gpufabric   = filepath.Join(root, "build", "bin", "gpufabric")
	libDir      = filepath.Join(root, "build", "lib")
	examplesDir = filepath.Join(root, "build", "examples")
	kernels, _  = filepath.Abs(filepath.Join(root, "examples", "kernels.ptx"))
)

// requireBuild skips the test when the build outputs it runs are missing.
func requireBuild(t *testing.T, examples ...string) {
	t.Helper()
	need := []string{gpufabric, filepath.Join(libDir, "libcuda.so.1"), filepath.Join(libDir, "libnvidia-ml.so.1")}
	for _, e := range examples {
		need = append(need, filepath.Join(examplesDir, e))
	}
	for _, p := range need {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run `make build` first (make test does)", p)
		}
	}
}

// launchServer starts a server on the host backend with devices of the
// given memory, on a free loopback port.
func launchServer(memory string, args ...string) (*servertest.Server, error) {
	return servertest.Launch(serverConfig(memory, args...))
}

func serverConfig(memory string, args ...string) servertest.Config {
	return servertest.Config{Bin: gpufabric, Args: append([]string{"--device-memory", memory}, args...)}
}

// startServer starts a server of the test's own, stopped at cleanup.
func startServer(t *testing.T, memory string, args ...string) *servertest.Server {
	t.Helper()
	return servertest.Start(t, serverConfig(memory, args...))
}

var (
	sharedOnce sync.Once
	shared     *servertest.Server
	sharedErr  error
)

// sharedServer is one server for the tests that leave it running; TestMain
// stops it.
func sharedServer(t *testing.T) *servertest.Server {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = launchServer("1GiB") })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	os.Exit(code)
}

type result struct {
	out    string // stdout and stderr
	status int
}

// run runs `gpufabric run --server ADDR RUNARGS -- PROGRAM ARGS` and waits.
func run(t *testing.T, addr string, runArgs []string, program string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"run", "--server", addr}, runArgs...)
	full = append(full, "--", program)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, gpufabric, full...)
	cmd.Env = append(os.Environ(), "GPUFABRIC_KERNELS="+kernels)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return result{string(out), 0}
	case errors.As(err, &exit):
		return result{string(out), exit.ExitCode()}
	}
	t.Fatalf("gpufabric run %v: %v\n%s", full, err, out)
	return result{}
}

func example(name string) string { return filepath.Join(examplesDir, name) }

func TestExamples(t *testing.T) {
	for _, tc := range []struct {
		name    string
		runArgs []string
		args    []string
		want    []string
	}{
		{"vector_add", []string{"-p", "0.25"}, nil, []string{"vector_add: 1048576 elements correct"}},
		{"saxpy", []string{"-p", "0.25"}, nil, []string{"saxpy: 4194304 elements correct"}},
		{"streams", []string{"-p", "0.25"}, []string{kernels, "4"}, []string{"streams: 4 streams x 262144 elements correct", "(events)"}},
		{"meminfo", []string{"-m", "256MiB"}, []string{"268435456"}, []string{"cuDeviceTotalMem: 268435456", "cuMemGetInfo: free 268435456 total 268435456", "meminfo: ok"}},
		{"oversubscribe", []string{"-m", "64MiB"}, nil, []string{"allocate share + 1 MiB: CUDA_ERROR_OUT_OF_MEMORY", "oversubscribe: CUDA_ERROR_OUT_OF_MEMORY past the share"}},
		{"threads", []string{"-p", "0.25"}, []string{kernels, "8", "10"}, []string{"threads: 8 threads x 10 rounds correct"}},
		{"fork", []string{"-p", "0.1"}, nil, []string{"child: cuMemAlloc = 3, cuCtxSynchronize = 3, cuDeviceGetCount = 3, cuInit = 3", "CUDA-free child: exit 0", "fork: ok"}},
		{"api_check", []string{"-p", "0.25"}, nil, []string{"api_check: 14 checks passed"}},
		{"launch_rate", []string{"-p", "0.1"}, []string{kernels, "20000"}, []string{"launch_rate: "}},
		{"pinned", []string{"-p", "0.25"}, []string{kernels, "16"}, []string{"pinned: 16777228 bytes correct (sync, async, offsets, registered, free in flight)"}},
	} {
		// Calls over TCP, over shared memory, and over TCP with the large
		// copies' payloads on a shared-memory bulk lane.
		for _, tr := range []string{"tcp", "shm", "tcp+shm"} {
			t.Run(tc.name+"/"+tr, func(t *testing.T) {
				requireBuild(t, tc.name)
				srv := sharedServer(t)
				call, bulk, _ := strings.Cut(tr, "+")
				args := append([]string{"--transport", call, "--bulk-transport", cmp.Or(bulk, "auto")}, tc.runArgs...)
				r := run(t, srv.Addr, args, example(tc.name), tc.args...)
				if r.status != 0 {
					t.Fatalf("%s over %s exited %d:\n%s", tc.name, tr, r.status, r.out)
				}
				for _, w := range tc.want {
					if !strings.Contains(r.out, w) {
						t.Errorf("%s over %s: output lacks %q:\n%s", tc.name, tr, w, r.out)
					}
				}
			})
		}
	}
}

var rateRE = regexp.MustCompile(`launch_rate: (\d+) launches/s`)

// TestLaunchRate measures the figure: launches of an empty kernel
// per second over TCP, counting the final synchronize. It reports, it does
// not judge: speed is asserted by benchmarks on known hardware.
func TestLaunchRate(t *testing.T) {
	requireBuild(t, "launch_rate")
	if testing.Short() {
		t.Skip("-short")
	}
	srv := sharedServer(t)
	for _, tr := range []string{"tcp", "shm"} {
		r := run(t, srv.Addr, []string{"-p", "0.1", "--transport", tr}, example("launch_rate"), kernels, "200000")
		if r.status != 0 {
			t.Fatalf("launch_rate over %s exited %d:\n%s", tr, r.status, r.out)
		}
		m := rateRE.FindStringSubmatch(r.out)
		if m == nil {
			t.Fatalf("no rate in:\n%s", r.out)
		}
		t.Logf("launch rate over %s loopback (host backend): %s launches/s\n%s", tr, m[1], r.out)
	}
}

// TestTransports runs a program over each transport the client knows.
func TestTransports(t *testing.T) {
	requireBuild(t, "vector_add")
	srv := sharedServer(t)
	for _, tr := range []string{"tcp", "shm", "auto"} {
		r := run(t, srv.Addr, []string{"-p", "0.1", "--transport", tr}, example("vector_add"), kernels, "65536")
		if r.status != 0 || !strings.Contains(r.out, "vector_add: 65536 elements correct") {
			t.Errorf("vector_add over %s exited %d:\n%s", tr, r.status, r.out)
		}
	}
}

// TestEveryNameExported reads the library's dynamic symbols: every name of
// gen/names.txt is a defined function, and so are the NVML names c10 needs.
func TestEveryNameExported(t *testing.T) {
	requireBuild(t)
	f, err := elf.Open(filepath.Join(libDir, "libgpufabric.so"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			defined[s.Name] = true
		}
	}
	list, err := os.ReadFile(filepath.Join(root, "interpose", "libcuda", "gen", "names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(list), "\n") {
		name := strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
		if name == "" {
			continue
		}
		n++
		if !defined[name] {
			t.Errorf("%s is not exported", name)
		}
	}
	for _, name := range []string{"nvmlInit", "nvmlInit_v2", "nvmlShutdown", "nvmlDeviceGetCount_v2", "nvmlDeviceGetHandleByIndex_v2",
		"nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetNvLinkRemoteDeviceType", "nvmlDeviceGetNvLinkRemotePciInfo_v2",
		"nvmlDeviceGetComputeRunningProcesses", "nvmlSystemGetCudaDriverVersion_v2", "nvmlErrorString"} {
		if !defined[name] {
			t.Errorf("%s is not exported", name)
		}
	}
	if n < 600 {
		t.Errorf("names.txt has %d names; the CUDA 12 driver exports over 600", n)
	}
	t.Logf("%d driver API names exported", n)
}

// TestSessionEnd kills the server under a running program: its later
// calls return CUDA_ERROR_DEINITIALIZED, and it exits on its own.
func TestSessionEnd(t *testing.T) {
	requireBuild(t, "session_end")
	srv := startServer(t, "256MiB")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gpufabric, "run", "--server", srv.Addr, "-p", "0.5", "--", example("session_end"), kernels)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("first line %q, %v; stderr:\n%s", line, err, stderr.String())
	}
	srv.Kill()
	fmt.Fprintln(stdin, "go")
	rest, _ := io.ReadAll(out)
	err = cmd.Wait()
	if err != nil {
		t.Fatalf("session_end: %v\n%s\nstderr:\n%s", err, rest, stderr.String())
	}
	for _, call := range []string{"cuCtxSynchronize", "cuMemAlloc", "cuMemcpyHtoD", "cuLaunchKernel", "cuStreamSynchronize", "cuMemcpyDtoH", "cuMemFree", "cuCtxGetCurrent"} {
		if !strings.Contains(string(rest), call+" = 4 (CUDA_ERROR_DEINITIALIZED)") {
			t.Errorf("%s did not return CUDA_ERROR_DEINITIALIZED:\n%s", call, rest)
		}
	}
}

func TestRunExitStatus(t *testing.T) {
	requireBuild(t)
	srv := sharedServer(t)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
	} {
		if r := run(t, srv.Addr, nil, "sh", "-c", tc.script); r.status != tc.want {
			t.Errorf("gpufabric run -- sh -c %q exited %d, want %d\n%s", tc.script, r.status, tc.want, r.out)
		}
	}
	// An unreachable server fails before the program starts.
	if r := run(t, "127.0.0.1:1", nil, "true"); r.status == 0 || !strings.Contains(r.out, "127.0.0.1:1") {
		t.Errorf("an unreachable server: status %d\n%s", r.status, r.out)
	}
}

// startRun starts `gpufabric run -- sh -c SCRIPT` and waits for the script's
// first line of output.
func startRun(t *testing.T, addr, script string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(gpufabric, "run", "--server", addr, "--", "sh", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		first <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-first:
		return cmd, line
	case <-time.After(30 * time.Second):
		t.Fatal("the command printed nothing in 30s")
	}
	return nil, ""
}

func TestRunForwardsSignals(t *testing.T) {
	requireBuild(t)
	srv := sharedServer(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		want int
	}{
		{syscall.SIGTERM, "TERM", 42},
		{syscall.SIGINT, "INT", 43},
		{syscall.SIGHUP, "HUP", 44},
	} {
		script := fmt.Sprintf(`trap 'exit %d' %s; echo ready; while :; do sleep 0.05; done`, tc.want, tc.name)
		cmd, line := startRun(t, srv.Addr, script)
		if line != "ready" {
			t.Fatalf("first line %q", line)
		}
		cmd.Process.Signal(tc.sig)
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != tc.want {
			t.Errorf("SIG%s: gpufabric run ended with %v, want exit status %d from the trap", tc.name, err, tc.want)
		}
	}
}

// TestRunChildDiesWithIt kills gpufabric run outright: the kernel kills the
// program with it (parent-death signal), so no orphan keeps a session.
func TestRunChildDiesWithIt(t *testing.T) {
	requireBuild(t)
	srv := sharedServer(t)
	cmd, line := startRun(t, srv.Addr, `exec sh -c 'echo $$; exec sleep 60'`)
	var pid int
	if _, err := fmt.Sscan(line, &pid); err != nil || pid <= 0 {
		t.Fatalf("child pid %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the program (pid %d) outlived gpufabric run", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for init to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// TestTrace runs a program with --trace and reads the calls back.
func TestTrace(t *testing.T) {
	requireBuild(t, "vector_add")
	srv := sharedServer(t)
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	r := run(t, srv.Addr, []string{"-p", "0.1", "--trace", path}, example("vector_add"), kernels, "4096")
	if r.status != 0 {
		t.Fatalf("vector_add exited %d:\n%s", r.status, r.out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var c struct {
			Name    string `json:"name"`
			Result  int    `json:"result"`
			NS      *int64 `json:"ns"`
			Symbol  string `json:"symbol"`
			Version int    `json:"version"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil || c.Name == "" || c.NS == nil {
			t.Fatalf("bad trace line %q: %v", line, err)
		}
		seen[c.Name]++
		if c.Name == "cuGetProcAddress_v2" && (c.Symbol == "" || c.Version == 0) {
			t.Errorf("cuGetProcAddress_v2 line without symbol and version: %s", line)
		}
		if c.Name == "cuLaunchKernel" && c.Result != 0 {
			t.Errorf("failed launch traced: %s", line)
		}
	}
	// The last line is the session's Goodbye at exit, answered.
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); !strings.Contains(lines[len(lines)-1], `"name":"(exit)","result":0,`) {
		t.Errorf("the trace does not end with the session closed at exit: %s", lines[len(lines)-1])
	}
	for _, name := range []string{"cuGetProcAddress_v2", "cuInit", "cuMemAlloc_v2", "cuModuleLoadData", "cuLaunchKernel", "cuCtxSynchronize", "cuMemcpyDtoH_v2"} {
		if seen[name] == 0 {
			t.Errorf("%s is not in the trace", name)
		}
	}
}

// TestNoServer runs a program with the library but no reachable server:
// cuInit fails with CUDA_ERROR_NO_DEVICE and says why on stderr.
func TestNoServer(t *testing.T) {
	requireBuild(t, "meminfo")
	lib, _ := filepath.Abs(libDir)
	cmd := exec.Command(example("meminfo"))
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib, "GPUFABRIC_SERVER=127.0.0.1:1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("meminfo succeeded without a server:\n%s", out)
	}
	for _, w := range []string{"gpufabric: no GPU", "cuInit(0) = 100 (CUDA_ERROR_NO_DEVICE)"} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestServerFreesSessions: once the programs are gone the server holds no
// session of theirs.
func TestServerFreesSessions(t *testing.T) {
	requireBuild(t, "vector_add")
	srv := startServer(t, "256MiB")
	if r := run(t, srv.Addr, []string{"-p", "0.5"}, example("vector_add"), kernels, "1024"); r.status != 0 {
		t.Fatalf("vector_add exited %d:\n%s", r.status, r.out)
	}
	// The interposer said Goodbye as the program exited, and the server
	// answered once it had freed the session: smi sees it gone at once.
	out, err := exec.Command(gpufabric, "smi", "--server", srv.Addr, "--json").Output()
	if err != nil {
		t.Fatalf("smi: %v", err)
	}
	var st struct {
		Devices []struct {
			ReservedBytes uint64 `json:"reserved_bytes"`
			SessionBytes  uint64 `json:"session_bytes"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || st.Devices[0].ReservedBytes != 0 || st.Devices[0].SessionBytes != 0 {
		t.Fatalf("the server still holds the program's share after it exited:\n%s", out)
	}
}
