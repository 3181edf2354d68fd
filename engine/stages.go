package engine

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

// Stage clocks: where a synchronous call's time in the server goes.
//
// One synchronous call in sampleEvery (by sequence number) is timed at each
// stage it passes: its frame read, its work handed to a shard, the shard
// running it, its reply ready, its reply written (api.Stage*). Timing every
// call would cost a shared-memory call, about 500 ns, a fifth of its time
// in clock reads; one in 64 costs the rest a test of the sequence number.
// The engine keeps these clocks itself rather than have BPF read them:
// uprobes on marker functions trap into the kernel on every hit, about a
// microsecond each, and a user ring buffer would need the engine to write
// the same timestamps it can count here. The kernel's side of a call's
// time (scheduling, system calls, TCP) is engine/probe's.
const sampleEvery = 64

// sampled reports whether call h is one the stage clocks time.
func sampled(h api.Header) bool {
	return h.Seq%sampleEvery == 0 && h.Flags&(api.FlagAsync|api.FlagReply) == 0
}

type stage int

const (
	stageDispatch stage = iota
	stageQueued
	stageDevice
	stageReply
	stageServer
	numStages
)

var stageNames = [numStages]string{api.StageDispatch, api.StageQueued, api.StageDevice, api.StageReply, api.StageServer}

// clockBase makes timestamps small monotonic nanosecond counts.
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

// histogram is a log2 histogram of nanoseconds, as api.Histogram describes.
type histogram struct {
	buckets    [64]atomic.Uint64
	count, sum atomic.Uint64
}

func (h *histogram) add(ns int64) {
	ns = max(ns, 0)
	h.buckets[max(bits.Len64(uint64(ns))-1, 0)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(ns))
}

func (h *histogram) snapshot() api.Histogram {
	var b [64]uint64
	for i := range h.buckets {
		b[i] = h.buckets[i].Load()
	}
	return api.NewHistogram(b[:], h.count.Load(), h.sum.Load())
}

// stageTimes are histograms of each stage.
type stageTimes [numStages]histogram

func (st *stageTimes) summary() []api.StageHistogram {
	var out []api.StageHistogram
	for i := range st {
		if st[i].count.Load() > 0 {
			out = append(out, api.StageHistogram{Stage: stageNames[i], Times: st[i].snapshot()})
		}
	}
	return out
}

// callClock is the timestamps of one sampled call in flight; zero where
// the call did not pass a stage (one the reader answers goes to no shard).
type callClock struct {
	seq                      uint32
	read, submitted, started int64
}

// stageClocks are a session's: its sampled calls in flight, by sequence
// number, and its stage times, which also count into the server's.
type stageClocks struct {
	mu     sync.Mutex
	calls  [16]callClock
	times  stageTimes
	server *stageTimes
}

func (c *stageClocks) slot(seq uint32) *callClock {
	return &c.calls[(seq/sampleEvery)%uint32(len(c.calls))]
}

// read starts the clock of sampled call seq.
func (c *stageClocks) read(seq uint32) {
	t := nanotime()
	c.mu.Lock()
	*c.slot(seq) = callClock{seq: seq, read: t}
	c.mu.Unlock()
}

// submitted and started stamp call seq's hand-off to a shard and the
// shard's running it.
func (c *stageClocks) submitted(seq uint32) {
	c.stamp(seq, func(cc *callClock, t int64) { cc.submitted = t })
}
func (c *stageClocks) started(seq uint32) {
	c.stamp(seq, func(cc *callClock, t int64) { cc.started = t })
}

func (c *stageClocks) stamp(seq uint32, set func(*callClock, int64)) {
	t := nanotime()
	c.mu.Lock()
	if cc := c.slot(seq); cc.seq == seq && cc.read != 0 {
		set(cc, t)
	}
	c.mu.Unlock()
}

// replied ends the clock of call seq, whose reply was ready at ready and
// written (or queued) at written, and counts its stages.
func (c *stageClocks) replied(seq uint32, ready, written int64) {
	c.mu.Lock()
	cc := *c.slot(seq)
	if cc.seq != seq || cc.read == 0 {
		c.mu.Unlock()
		return
	}
	*c.slot(seq) = callClock{}
	c.mu.Unlock()
	add := func(s stage, ns int64) {
		c.times[s].add(ns)
		c.server[s].add(ns)
	}
	if cc.submitted == 0 {
		add(stageDispatch, ready-cc.read)
	} else {
		add(stageDispatch, cc.submitted-cc.read)
		if cc.started != 0 {
			add(stageQueued, cc.started-cc.submitted)
			add(stageDevice, ready-cc.started)
		}
	}
	add(stageReply, written-ready)
	add(stageServer, written-cc.read)
}
