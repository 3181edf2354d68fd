package interpose

import (
	"testing"
	"time"
)

// TestCopyRate: the estimate takes a faster copy at once and a slower one
// by an eighth, and scales with the size asked about.
func TestCopyRate(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name    string
		observe []time.Duration // each for a 64 MiB copy
		want    time.Duration   // expected for 32 MiB
	}{
		{"untimed", nil, 0},
		{"one", []time.Duration{8 * time.Millisecond}, 4 * time.Millisecond},
		{"faster replaces", []time.Duration{16 * time.Millisecond, 8 * time.Millisecond}, 4 * time.Millisecond},
		{"slower creeps", []time.Duration{8 * time.Millisecond, 16 * time.Millisecond}, 4*time.Millisecond + 500*time.Microsecond},
		{"nonsense ignored", []time.Duration{8 * time.Millisecond, 0, -time.Second}, 4 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r copyRate
			for _, d := range tc.observe {
				r.observe(64*mib, d)
			}
			r.observe(0, time.Second) // no bytes, no rate
			got := r.expect(32 * mib)
			// Within 1 %: the rate is kept in whole picoseconds a byte.
			if diff := got - tc.want; diff < -tc.want/100 || diff > tc.want/100 {
				t.Fatalf("expect(32 MiB) = %v, want %v", got, tc.want)
			}
		})
	}
}
