package bench

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sampleResults are results as a run on a small machine gives them, made
// up but consistent: the fixture of the rendering tests.
func sampleResults() *Results {
	lat := func(base time.Duration, n int) Dist {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = base + time.Duration(i*i)*base/time.Duration(n*n/4)
		}
		return Summarize(s)
	}
	r := &Results{
		Schema:  SchemaVersion,
		Started: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		Elapsed: 27.5,
		Config:  RunConfig{StepSeconds: 2, Transports: []string{"tcp", "shm"}, Clients: []int{1, 2, 5}, MaxCopyBytes: 64 << 10},
		Machine: Machine{CPU: "Example CPU @ 2.00GHz", Cores: 2, MemoryBytes: 8 << 30, OS: "linux", Arch: "amd64",
			Kernel: "6.8.0", GoVersion: "go1.26.8", GOMAXPROCS: 2},
		Server: Server{Address: "127.0.0.1:40000", InProcess: true, Name: "bench (in-process)", Devices: 1,
			Backend: "host", Emulated: true, Device: "gpufabric host emulation (CPU)", DeviceMemoryBytes: 2 << 30,
			Floors: "measured in this process, beside the in-process server, over the same loopback"},
		Latency: []Latency{
			{Transport: "tcp", Call: lat(20*time.Microsecond, 200), CallsPerSecond: 45000, FloorName: TCPPingPongFloor, Floor: lat(12*time.Microsecond, 200)},
			{Transport: "shm", Call: lat(4*time.Microsecond, 200), CallsPerSecond: 230000, FloorName: ShmPingPongFloor, Floor: lat(400*time.Nanosecond, 200)},
		},
		Launch: []Launch{
			{Transport: "tcp", Launches: 2000000, LaunchesPerSecond: 1e6, SyncCallsPerSecond: 45000},
			{Transport: "shm", Launches: 2400000, LaunchesPerSecond: 1.2e6, SyncCallsPerSecond: 230000},
		},
		CopyFloors: []CopyFloor{
			{Name: "tcp", Description: TCPTransferFloor, Points: []FloorPoint{{4 << 10, 6e8}, {16 << 10, 2e9}, {64 << 10, 4.5e9}}},
			{Name: "memcpy", Description: MemcpyFloor, Points: []FloorPoint{{4 << 10, 4e10}, {16 << 10, 9e10}, {64 << 10, 5e10}}},
		},
		Tenants: &Tenants{Transport: "shm", Device: 0, Op: TenantOp},
	}
	for i := range r.Latency {
		l := &r.Latency[i]
		l.XFloor = l.Call.P50 / l.Floor.P50
		r.Launch[i].XSync = r.Launch[i].LaunchesPerSecond / r.Launch[i].SyncCallsPerSecond
	}
	for _, tr := range []string{"tcp", "shm"} {
		for d, dir := range []string{"HtoD", "DtoH", "DtoD"} {
			c := Copy{Transport: tr, Direction: dir, Floor: "memcpy"}
			if tr == "tcp" && dir != "DtoD" {
				c.Floor = "tcp"
			}
			for i, size := range CopySizes(64 << 10) {
				bw := float64(size) / (20e-6 - float64(d)*1e-6) * float64(i+1) / 2
				f := r.floorAt(c.Floor, size)
				c.Points = append(c.Points, CopyPoint{Bytes: int64(size), Copies: 1000 / (i + 1), BytesPerSecond: bw, FloorBytesPerSecond: f, XFloor: bw / f})
			}
			r.Copy = append(r.Copy, c)
		}
	}
	for _, n := range []int{1, 2, 5} {
		s := TenantStep{Clients: n, Share: 1 / float64(n)}
		for i := range n {
			rate := 60000/float64(n) + 500*float64(i)
			s.PerClient = append(s.PerClient, rate)
			s.OpsPerSecond += rate
		}
		s.MeanClient = s.OpsPerSecond / float64(n)
		s.MinClient, s.MaxClient = s.PerClient[0], s.PerClient[n-1]
		s.FairnessMaxOverMin, s.JainIndex = Fairness(s.PerClient)
		s.OpLatency = lat(time.Duration(n)*10*time.Microsecond, 100)
		s.OpLatency.CDF = nil
		r.Tenants.Steps = append(r.Tenants.Steps, s)
	}
	r.Tenants.Steps = append(r.Tenants.Steps, TenantStep{Clients: 10, Share: 0.1, Error: "attach device 0: CUDA_ERROR_OUT_OF_MEMORY"})
	r.Errors = []string{"tenants 10 over shm: attach device 0: CUDA_ERROR_OUT_OF_MEMORY"}
	r.Skipped = []Skip{{Transport: "rdma", Reason: "no RDMA device"}}
	r.Noisy = &Noisy{Bystander: NoisyBystander, RSSOf: "server process 4242 (listening on 127.0.0.1:40000)", ServerPID: 4242, Targets: NoisyTargets}
	for i, name := range []string{PhaseIdle, PhaseFlood, PhaseNoRead} {
		p := NoisyPhase{Name: name, Hostile: "none: the bystander alone on the server", Seconds: 1.6,
			RSSBytes: uint64(60+40*i) << 20, PeakRSSBytes: uint64(62+50*i) << 20, PeakFrom: "hwm"}
		if i > 0 {
			p.Hostile = "a tenant doing something unkind"
			p.PeakOverIdleBytes = int64(p.PeakRSSBytes) - 60<<20
		}
		for _, tr := range []string{"tcp", "shm"} {
			for j, call := range []string{"ping", "launch+sync"} {
				c := NoisyCalls{Transport: tr, Call: call, Latency: lat(time.Duration(5+5*j+10*i)*time.Microsecond, 200), XIdleP99: 1 + float64(i)}
				c.Latency.CDF = nil
				if i == 2 && j == 1 {
					c.Failed, c.Slow, c.FirstError = 3, 1, "CUDA_ERROR_DEINITIALIZED"
				}
				p.Calls = append(p.Calls, c)
			}
		}
		r.Noisy.Phases = append(r.Noisy.Phases, p)
	}
	r.ProbeCost = &ProbeCost{Servers: 2 * ProbeCostPairs, Loaded: "all but tcp_probe", Targets: ProbeCostTargets}
	for i, tr := range []string{"tcp", "shm"} {
		row := ProbeCostRow{Transport: tr, CallOff: lat(time.Duration(8-6*i)*time.Microsecond, 100), CallOn: lat(time.Duration(9-6*i)*time.Microsecond, 100),
			LaunchOff: 2.8e6, LaunchOn: 2.7e6}
		row.CallOff.CDF, row.CallOn.CDF = nil, nil
		row.XCall, row.XLaunch = row.CallOn.P50/row.CallOff.P50, row.LaunchOn/row.LaunchOff
		row.XCallRange, row.XLaunchRange = [2]float64{row.XCall - 0.05, row.XCall + 0.1}, [2]float64{0.9, 1.01}
		r.ProbeCost.Transports = append(r.ProbeCost.Transports, row)
	}
	r.Noisy.Phases = append(r.Noisy.Phases, NoisyPhase{Name: PhaseModules, Hostile: NoisyNotStarted, Error: "tenant loading modules: attach device 0: CUDA_ERROR_OUT_OF_MEMORY"})
	return r
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, diffLines(string(want), string(got)))
	}
}

// diffLines shows the first lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// TestJSONGolden pins the JSON form: field names and units are an
// interface other programs read.
func TestJSONGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResults().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.json.golden", b.Bytes())
}

func TestReadResultsRoundTrip(t *testing.T) {
	want := sampleResults()
	var b bytes.Buffer
	if err := want.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results changed through JSON:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadResultsRefuses(t *testing.T) {
	for _, in := range []string{"", "{", `{"schema": 99}`, `{"schema": 0}`} {
		if _, err := ReadResults(strings.NewReader(in)); err == nil {
			t.Errorf("ReadResults(%q) succeeded", in)
		}
	}
}

func TestTableGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResults().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.table.golden", b.Bytes())
}

func TestMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := sampleResults().WriteMarkdown(&b, "bench"); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.md.golden", b.Bytes())
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{Transports: []string{"carrier-pigeon"}},
		{Clients: []int{0}},
		{Clients: []int{5, -1}},
		{MaxCopySize: 1000},
	} {
		if _, err := Run(t.Context(), cfg); err == nil || errors.Is(err, ErrNotSupported) {
			t.Errorf("Run(%+v) = %v, want a configuration error", cfg, err)
		}
	}
}
