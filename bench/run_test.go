package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBenchRunSmoke runs the whole suite against an in-process server with tiny
// steps and copies capped at 1 MiB, and checks that every scenario
// produced figures.
func TestBenchRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario against an in-process server (a few seconds)")
	}
	var steps []string
	res, err := Run(context.Background(), Config{
		Step:        50 * time.Millisecond,
		MaxCopySize: 1 << 20,
		Progress:    func(p Progress) { steps = append(steps, p.Name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("steps %q\n%s", steps, out.String())
	trs := len(res.Latency)
	if trs == 0 || len(res.Launch) != trs {
		t.Errorf("%d latency and %d launch results", trs, len(res.Launch))
	}
	for _, l := range res.Latency {
		if l.Call.Samples == 0 || l.Call.P50 <= 0 || l.Floor.Samples == 0 || l.XFloor <= 0 {
			t.Errorf("latency %s: %+v", l.Transport, l)
		}
	}
	for _, l := range res.Launch {
		if l.Launches == 0 || l.LaunchesPerSecond <= 0 || l.XSync <= 0 {
			t.Errorf("launch %s: %+v", l.Transport, l)
		}
	}
	want := 3 * trs // HtoD, DtoH, DtoD
	for _, l := range res.Latency {
		if l.Transport == "shm" {
			want += 2 // and from and into pinned memory, which shared memory shares with the server
		}
	}
	if len(res.Copy) != want {
		t.Errorf("%d copy sweeps over %d transports, want %d", len(res.Copy), trs, want)
	}
	for _, c := range res.Copy {
		if len(c.Points) != len(CopySizes(1<<20)) {
			t.Errorf("copy %s %s: %d points", c.Transport, c.Direction, len(c.Points))
		}
		for _, p := range c.Points {
			if p.Copies == 0 || p.BytesPerSecond <= 0 || p.XFloor <= 0 {
				t.Errorf("copy %s %s: %+v", c.Transport, c.Direction, p)
			}
		}
	}
	if res.Tenants == nil || len(res.Tenants.Steps) != len(DefaultClients) {
		t.Fatalf("tenants: %+v", res.Tenants)
	}
	for _, s := range res.Tenants.Steps {
		if len(s.PerClient) != s.Clients || s.OpsPerSecond <= 0 || s.JainIndex <= 0 {
			t.Errorf("tenants %d: %+v", s.Clients, s)
		}
	}
	if res.Machine.Cores == 0 || res.Machine.GoVersion == "" || !res.Server.InProcess || res.Server.Backend == "" {
		t.Errorf("machine %+v, server %+v", res.Machine, res.Server)
	}
}

// TestBenchRunCancel: a cancelled run ends at once, minute-long steps or
// not, with the context's error, and leaves nothing running (TestMain).
func TestBenchRunCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-process server")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{
		Step:        time.Minute,
		Transports:  []string{"tcp"},
		MaxCopySize: 64 << 10,
		Progress: func(p Progress) {
			if p.Step == 1 { // the floors: cut them short
				time.AfterFunc(50*time.Millisecond, cancel)
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a cancelled run took %v", el)
	}
	if res == nil || len(res.Latency) != 0 || len(res.Errors) != 0 {
		t.Errorf("cancelled run: %+v", res)
	}
}
