package api

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	// 10 values in [1024, 2048) ns, 10 in [2^20, 2^21) ns.
	h := Histogram{Buckets: make([]uint64, 21), Count: 20, Sum: 10*1500 + 10*1_500_000}
	h.Buckets[10], h.Buckets[20] = 10, 10
	if m := h.Mean(); m != 750750 {
		t.Errorf("mean %v", m)
	}
	if q := h.Quantile(0.25); q < 1024 || q >= 2048 {
		t.Errorf("p25 %v, want in [1024ns, 2048ns)", q)
	}
	if q := h.Quantile(0.99); q < time.Duration(1<<20) || q > time.Duration(1<<21) {
		t.Errorf("p99 %v, want in [2^20, 2^21] ns", q)
	}
	earlier := Histogram{Buckets: []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4}, Count: 4, Sum: 4 * 1500}
	d := h.Sub(earlier)
	if d.Count != 16 || d.Buckets[10] != 6 || d.Buckets[20] != 10 {
		t.Errorf("Sub: %+v", d)
	}
	if (Histogram{}).Quantile(0.5) != 0 || (Histogram{}).Mean() != 0 {
		t.Error("an empty histogram has no quantiles")
	}
	// A histogram recreated since (counts went backwards) counts from zero.
	if d := earlier.Sub(h); d.Count != 4 {
		t.Errorf("Sub of a later snapshot: %+v", d)
	}
}
