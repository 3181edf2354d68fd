//go:build linux

package probe_test

import (
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/gpufabric/gpufabric/engine/probe"
	"golang.org/x/sys/unix"
)

// How a server uses the probes: open them with its listening port and
// process, let each shard's locked thread register itself, log what is
// disabled, and read a snapshot's difference over an interval.
func Example() {
	p, err := probe.Open(probe.Options{Ports: []int{7070}, PID: os.Getpid()})
	if err != nil {
		slog.Warn("running without eBPF probes", "err", err) // p is nil: every call is a no-op
	}
	defer p.Close()
	for name, err := range p.Disabled() {
		slog.Warn("eBPF probe disabled", "probe", name, "err", err)
	}

	// In the shard's goroutine, after runtime.LockOSThread:
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		p.Track(tid, "shard")
		defer p.Untrack(tid)
		// ... the shard's loop ...
	}()

	before, _ := p.Snapshot()
	time.Sleep(10 * time.Second)
	now, err := p.Snapshot()
	if err != nil {
		return
	}
	d := now.Sub(before)
	rq := d.Hist("shard", probe.RunQueue)
	slog.Info("shard", "wakeups", rq.Count, "runq_mean", rq.Mean(), "runq_p99", rq.Quantile(0.99))
	for _, c := range d.Conns {
		slog.Info("conn", "client", c.Remote, "srtt_p50", c.SRTT.Quantile(0.5), "rcvq", c.RecvQueue, "retrans", c.Retransmits)
	}
}
