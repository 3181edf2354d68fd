package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/examples"
)

// TestNoisySmoke runs the noisy-neighbour scenario against an in-process
// server with short phases and small tenants, and checks that every phase
// produced sane figures. It asserts nothing about how well the bystander
// was isolated: that is for `gpufabric bench --noisy` to report.
func TestNoisySmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five phases against an in-process server (a few seconds)")
	}
	var steps []string
	res, err := Run(t.Context(), Config{
		Step:      250 * time.Millisecond,
		Scenarios: []string{ScenarioNoisy},
		Noisy:     NoisyConfig{Phase: 200 * time.Millisecond, ModuleBytes: 4 << 20, Modules: 2, IdleConns: 200, ShmConns: 4},
		Progress:  func(p Progress) { steps = append(steps, p.Name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("steps %q\n%s", steps, out.String())
	if len(res.Latency) != 0 || len(res.Copy) != 0 || res.Tenants != nil {
		t.Errorf("the other scenarios ran too: %d latency, %d copy, tenants %v", len(res.Latency), len(res.Copy), res.Tenants)
	}
	if !slicesEqual(res.Config.Scenarios, []string{ScenarioNoisy}) {
		t.Errorf("config scenarios %q", res.Config.Scenarios)
	}
	n := res.Noisy
	if n == nil {
		t.Fatal("no noisy results")
	}
	want := []string{PhaseIdle, PhaseFlood, PhaseNoRead, PhaseModules, PhaseIdleConn}
	if len(n.Phases) != len(want) {
		t.Fatalf("%d phases, want %d", len(n.Phases), len(want))
	}
	linux := runtime.GOOS == "linux"
	if linux && (n.ServerPID != os.Getpid() || n.RSSOf == "") {
		t.Errorf("RSS of pid %d (%q), want this process", n.ServerPID, n.RSSOf)
	}
	for i, p := range n.Phases {
		if p.Name != want[i] || p.Hostile == "" || p.Error != "" || p.Seconds <= 0 {
			t.Errorf("phase %d: %q %q, error %q, %.3fs", i, p.Name, p.Hostile, p.Error, p.Seconds)
		}
		if linux && (p.RSSBytes == 0 || p.PeakRSSBytes < p.RSSBytes/2 || p.PeakFrom == "") {
			t.Errorf("%s: RSS %d, peak %d (%s)", p.Name, p.RSSBytes, p.PeakRSSBytes, p.PeakFrom)
		}
		if len(p.Calls) != 2*len(res.Config.Transports) && len(p.Calls) < 2 {
			t.Errorf("%s: %d kinds of call", p.Name, len(p.Calls))
		}
		for _, c := range p.Calls {
			d := c.Latency
			if d.Samples == 0 || d.P50 <= 0 || d.P50 > d.P99 || d.P99 > d.Max || c.XIdleP99 <= 0 || c.Failed < 0 || c.Slow < 0 {
				t.Errorf("%s %s %s: %+v", p.Name, c.Transport, c.Call, c)
			}
			if p.Name == PhaseIdle && c.XIdleP99 != 1 {
				t.Errorf("idle %s %s: x idle %v", c.Transport, c.Call, c.XIdleP99)
			}
		}
	}
	if !strings.Contains(out.String(), "NOISY NEIGHBOURS") {
		t.Error("no noisy table")
	}
	var md bytes.Buffer
	if err := res.WriteMarkdown(&md, ""); err != nil || !strings.Contains(md.String(), "### Noisy neighbours") {
		t.Errorf("markdown: %v\n%s", err, md.String())
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResults(&js)
	if err != nil || back.Noisy == nil || len(back.Noisy.Phases) != len(want) {
		t.Errorf("through JSON: %v, %+v", err, back)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestNoisyConfig(t *testing.T) {
	c, err := NoisyConfig{}.withDefaults(5 * time.Second)
	if err != nil || c.Phase != 4*time.Second || c.Kernel != time.Millisecond || c.ModuleBytes != 100<<20 || c.Modules != 4 || c.IdleConns != 2000 || c.ShmConns != 16 {
		t.Errorf("defaults %+v, %v", c, err)
	}
	for _, bad := range []NoisyConfig{{IdleConns: 20000}, {ModuleBytes: 2 << 30}, {Modules: 1000}} {
		if _, err := bad.withDefaults(time.Second); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if _, err := Run(t.Context(), Config{Scenarios: []string{"noise"}}); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}

func TestHugeImage(t *testing.T) {
	img := hugeImage(1 << 20)
	if len(img) != 1<<20 || !bytes.HasPrefix(img, examples.KernelsPTX) {
		t.Fatalf("image of %d bytes", len(img))
	}
	for _, line := range strings.Split(string(img[len(examples.KernelsPTX):]), "\n") {
		if line != "" && !strings.HasPrefix(line, "//") {
			t.Fatalf("padding line %q is not a comment", line)
		}
	}
}

func TestRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	rss, err := statusBytes(os.Getpid(), "VmRSS")
	if err != nil || rss == 0 {
		t.Fatalf("VmRSS %d, %v", rss, err)
	}
	w := watchRSS(os.Getpid())
	if now := w.now(); now == 0 {
		t.Error("no RSS now")
	}
	if peak, from := w.stop(); peak == 0 || from == "" {
		t.Errorf("peak %d (%q)", peak, from)
	}
	if peak, from := watchRSS(0).stop(); peak != 0 || from != "" {
		t.Errorf("nobody's peak %d (%q)", peak, from)
	}
}

func TestListenerPID(t *testing.T) {
	if _, err := listenerPID("192.0.2.1:7070"); err == nil {
		t.Error("found a process for a server elsewhere")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	// This process's own listener is not a server's: it is skipped.
	if pid, err := listenerPID(addr); err == nil {
		t.Errorf("listenerPID(%s) = %d, want none but this process", addr, pid)
	}
	l.Close()
	if !onLoopback("localhost:1") || !onLoopback("[::1]:1") || onLoopback("10.0.0.1:1") || onLoopback("nonsense") {
		t.Error("onLoopback")
	}
}

// TestNoisyCancel: a run cancelled while a tenant floods the server ends
// without waiting out its phase, or for the server to let the tenant go,
// and leaves nothing running (TestMain).
func TestNoisyCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-process server")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	res, err := Run(ctx, Config{
		Step:       time.Minute,
		Transports: []string{"tcp"},
		Scenarios:  []string{ScenarioNoisy},
		Noisy:      NoisyConfig{Phase: 200 * time.Millisecond},
		Progress: func(p Progress) {
			if p.Name == "noisy neighbours: "+PhaseFlood {
				// The idle phase was short; cut the flood's.
				time.AfterFunc(100*time.Millisecond, func() { cancelled = time.Now(); cancel() })
			}
		},
	})
	if err == nil {
		// The flood's phase ended before the cancel: nothing was cut.
		t.Skip("the run ended before it was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if el := time.Since(cancelled); el > NoisyGrace {
		t.Errorf("a cancelled run took %v to end", el)
	}
	if res == nil || res.Noisy == nil || len(res.Noisy.Phases) == 0 || len(res.Noisy.Phases) > 2 {
		t.Errorf("cancelled run: %+v", res)
	}
}
