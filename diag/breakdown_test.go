package diag

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

func hist(bucket int, n uint64, each time.Duration) api.Histogram {
	h := api.Histogram{Buckets: make([]uint64, bucket+1), Count: n, Sum: n * uint64(each)}
	h.Buckets[bucket] = n
	return h
}

func TestBreakdown(t *testing.T) {
	stages := func(n uint64) []api.StageHistogram {
		return []api.StageHistogram{
			{Stage: api.StageDispatch, Times: hist(7, n, 200*time.Nanosecond)},
			{Stage: api.StageDevice, Times: hist(20, n, 1500*time.Microsecond)},
			{Stage: api.StageServer, Times: hist(20, n, 1600*time.Microsecond)},
		}
	}
	goWas, goNow := hist(10, 100, time.Microsecond), hist(23, 40, 9*time.Millisecond)
	goNow.Buckets[10] = 100
	goNow.Count += goWas.Count
	goNow.Sum += goWas.Sum
	before := api.Status{Sessions: []api.SessionStatus{{ID: 7, Client: "train.py", Stages: stages(10)}}, Stages: stages(10), GoRunQueue: &goWas}
	after := api.Status{Sessions: []api.SessionStatus{{ID: 7, Client: "train.py", Stages: stages(30),
		TCP: &api.ConnProbe{Remote: "10.0.0.2:5000", SRTT: hist(15, 4, 40*time.Microsecond), LastSRTT: 40_000}}},
		Stages: stages(30), GoRunQueue: &goNow,
		Probes: &api.ProbeStatus{Roles: []api.RoleHistogram{{Role: "shard", Metric: "runqueue", Times: hist(12, 5, 5*time.Microsecond)}}}}
	rtt := hist(21, 20, 2*time.Millisecond)
	b := BuildBreakdown(before, after, time.Second, 7, "tcp", rtt)

	if len(b.Stages) != 3 || b.Stages[1].Stage != api.StageDevice || b.Stages[1].Calls != 20 {
		t.Fatalf("stages over the window: %+v", b.Stages)
	}
	if s := b.Stages[1].Share; s < 0.93 || s > 0.94 { // 1.5 ms of 1.6 ms
		t.Errorf("device share %.3f, want 0.9375", s)
	}
	if b.Own.ServerMean != 1600*time.Microsecond || b.Own.Outside != 400*time.Microsecond {
		t.Errorf("own calls: %+v", b.Own)
	}
	if len(b.Kernel) != 1 || b.Kernel[0].Role != "shard" || len(b.Conns) != 1 || len(b.Top) != 1 {
		t.Errorf("kernel %+v, conns %+v, top %+v", b.Kernel, b.Conns, b.Top)
	}
	// The goroutines' waits in the window: 40 of about 9 ms, in bucket 23.
	if g := b.Goroutines; g == nil || g.Count != 40 || g.Mean != 9*time.Millisecond || g.P50 < 1<<23 || g.P50 >= 1<<24 {
		t.Errorf("goroutines: %+v", b.Goroutines)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, Report{Breakdown: &b}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LATENCY BREAKDOWN", "device", "94%", "GOROUTINES WAITING", "shard", "10.0.0.2:5000", "train.py"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	// A server without probes says how to get them.
	after.Probes = nil
	if b := BuildBreakdown(before, after, time.Second, 7, "tcp", rtt); !strings.Contains(b.ProbesNote, "--probe") {
		t.Errorf("probes note: %q", b.ProbesNote)
	}
}
