package engine

import (
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
)

// fairQueue holds a shard's tasks: one FIFO per session, served by deficit
// round robin so that each session gets work run in proportion to its
// weight, and none waits behind another's burst. Work is weighed in cost
// units (costOf), not tasks, so that a 256 MiB copy is not served as if it
// were a null launch. It is the shard's scheduling core, kept free of I/O
// so it can be tested alone.
type fairQueue struct {
	mu     sync.Mutex
	flows  map[uint64]*flow
	active []*flow // flows with tasks, in service order
	next   int
	queued atomic.Int64 // tasks in all flows
}

type flow struct {
	id      uint64
	quantum int // cost units per round
	deficit int
	// tasks[head:] are queued. The array is kept when the flow runs dry,
	// so that a steady stream of launches allocates nothing here.
	tasks  []task
	head   int
	active bool
}

// task is work to run on the shard and, when done is not nil, a counter
// to decrement once it has run. cost is its weight in the fair queue, at
// least 1.
type task struct {
	work runner
	done *atomic.Int64
	cost int
}

// costUnit is the bytes of payload worth one cost unit: a task that moves
// n bytes costs 1 + n/costUnit, so a 64 MiB copy weighs as much as a
// thousand launches.
const costUnit = 64 << 10

// costOf is the fair-queue weight of a task that moves n bytes.
func costOf(n int) int { return 1 + n/costUnit }

func (t task) run() { t.work.run() }

// runner is work for a shard: a closure (funcWork), or an object that need
// not be one, as a launch's recycled task, where a closure would cost an
// allocation per launch.
type runner interface{ run() }

// funcWork runs a closure; a func fits in an interface without allocating.
type funcWork func()

func (f funcWork) run() { f() }

// call is work that answers a client's call. Should it panic (a bug of
// ours that one client's input hit), the shard answers the call with
// abort, so that a client waiting for it is never left waiting.
type call interface {
	runner
	abort(err error)
}

// callWork is a closure that answers the call h of session s.
type callWork struct {
	s  *session
	h  api.Header
	fn func()
}

// newCall is the work fn of call h, about to be handed to a shard.
func (s *session) newCall(h api.Header, fn func()) *callWork {
	if sampled(h) {
		s.clocks.submitted(h.Seq)
	}
	return &callWork{s, h, fn}
}

func (w *callWork) run() {
	if sampled(w.h) {
		w.s.clocks.started(w.h.Seq)
	}
	w.fn()
}

func (w *callWork) abort(err error) { w.s.fail(w.h, err) }

func newFairQueue() *fairQueue { return &fairQueue{flows: map[uint64]*flow{}} }

// quantumOf turns a share (millionths of the device) into cost units per
// round: a whole device gets 64, the smallest share 1.
func quantumOf(shareMillionths uint32) int {
	return max(1, int(uint64(shareMillionths)*64/1_000_000))
}

// push queues t for flow id with the given quantum, and reports whether the
// queue was empty before.
func (q *fairQueue) push(id uint64, quantum int, t task) (wasEmpty bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	wasEmpty = len(q.active) == 0
	f := q.flows[id]
	if f == nil {
		f = &flow{id: id}
		q.flows[id] = f
	}
	f.quantum = quantum
	if len(f.tasks) == cap(f.tasks) && f.head > 0 {
		// Full, with served tasks at the front: move the queued ones down
		// rather than grow, so a flow that never runs dry stays bounded.
		n := copy(f.tasks, f.tasks[f.head:])
		clear(f.tasks[n:])
		f.tasks, f.head = f.tasks[:n], 0
	}
	f.tasks = append(f.tasks, t)
	q.queued.Add(1)
	if !f.active {
		f.active = true
		q.active = append(q.active, f)
	}
	return wasEmpty
}

// pop appends to dst the tasks of one round of service, at most limit, and
// returns it; empty when nothing is queued.
func (q *fairQueue) pop(dst []task, limit int) []task {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(dst) < limit && len(q.active) > 0 {
		if q.next >= len(q.active) {
			q.next = 0
		}
		f := q.active[q.next]
		if f.deficit <= 0 {
			f.deficit += f.quantum
		}
		// Take tasks while the flow has credit; the last may overdraw it,
		// and the debt is paid in the rounds that follow.
		n := 0
		for f.deficit > 0 && f.head+n < len(f.tasks) && len(dst) < limit {
			t := f.tasks[f.head+n]
			dst = append(dst, t)
			f.deficit -= max(t.cost, 1)
			n++
		}
		q.queued.Add(int64(-n))
		clear(f.tasks[f.head : f.head+n]) // let the garbage collector have them
		f.head += n
		if f.head == len(f.tasks) {
			f.tasks, f.head = f.tasks[:0], 0
			f.deficit = 0
			f.active = false
			q.active = append(q.active[:q.next], q.active[q.next+1:]...)
			continue
		}
		if f.deficit <= 0 {
			q.next++
		}
	}
	return dst
}

// pending reports whether any task is queued, with one atomic load: the
// shard polls it in a tight loop.
func (q *fairQueue) pending() bool { return q.queued.Load() > 0 }

// forget drops a flow's bookkeeping once its session has ended.
func (q *fairQueue) forget(id uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f := q.flows[id]; f != nil && !f.active {
		delete(q.flows, id)
	}
}
