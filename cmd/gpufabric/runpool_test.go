package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/servertest"
	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
)

// TestRunFromThePool: when a run takes its devices from the pool, and what
// it asks of it.
func TestRunFromThePool(t *testing.T) {
	for _, k := range []string{"GPUFABRIC_SERVER", "GPUFABRIC_SHARE", "GPUFABRIC_DEVICES", "GPUFABRIC_POOL", "GPUFABRIC_RESERVATION"} {
		t.Setenv(k, "")
	}
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		active bool
		n      int
		share  pool.Share
	}{
		{"no pool", nil, []string{"true"}, false, 0, pool.Share{}},
		{"a pool and no server", nil, []string{"--pool", "127.0.0.1:2379", "-n", "2", "-p", "0.5", "true"}, true, 2, pool.Share{Fraction: 0.5}},
		{"the pool from the environment, whole devices", map[string]string{"GPUFABRIC_POOL": "h:2379"}, []string{"true"}, true, 1, pool.Share{Fraction: 1}},
		{"a size", nil, []string{"--pool", "h:2379", "-m", "1GiB", "true"}, true, 1, pool.Share{Bytes: 1 << 30}},
		{"a server named wins", nil, []string{"--pool", "h:2379", "--server", "h:7070", "true"}, false, 0, pool.Share{}},
		{"a server from the environment wins", map[string]string{"GPUFABRIC_SERVER": "h:7070", "GPUFABRIC_POOL": "h:2379"}, []string{"true"}, false, 0, pool.Share{}},
		{"a reservation", map[string]string{"GPUFABRIC_RESERVATION": "abc"}, []string{"true"}, true, 1, pool.Share{Fraction: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parseRunArgs(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if o.pool.active != tc.active || (tc.active && (o.pool.n != tc.n || o.pool.share != tc.share)) {
				t.Fatalf("active %v n %d share %+v; want %v %d %+v", o.pool.active, o.pool.n, o.pool.share, tc.active, tc.n, tc.share)
			}
		})
	}
	for _, bad := range [][]string{
		{"--pool", "h:2379", "-n", "all", "true"},
		{"--pool", "h:2379", "--pool-ttl", "100ms", "true"},
	} {
		if _, err := parseRunArgs(bad); err == nil {
			t.Errorf("parseRunArgs(%q) succeeded", bad)
		}
	}
	t.Setenv("GPUFABRIC_SHARE", "0.5")
	if _, err := parseRunArgs([]string{"--pool", "h:2379", "true"}); err == nil {
		t.Error("a pool run took $GPUFABRIC_SHARE silently")
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		spread, pack bool
		want         pool.Policy
		ok           bool
	}{{false, false, pool.LeastLoaded, true}, {true, false, pool.Spread, true}, {false, true, pool.Pack, true}, {true, true, 0, false}} {
		got, err := parsePolicy(tc.spread, tc.pack)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parsePolicy(%v, %v) = %v, %v", tc.spread, tc.pack, got, err)
		}
	}
}

// TestDisjointAddresses: a reservation spanning servers whose devices
// hand out the same addresses is refused; distinct ranges, one server's
// devices, and devices that report no range pass.
func TestDisjointAddresses(t *testing.T) {
	dev := func(i int, low uint64) pool.Device {
		if low == 0 {
			return pool.Device{Index: i}
		}
		return pool.Device{Index: i, AddrLow: low, AddrHigh: low + 1<<40}
	}
	const slot1, slot2 = 1 << 46, 2 << 46
	servers := []pool.Server{
		{Name: "a", Devices: []pool.Device{dev(0, slot1), dev(1, slot1+1<<40)}},
		{Name: "b", Devices: []pool.Device{dev(0, slot2)}},
		{Name: "c", Devices: []pool.Device{dev(0, slot1)}}, // a's slot
		{Name: "gpu", Devices: []pool.Device{dev(0, 0)}},   // a real GPU: no range
	}
	for _, tc := range []struct {
		holds []pool.Hold
		ok    bool
	}{
		{[]pool.Hold{{Server: "a", Device: 0}, {Server: "b", Device: 0}}, true},
		{[]pool.Hold{{Server: "a", Device: 0}, {Server: "a", Device: 1}}, true},
		{[]pool.Hold{{Server: "a", Device: 0}, {Server: "gpu", Device: 0}}, true},
		{[]pool.Hold{{Server: "a", Device: 0}, {Server: "c", Device: 0}}, false},
		{[]pool.Hold{{Server: "b", Device: 0}, {Server: "a", Device: 1}, {Server: "c", Device: 0}}, true},
		{[]pool.Hold{{Server: "b", Device: 0}, {Server: "a", Device: 0}, {Server: "c", Device: 0}}, false},
	} {
		err := disjointAddresses(pool.Reservation{Holds: tc.holds}, servers)
		if (err == nil) != tc.ok {
			t.Errorf("holds %+v: %v, want ok %v", tc.holds, err, tc.ok)
		}
	}
}

// TestRunRenewsAcrossAnOutage: run's renewals go on through a pool that
// stops answering (the program runs on, and one line says so), resume
// when it answers, and stop with a line saying why when the reservation
// is gone.
func TestRunRenewsAcrossAnOutage(t *testing.T) {
	var state atomic.Value // "up", "down", "gone"
	state.Store("up")
	var renewals atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch state.Load() {
		case "down":
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"pool store unreachable: the store is away","kind":"unavailable"}`)
		case "revoked":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"unknown token: the pool issued no such token, or revoked it","kind":"bad_token"}`)
		case "gone":
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"no such reservation: r1 (its lease ran out)","kind":"not_found"}`)
		default:
			renewals.Add(1)
			fmt.Fprint(w, `{"ttl":3000000000}`)
		}
	}))
	defer fake.Close()
	bc := broker.NewClient([]string{fake.URL}, nil, "gftok_x")
	defer bc.Close()
	var stderr servertest.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		keepReservation(context.Background(), &stderr, bc, pool.Reservation{ID: "r1"}, []string{"s0"}, 10*time.Millisecond, true)
	}()
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s; stderr:\n%s", what, stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	until("a renewal", func() bool { return renewals.Load() > 0 })
	state.Store("down")
	until("a line saying renewals fail", func() bool { return strings.Contains(stderr.String(), "cannot renew reservation r1") })
	select {
	case <-done:
		t.Fatal("the renewals stopped at an outage")
	default:
	}
	before := renewals.Load()
	state.Store("up")
	until("renewals to resume", func() bool { return renewals.Load() > before })
	until("a line saying the pool is back", func() bool { return strings.Contains(stderr.String(), "the pool answers again") })
	state.Store("gone")
	until("the renewals to stop", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	if out := stderr.String(); strings.Count(out, "cannot renew") != 1 || !strings.Contains(out, "reservation r1 ended: it was released") {
		t.Errorf("stderr:\n%s", out)
	}

	// A revoked token: no renewal will succeed, and run says so once.
	state.Store("revoked")
	var revoked servertest.Buffer
	keepReservation(context.Background(), &revoked, bc, pool.Reservation{ID: "r2"}, nil, 10*time.Millisecond, true)
	if out := revoked.String(); !strings.Contains(out, "reservation r2 can no longer be renewed: unknown token") {
		t.Errorf("after the token's revocation, stderr:\n%s", out)
	}
}
