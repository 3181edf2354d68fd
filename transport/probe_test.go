package transport

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		d := make([]time.Duration, len(ns))
		for i, n := range ns {
			d[i] = time.Duration(n) * time.Millisecond
		}
		return d
	}
	oneTo := func(n int) []time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = time.Duration(n-i) * time.Millisecond // reversed: Percentiles sorts
		}
		return d
	}
	cases := []struct {
		name    string
		samples []time.Duration
		want    Stats
	}{
		{"none", nil, Stats{}},
		{"one", ms(7), Stats{Samples: 1, P50: 7e6, P90: 7e6, P99: 7e6, P999: 7e6, Mean: 7e6, Min: 7e6, Max: 7e6}},
		{"two", ms(1, 3), Stats{Samples: 2, P50: 1e6, P90: 3e6, P99: 3e6, P999: 3e6, Mean: 2e6, Min: 1e6, Max: 3e6}},
		{"1..100", oneTo(100), Stats{Samples: 100, P50: 50e6, P90: 90e6, P99: 99e6, P999: 100e6, Mean: 50.5e6, Min: 1e6, Max: 100e6}},
		{"1..1000", oneTo(1000), Stats{Samples: 1000, P50: 500e6, P90: 900e6, P99: 990e6, P999: 999e6, Mean: 500.5e6, Min: 1e6, Max: 1000e6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.samples)
			if got := Percentiles(in); got != tc.want {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
			if !slices.Equal(in, tc.samples) {
				t.Fatal("Percentiles modified its input")
			}
		})
	}
}

// peers runs each measurement against both peers a transport offers.
var peers = []struct {
	name string
	run  func(Conn) error
}{{"echo", Echo}, {"sink", Sink}}

func TestPingPong(t *testing.T) {
	for _, peer := range peers {
		for _, size := range []int{0, 100, 256 << 10} {
			t.Run(fmt.Sprintf("%s/%d", peer.name, size), func(t *testing.T) {
				a, b := pipePair(t, Options{})
				done := make(chan error, 1)
				go func() { done <- peer.run(b) }()
				st, err := PingPong(a, 50, size)
				if err != nil {
					t.Fatal(err)
				}
				if st.Samples != 50 || st.Min <= 0 || st.Min > st.P50 || st.P50 > st.P90 || st.P90 > st.P99 || st.P99 > st.P999 || st.P999 > st.Max {
					t.Fatalf("implausible stats: %v", st)
				}
				t.Logf("%d-byte payload: %v", size, st)
				a.Close()
				if err := <-done; err != nil {
					t.Fatalf("%s returned %v when the conn closed, want nil", peer.name, err)
				}
			})
		}
	}
}

func TestBandwidth(t *testing.T) {
	for _, peer := range peers {
		t.Run(peer.name, func(t *testing.T) {
			a, b := pipePair(t, Options{})
			go peer.run(b)
			bw, err := Bandwidth(a, 64<<10, 4<<20+1) // not a whole number of frames
			if err != nil {
				t.Fatal(err)
			}
			if bw <= 0 {
				t.Fatalf("bandwidth %v", bw)
			}
			t.Logf("%.0f MB/s", bw/1e6)
			// The connection is clean afterwards: another measurement works.
			if _, err := PingPong(a, 5, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPingPongBadPeer: a reply that is not the ping's echo is an error.
func TestPingPongBadPeer(t *testing.T) {
	a, b := pipePair(t, Options{})
	go func() {
		for {
			if _, _, err := b.Recv(); err != nil {
				return
			}
			b.Send([]byte("not a probe"), nil)
		}
	}()
	if _, err := PingPong(a, 5, 0); err == nil {
		t.Fatal("PingPong accepted a reply that is not its echo")
	}
}

func TestProbeBadArguments(t *testing.T) {
	a, _ := pipePair(t, Options{})
	if _, err := PingPong(a, 0, 0); err == nil {
		t.Error("PingPong of 0 rounds succeeded")
	}
	if _, err := Bandwidth(a, 0, 1); err == nil {
		t.Error("Bandwidth with 0-byte frames succeeded")
	}
	if _, err := PingPong(a, 1, -1); err == nil {
		t.Error("PingPong with a negative payload succeeded")
	}
}
