package bench

import (
	"math"
	"slices"
	"time"
)

// Dist summarises a set of latency samples, in seconds. Percentiles are by
// the nearest-rank method: Pq is the smallest sample that q of the samples
// do not exceed, so every figure is a latency that was actually measured.
type Dist struct {
	Samples int     `json:"samples"`
	Mean    float64 `json:"mean_seconds"`
	Min     float64 `json:"min_seconds"`
	P50     float64 `json:"p50_seconds"`
	P90     float64 `json:"p90_seconds"`
	P99     float64 `json:"p99_seconds"`
	P999    float64 `json:"p999_seconds"`
	Max     float64 `json:"max_seconds"`
	// CDF is the distribution at fixed fractions (cdfFractions), for plots;
	// empty where a summary is enough.
	CDF []CDFPoint `json:"cdf,omitempty"`
}

// CDFPoint says that Fraction of the samples took at most Seconds.
type CDFPoint struct {
	Seconds  float64 `json:"seconds"`
	Fraction float64 `json:"fraction"`
}

// cdfFractions are where a Dist's CDF is sampled: every percent, and the
// tail finer, where latency stories are told.
var cdfFractions = func() []float64 {
	var f []float64
	for i := 0; i <= 100; i++ {
		f = append(f, float64(i)/100)
	}
	return slices.Insert(f, 100, 0.995, 0.999, 0.9995, 0.9999)
}()

// Summarize summarises samples with the CDF included. It does not modify
// samples; no samples give the zero Dist.
func Summarize(samples []time.Duration) Dist {
	n := len(samples)
	if n == 0 {
		return Dist{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	var sum float64
	for _, d := range sorted {
		sum += d.Seconds()
	}
	at := func(q float64) float64 { return sorted[rank(n, q)].Seconds() }
	d := Dist{
		Samples: n,
		Mean:    sum / float64(n),
		Min:     sorted[0].Seconds(),
		P50:     at(0.50),
		P90:     at(0.90),
		P99:     at(0.99),
		P999:    at(0.999),
		Max:     sorted[n-1].Seconds(),
	}
	for _, q := range cdfFractions {
		d.CDF = append(d.CDF, CDFPoint{Seconds: at(q), Fraction: q})
	}
	return d
}

// rank is the index of the nearest-rank q-quantile of n sorted samples:
// ceil(q·n)-1, and 0 for q = 0. The product is rounded to 1e-9 first so
// that 0.99·100 is 99, not 99.00000000000001.
func rank(n int, q float64) int {
	x := math.Round(q*float64(n)*1e9) / 1e9
	return min(max(int(math.Ceil(x))-1, 0), n-1)
}

// Fairness measures how evenly a resource went to clients from their rates:
// maxOverMin is the largest rate over the smallest (1 is perfectly fair;
// 0 when some client made no progress at all, which no ratio describes),
// and jain is Jain's index, (Σx)² / (n·Σx²), from 1/n (one client got
// everything) to 1 (all equal); 0 when there are no rates or all are 0.
func Fairness(rates []float64) (maxOverMin, jain float64) {
	if len(rates) == 0 {
		return 0, 0
	}
	lo, hi := slices.Min(rates), slices.Max(rates)
	if lo > 0 {
		maxOverMin = hi / lo
	}
	var sum, sq float64
	for _, r := range rates {
		sum += r
		sq += r * r
	}
	if sq > 0 {
		jain = sum * sum / (float64(len(rates)) * sq)
	}
	return maxOverMin, jain
}
