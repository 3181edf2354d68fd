package engine

import (
	"math"
	"runtime/metrics"

	"github.com/gpufabric/gpufabric/engine/api"
)

// goRunQueueMetric is the Go runtime's run-queue delay of goroutines: the
// time from becoming runnable to running, sampled by the runtime itself.
const goRunQueueMetric = "/sched/latencies:seconds"

// goRunQueue reads goRunQueueMetric as a log2 histogram of nanoseconds.
//
// The eBPF probes see OS threads, and most of the server's work runs on
// goroutines that Go moves between threads (readers, writers, stream
// workers, the host backend's shards), so a thread's run-queue delay
// cannot be pinned on one of them. The runtime can: its histogram is
// the wait of every goroutine of the server for a thread, which grows
// when the process has more runnable work than GOMAXPROCS or its threads
// wait for CPUs. It needs no privileges and costs nothing to read. Its
// sum is estimated from the buckets' midpoints, since the runtime keeps
// none.
func goRunQueue() *api.Histogram {
	s := []metrics.Sample{{Name: goRunQueueMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	var buckets []uint64
	var count, sum uint64
	for i, n := range h.Counts {
		if n == 0 {
			continue
		}
		lo, hi := h.Buckets[i]*1e9, h.Buckets[i+1]*1e9
		b := 0
		if lo >= 2 && !math.IsInf(lo, 0) {
			b = int(math.Floor(math.Log2(lo)))
		}
		for len(buckets) <= b {
			buckets = append(buckets, 0)
		}
		buckets[b] += n
		mid := lo
		switch {
		case math.IsInf(lo, -1) || lo < 0:
			mid = 0
		case !math.IsInf(hi, 1):
			mid = (lo + hi) / 2
		}
		count += n
		sum += n * uint64(mid)
	}
	out := api.NewHistogram(buckets, count, sum)
	return &out
}
