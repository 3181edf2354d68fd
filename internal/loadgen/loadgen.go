// Package loadgen drives closed-loop load for the control plane's
// benchmarks: n operations from a number of concurrent clients, each
// starting its next when its last is done, and the latency percentiles and
// rate they saw. It owns no clients and measures nothing by itself: each
// operation says how long its timed part took.
package loadgen

import (
	"slices"
	"sync"
	"time"
)

// Figures are what a run saw.
type Figures struct {
	P50, P99 time.Duration
	// Rate is operations a second, by the wall clock.
	Rate float64
}

// Run runs n operations from clients goroutines and returns their
// figures, or the first error an operation returned (a client stops at
// its error; the others finish).
func Run(clients, n int, op func() (time.Duration, error)) (Figures, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var err error
			for range next {
				var took time.Duration
				if took, err = op(); err != nil {
					break
				}
				mine = append(mine, took)
			}
			mu.Lock()
			lat = append(lat, mine...)
			if first == nil {
				first = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if first != nil || len(lat) == 0 {
		return Figures{}, first
	}
	slices.Sort(lat)
	return Figures{P50: lat[len(lat)/2], P99: lat[len(lat)*99/100], Rate: float64(len(lat)) / wall.Seconds()}, nil
}
