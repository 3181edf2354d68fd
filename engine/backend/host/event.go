package host

import (
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// event counts records: recorded is bumped when a Record is queued,
// completed when the stream reaches it. Waiters wait for the count that was
// current when they asked, which is CUDA's "most recent record" rule.
type event struct {
	flags uint32

	mu        sync.Mutex
	recorded  uint64
	completed uint64
	at        time.Time
	waiters   []eventWaiter
}

type eventWaiter struct {
	gen uint64
	fn  func(error)
}

var _ backend.Event = (*event)(nil)

// record is called when a Record is queued; it returns the generation the
// stream must complete.
func (e *event) record() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recorded++
	return e.recorded
}

// complete is called by the stream when it reaches the record.
func (e *event) complete(gen uint64) {
	e.mu.Lock()
	if gen > e.completed {
		e.completed, e.at = gen, time.Now()
	}
	var ready []func(error)
	kept := e.waiters[:0]
	for _, w := range e.waiters {
		if w.gen <= e.completed {
			ready = append(ready, w.fn)
		} else {
			kept = append(kept, w)
		}
	}
	e.waiters = kept
	e.mu.Unlock()
	for _, fn := range ready {
		fn(nil)
	}
}

// notifyAt calls fn once generation gen has completed.
func (e *event) notifyAt(gen uint64, fn func(error)) {
	e.mu.Lock()
	if e.completed >= gen {
		e.mu.Unlock()
		fn(nil)
		return
	}
	e.waiters = append(e.waiters, eventWaiter{gen, fn})
	e.mu.Unlock()
}

// target is the generation a waiter queued now must wait for.
func (e *event) target() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.recorded
}

func (e *event) Query() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.completed < e.recorded {
		return api.ErrNotReady
	}
	return nil
}

func (e *event) Notify(fn func(error)) error {
	e.notifyAt(e.target(), fn)
	return nil
}

func (e *event) Destroy() error { return nil }

func (e *event) recordedAt() (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.flags&eventDisableTiming != 0:
		return time.Time{}, api.Errorf(api.ErrInvalidHandle, "event created with CU_EVENT_DISABLE_TIMING")
	case e.recorded == 0:
		return time.Time{}, api.Errorf(api.ErrInvalidHandle, "event was never recorded")
	case e.completed < e.recorded:
		return time.Time{}, api.ErrNotReady
	}
	return e.at, nil
}
