package api

import (
	"math"
	"time"
)

// NewHistogram is a histogram of these log2 buckets (copied, trailing
// empty ones left out), count values and their sum in nanoseconds.
func NewHistogram(buckets []uint64, count, sum uint64) Histogram {
	last := -1
	for i, n := range buckets {
		if n != 0 {
			last = i
		}
	}
	return Histogram{Buckets: append([]uint64(nil), buckets[:last+1]...), Count: count, Sum: sum}
}

// Sub returns what h counted since earlier, a snapshot of the same
// histogram; a count that went backwards counts from zero.
func (h Histogram) Sub(earlier Histogram) Histogram {
	d := Histogram{Buckets: make([]uint64, len(h.Buckets))}
	for i, n := range h.Buckets {
		if i < len(earlier.Buckets) && earlier.Buckets[i] <= n {
			n -= earlier.Buckets[i]
		}
		d.Buckets[i] = n
	}
	if earlier.Count <= h.Count && earlier.Sum <= h.Sum {
		d.Count, d.Sum = h.Count-earlier.Count, h.Sum-earlier.Sum
	} else {
		d.Count, d.Sum = h.Count, h.Sum
	}
	return d
}

// Mean is the exact mean; 0 for an empty histogram.
func (h Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return time.Duration(h.Sum / h.Count)
}

// Quantile estimates the q-quantile (0 <= q <= 1): the bucket holding it,
// interpolated linearly inside, so within a factor of 2. 0 when empty.
func (h Histogram) Quantile(q float64) time.Duration {
	var total uint64
	for _, n := range h.Buckets {
		total += n
	}
	if total == 0 || math.IsNaN(q) {
		return 0
	}
	rank := min(max(q, 0), 1) * float64(total)
	var seen float64
	for b, n := range h.Buckets {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lo, hi := 0.0, 2.0
			if b > 0 {
				lo, hi = math.Ldexp(1, b), math.Ldexp(1, b+1)
			}
			ns := lo + (rank-seen)/float64(n)*(hi-lo)
			if ns >= math.MaxInt64 {
				return math.MaxInt64
			}
			return time.Duration(ns)
		}
		seen += float64(n)
	}
	return 0
}
