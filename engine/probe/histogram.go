package probe

import (
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

// NumBuckets is the number of buckets of a Histogram.
const NumBuckets = 64

// Histogram is a log2 histogram of durations in nanoseconds, as the BPF
// programs keep it: Buckets[b] counts the values v with floor(log2(v)) == b,
// that is 2^b <= v < 2^(b+1) nanoseconds (bucket 0 also holds 0). Bucket 10
// is about 1 µs to 2 µs, 20 about 1 ms to 2 ms, 30 about 1 s to 2 s. Count
// is the number of values and Sum their total, so Mean is exact; quantiles
// are only as precise as a bucket (a factor of 2).
type Histogram struct {
	Buckets [NumBuckets]uint64
	Count   uint64
	Sum     uint64 // nanoseconds
}

// Mean returns the exact mean, 0 for an empty histogram.
func (h Histogram) Mean() time.Duration { return h.Wire().Mean() }

// Quantile returns an estimate of the q-quantile (0 <= q <= 1), 0 for an
// empty histogram: it finds the bucket holding the q-th value and
// interpolates linearly inside it, so the answer lies in the right bucket
// and may be off by up to its width.
func (h Histogram) Quantile(q float64) time.Duration { return h.Wire().Quantile(q) }

// Wire is h as the server's status carries it.
func (h Histogram) Wire() api.Histogram { return api.NewHistogram(h.Buckets[:], h.Count, h.Sum) }

// Sub returns h minus an earlier snapshot of the same histogram: what was
// recorded between the two. A counter that went backwards (the map was
// recreated) counts from zero.
func (h Histogram) Sub(earlier Histogram) Histogram {
	d := Histogram{Count: sub(h.Count, earlier.Count), Sum: sub(h.Sum, earlier.Sum)}
	for b := range h.Buckets {
		d.Buckets[b] = sub(h.Buckets[b], earlier.Buckets[b])
	}
	return d
}

// Add returns the sum of h and o.
func (h Histogram) Add(o Histogram) Histogram {
	s := Histogram{Count: h.Count + o.Count, Sum: h.Sum + o.Sum}
	for b := range h.Buckets {
		s.Buckets[b] = h.Buckets[b] + o.Buckets[b]
	}
	return s
}

func sub(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return a - b
}
