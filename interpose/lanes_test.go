package interpose

import (
	"errors"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

func TestPickLanes(t *testing.T) {
	cand := func(name string, p50 time.Duration, gbps float64) Candidate {
		return Candidate{Transport: name, Latency: transport.Stats{P50: p50}, Bandwidth: gbps * 1e9}
	}
	failed := Candidate{Transport: "shm", Err: errors.New("no such socket")}
	cases := []struct {
		name       string
		candidates []Candidate
		call, bulk string
	}{
		{"one", []Candidate{cand("tcp", 10*time.Microsecond, 2)}, "tcp", "tcp"},
		{"shm wins both", []Candidate{cand("shm", 600*time.Nanosecond, 9), cand("tcp", 10*time.Microsecond, 2.5)}, "shm", "shm"},
		{"a bandwidth tie stays on the call lane", []Candidate{cand("shm", 600*time.Nanosecond, 6.0), cand("tcp", 10*time.Microsecond, 6.1)}, "shm", "shm"},
		{"just under the margin", []Candidate{cand("shm", 600*time.Nanosecond, 4), cand("tcp", 10*time.Microsecond, 4.99)}, "shm", "shm"},
		{"clearly faster bulk", []Candidate{cand("shm", 600*time.Nanosecond, 4), cand("tcp", 10*time.Microsecond, 5.01)}, "shm", "tcp"},
		{"the faster call lane also moves more", []Candidate{cand("rdma", 2*time.Microsecond, 12), cand("tcp", 10*time.Microsecond, 2)}, "rdma", "rdma"},
		{"a failed candidate takes no part", []Candidate{failed, cand("tcp", 10*time.Microsecond, 2)}, "tcp", "tcp"},
		{"all failed", []Candidate{failed}, "tcp", "tcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call, bulk, reason := pickLanes(tc.candidates)
			if call != tc.call || bulk != tc.bulk {
				t.Fatalf("call %s, bulk %s (%s); want %s, %s", call, bulk, reason, tc.call, tc.bulk)
			}
			if reason == "" {
				t.Fatal("no reason given")
			}
		})
	}
}
