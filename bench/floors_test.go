package bench

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestTCPPingPong(t *testing.T) {
	s, err := TCPPingPong(64, Budget{Rounds: 200})
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, s, 200)
	if _, err := TCPPingPong(0, Budget{}); err == nil {
		t.Error("a ping-pong of 0 bytes succeeded")
	}
}

func TestShmPingPong(t *testing.T) {
	s, err := ShmPingPong(Budget{Rounds: 1000})
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("ShmPingPong on %s: %v, want ErrNotSupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, s, 1000)
}

func TestShmPingPongProcesses(t *testing.T) {
	s, err := ShmPingPongProcesses(Budget{Rounds: 1000})
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("ShmPingPongProcesses on %s: %v, want ErrNotSupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	checkSamples(t, s, 1000)
}

func checkSamples(t *testing.T, s []time.Duration, n int) {
	t.Helper()
	if len(s) != n {
		t.Fatalf("%d samples, want %d", len(s), n)
	}
	for i, d := range s {
		if d <= 0 || d > 10*time.Second {
			t.Fatalf("sample %d is %v", i, d)
		}
	}
}

func TestBudget(t *testing.T) {
	start := time.Now()
	s, err := TCPPingPong(64, Budget{Time: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(s) == 0 || len(s) >= MaxSamples {
		t.Errorf("%d samples in 30ms", len(s))
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a 30ms budget took %v", el)
	}
	// The zero budget is DefaultRounds; both bounds: the first reached.
	if s, _ := TCPPingPong(8, Budget{}); len(s) != DefaultRounds {
		t.Errorf("zero budget: %d samples, want %d", len(s), DefaultRounds)
	}
	if s, _ := TCPPingPong(8, Budget{Rounds: 10, Time: time.Hour}); len(s) != 10 {
		t.Errorf("10 rounds within an hour: %d samples", len(s))
	}
}

func TestBandwidthFloors(t *testing.T) {
	for _, tt := range []struct {
		name string
		bw   func() (float64, error)
	}{
		{"stream", func() (float64, error) { return TCPStream(64<<10, 8<<20) }},
		{"stream ragged", func() (float64, error) { return TCPStream(3000, 10000) }},
		{"transfer small", func() (float64, error) { return TCPTransfer(4<<10, Budget{Rounds: 50}) }},
		{"transfer large", func() (float64, error) { return TCPTransfer(5<<20, Budget{Rounds: 3}) }},
		{"memcpy", func() (float64, error) { return Memcpy(1<<20, Budget{Rounds: 20}), nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bw, err := tt.bw()
			if err != nil {
				t.Fatal(err)
			}
			if bw < 1e6 || bw > 1e13 {
				t.Errorf("%g bytes/s", bw)
			}
		})
	}
	for _, bad := range []func() (float64, error){
		func() (float64, error) { return TCPStream(0, 10) },
		func() (float64, error) { return TCPStream(10, 5) },
		func() (float64, error) { return TCPTransfer(0, Budget{}) },
	} {
		if _, err := bad(); err == nil {
			t.Error("a floor of nothing succeeded")
		}
	}
	if Memcpy(0, Budget{}) != 0 {
		t.Error("Memcpy(0) is not 0")
	}
}

func TestBudgetDone(t *testing.T) {
	done := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { close(done) })
	start := time.Now()
	s, err := TCPPingPong(64, Budget{Time: time.Hour, Done: done})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second || len(s) == 0 {
		t.Errorf("Done closed after 20ms: %d samples in %v", len(s), el)
	}
}
