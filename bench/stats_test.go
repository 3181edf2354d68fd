package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }

// micros makes samples of 1..n µs, shuffled.
func micros(n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = us(i + 1)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func TestSummarize(t *testing.T) {
	for _, tt := range []struct {
		name                              string
		samples                           []time.Duration
		min, p50, p90, p99, p999, max, mn float64 // µs
	}{
		{"one", []time.Duration{us(7)}, 7, 7, 7, 7, 7, 7, 7},
		{"two", []time.Duration{us(9), us(1)}, 1, 1, 9, 9, 9, 9, 5},
		{"ten", micros(10), 1, 5, 9, 10, 10, 10, 5.5},
		{"hundred", micros(100), 1, 50, 90, 99, 100, 100, 50.5},
		{"thousand", micros(1000), 1, 500, 900, 990, 999, 1000, 500.5},
		{"ties", []time.Duration{us(3), us(3), us(3), us(100)}, 3, 3, 100, 100, 100, 100, 27.25},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.samples)
			d := Summarize(tt.samples)
			if !slices.Equal(in, tt.samples) {
				t.Error("Summarize modified its samples")
			}
			if d.Samples != len(tt.samples) {
				t.Errorf("Samples = %d, want %d", d.Samples, len(tt.samples))
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"min", d.Min, tt.min}, {"p50", d.P50, tt.p50}, {"p90", d.P90, tt.p90}, {"p99", d.P99, tt.p99},
				{"p99.9", d.P999, tt.p999}, {"max", d.Max, tt.max}, {"mean", d.Mean, tt.mn}} {
				if math.Abs(c.got*1e6-c.want) > 1e-6 {
					t.Errorf("%s = %gµs, want %gµs", c.what, c.got*1e6, c.want)
				}
			}
			if len(d.CDF) != len(cdfFractions) {
				t.Fatalf("CDF has %d points, want %d", len(d.CDF), len(cdfFractions))
			}
			if first, last := d.CDF[0], d.CDF[len(d.CDF)-1]; first.Seconds != d.Min || first.Fraction != 0 || last.Seconds != d.Max || last.Fraction != 1 {
				t.Errorf("CDF runs from %+v to %+v", first, last)
			}
			for i := 1; i < len(d.CDF); i++ {
				if d.CDF[i].Seconds < d.CDF[i-1].Seconds || d.CDF[i].Fraction <= d.CDF[i-1].Fraction {
					t.Errorf("CDF not monotonic at %d: %+v then %+v", i, d.CDF[i-1], d.CDF[i])
				}
			}
		})
	}
}

func TestSummarizeEmpty(t *testing.T) {
	if d := Summarize(nil); d.Samples != 0 || d.P50 != 0 || d.CDF != nil {
		t.Errorf("Summarize(nil) = %+v", d)
	}
}

// TestSummarizeAgreesWithTransport checks our percentiles against the
// transport package's, which choose transports by them: the two must not
// tell different stories about the same samples.
func TestSummarizeAgreesWithTransport(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 7, 99, 100, 101, 999, 1000, 1001, 12345} {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(rng.ExpFloat64() * 1e4)
		}
		ours, theirs := Summarize(s), transport.Percentiles(s)
		for _, c := range []struct {
			what string
			a    float64
			b    time.Duration
		}{{"p50", ours.P50, theirs.P50}, {"p90", ours.P90, theirs.P90}, {"p99", ours.P99, theirs.P99}, {"p99.9", ours.P999, theirs.P999}} {
			if time.Duration(math.Round(c.a*1e9)) != c.b {
				t.Errorf("n=%d %s: %v here, %v in transport", n, c.what, c.a, c.b)
			}
		}
	}
}

func TestRank(t *testing.T) {
	for _, tt := range []struct {
		n    int
		q    float64
		want int
	}{
		{1, 0, 0}, {1, 0.5, 0}, {1, 1, 0},
		{100, 0, 0}, {100, 0.01, 0}, {100, 0.5, 49}, {100, 0.99, 98}, {100, 1, 99},
		{1000, 0.999, 998}, {10, 0.999, 9}, {3, 0.5, 1},
	} {
		if got := rank(tt.n, tt.q); got != tt.want {
			t.Errorf("rank(%d, %g) = %d, want %d", tt.n, tt.q, got, tt.want)
		}
	}
}

func TestFairness(t *testing.T) {
	for _, tt := range []struct {
		name             string
		rates            []float64
		maxOverMin, jain float64
	}{
		{"none", nil, 0, 0},
		{"one", []float64{5}, 1, 1},
		{"equal", []float64{3, 3, 3, 3}, 1, 1},
		{"double", []float64{1, 2}, 2, 0.9},
		{"one hog", []float64{10, 0, 0, 0}, 0, 0.25},
		{"all idle", []float64{0, 0}, 0, 0},
		{"spread", []float64{1, 2, 3, 4}, 4, 100.0 / 120},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, j := Fairness(tt.rates)
			if math.Abs(m-tt.maxOverMin) > 1e-12 || math.Abs(j-tt.jain) > 1e-12 {
				t.Errorf("Fairness(%v) = %g, %g; want %g, %g", tt.rates, m, j, tt.maxOverMin, tt.jain)
			}
		})
	}
}
