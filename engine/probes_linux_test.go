//go:build linux

package engine_test

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/probe"
)

// TestStatusCarriesProbes: with probes, the server's status shows its
// threads' scheduling and each TCP session's connection. (The host
// backend's shard moves between threads: it counts under "process".)
func TestStatusCarriesProbes(t *testing.T) {
	p, err := probe.Open(probe.Options{PID: os.Getpid()})
	if err != nil {
		t.Skipf("skipping: eBPF probes cannot load here (%v)", err)
	}
	defer p.Close()
	f := newFixtureWith(t, engine.Config{Probes: p}, 1, 64<<20)
	_, port, _ := net.SplitHostPort(f.addr)
	n, _ := strconv.Atoi(port)
	if err := p.WatchPort(n); err != nil {
		t.Fatal(err)
	}
	s := f.dial(t)
	dev, _ := attach(t, s, 0.25)
	for range 200 {
		if _, _, err := dev.MemGetInfo(); err != nil { // a call the shard answers
			t.Fatal(err)
		}
	}
	var st api.Status
	waitFor(t, func() bool {
		st = f.srv.Status()
		return st.Probes != nil && len(st.Sessions) == 1 && st.Sessions[0].TCP != nil && st.Sessions[0].TCP.SRTT.Count > 0
	})
	if st.Probes.Error != "" {
		t.Fatal(st.Probes.Error)
	}
	var wakeups uint64
	for _, r := range st.Probes.Roles {
		if r.Role == probe.ProcessRole && r.Metric == string(probe.RunQueue) {
			wakeups = r.Times.Count
		}
	}
	if wakeups == 0 {
		t.Errorf("no run-queue samples for the server's threads: %+v", st.Probes.Roles)
	}
}
