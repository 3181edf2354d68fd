package loadgen

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	var i atomic.Int64
	// Operations say they took 1..100 ms, whichever client ran them.
	f, err := Run(4, 100, func() (time.Duration, error) {
		return time.Duration(i.Add(1)) * time.Millisecond, nil
	})
	if err != nil || f.P50 != 51*time.Millisecond || f.P99 != 100*time.Millisecond || f.Rate <= 0 {
		t.Errorf("%+v, %v", f, err)
	}
	if i.Load() != 100 {
		t.Errorf("%d operations run, want 100", i.Load())
	}
	boom := errors.New("boom")
	var n atomic.Int64
	if _, err := Run(2, 10, func() (time.Duration, error) {
		if n.Add(1) == 3 {
			return 0, boom
		}
		return time.Millisecond, nil
	}); !errors.Is(err, boom) {
		t.Errorf("an operation's error: %v", err)
	}
}
