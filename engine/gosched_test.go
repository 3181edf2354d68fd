package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

// TestGoRunQueueSeesGoroutinesWaiting: with more spinning goroutines than
// Ps, goroutines wait for a thread in turns of the scheduler's time slice
// (10 ms), and the histogram the server reports says so.
func TestGoRunQueueSeesGoroutinesWaiting(t *testing.T) {
	before := goRunQueue()
	if before == nil {
		t.Skip("this Go runtime has no " + goRunQueueMetric)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
			}
		}()
	}
	// The runtime samples one transition in eight: wait until enough of
	// the spinners' turns were seen, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	var d api.Histogram
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		d = goRunQueue().Sub(*before)
		if d.Count >= 20 && d.Quantile(0.99) >= time.Millisecond {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if d.Count == 0 || d.Quantile(0.99) < time.Millisecond {
		t.Fatalf("goroutines queued behind %d spinners on %d Ps: %d waits, p99 %v; want p99 of at least 1ms",
			4*runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), d.Count, d.Quantile(0.99))
	}
	t.Logf("%d waits, p50 %v, p99 %v, mean %v", d.Count, d.Quantile(0.5), d.Quantile(0.99), d.Mean())
}
