package bench_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gpufabric/gpufabric/bench"
)

// Run measures an in-process server (or, with Config.Server, a real one)
// and renders what it found.
func Example() {
	res, err := bench.Run(context.Background(), bench.Config{
		Step:        100 * time.Millisecond, // per step; the default is 2s
		Transports:  []string{"tcp"},
		Clients:     []int{2},
		MaxCopySize: 1 << 20,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res.WriteTable(os.Stdout)
	if err := res.WriteJSON(os.Stdout); err != nil {
		fmt.Println(err)
	}
}

// The statistics on their own: nearest-rank percentiles of latency
// samples, and the fairness of per-client rates.
func ExampleSummarize() {
	var samples []time.Duration
	for i := 1; i <= 1000; i++ {
		samples = append(samples, time.Duration(i)*time.Microsecond)
	}
	d := bench.Summarize(samples)
	fmt.Printf("p50 %.0fµs, p99 %.0fµs, p99.9 %.0fµs\n", d.P50*1e6, d.P99*1e6, d.P999*1e6)

	maxOverMin, jain := bench.Fairness([]float64{900, 1000, 1100})
	fmt.Printf("max/min %.2f, Jain %.3f\n", maxOverMin, jain)
	// Output:
	// p50 500µs, p99 990µs, p99.9 999µs
	// max/min 1.22, Jain 0.993
}
