//go:build cgo

package cuda

import (
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// event is a CUevent plus the bookkeeping that streams' host-side queues
// make necessary: a Record may sit in a stream's worker queue for a while
// before it reaches the driver, and whoever waits on or queries the event
// in the meantime must see that record, not the one before it.
//
// reserved counts Record calls, issuedGen the records the driver has
// been given; a waiter that arrived after record n waits for issuedGen >= n
// before it asks the driver. refs counts the queued records and waits (and
// pending Notify goroutines) that still name the handle, so that Destroy
// can release it once none does.
type event struct {
	d     *Device
	h     handle
	flags uint32

	mu        sync.Mutex
	cond      sync.Cond
	reserved  uint64
	issuedGen uint64
	refs      int
	destroyed bool
	gone      bool
}

var _ backend.Event = (*event)(nil)

func newEvent(d *Device, h handle, flags uint32) *event {
	e := &event{d: d, h: h, flags: flags}
	e.cond.L = &e.mu
	return e
}

// reserve is called when a Record is accepted; it returns the record's
// generation and holds a reference until issued is called.
func (e *event) reserve() (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.destroyed {
		return 0, api.Errorf(api.ErrInvalidHandle, "event is destroyed")
	}
	e.reserved++
	e.refs++
	return e.reserved, nil
}

// issued is called once record gen has been handed to the driver (or
// failed to be); it drops reserve's reference.
func (e *event) issued(gen uint64) {
	e.mu.Lock()
	if gen > e.issuedGen {
		e.issuedGen = gen
	}
	e.cond.Broadcast()
	e.mu.Unlock()
	e.release()
}

// hold takes a reference for a wait or notify and returns the generation
// it must see: the most recent Record accepted so far.
func (e *event) hold() (uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.destroyed {
		return 0, api.Errorf(api.ErrInvalidHandle, "event is destroyed")
	}
	e.refs++
	return e.reserved, nil
}

func (e *event) release() {
	e.mu.Lock()
	e.refs--
	free := e.destroyed && e.refs == 0 && !e.gone
	e.gone = e.gone || free
	e.mu.Unlock()
	if free {
		eventDestroy(e.d.ctx, e.h)
	}
}

func (e *event) isIssued(gen uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issuedGen >= gen
}

func (e *event) waitIssued(gen uint64) {
	e.mu.Lock()
	for e.issuedGen < gen {
		e.cond.Wait()
	}
	e.mu.Unlock()
}

func (e *event) pending() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issuedGen < e.reserved
}

func (e *event) Query() error {
	if e.pending() {
		return api.ErrNotReady
	}
	switch r := eventQuery(e.d.ctx, e.h); r {
	case api.Success:
		return nil
	case api.ErrNotReady:
		return api.ErrNotReady
	default:
		return check(r, "cuEventQuery")
	}
}

// Notify answers at once when the record is done; otherwise a goroutine
// sleeps on the event (every event is created blocking-sync, see
// Device.NewEvent, so the wait parks a thread instead of spinning on a CPU)
// and calls fn.
func (e *event) Notify(fn func(error)) error {
	target, err := e.hold()
	if err != nil {
		return err
	}
	if e.isIssued(target) {
		if r := eventQuery(e.d.ctx, e.h); r != api.ErrNotReady {
			e.release()
			fn(check(r, "cuEventQuery"))
			return nil
		}
	}
	go func() {
		e.waitIssued(target)
		r := eventSync(e.d.ctx, e.h)
		e.release()
		fn(check(r, "cuEventSynchronize"))
	}()
	return nil
}

func (e *event) Destroy() error {
	e.mu.Lock()
	if e.destroyed {
		e.mu.Unlock()
		return api.Errorf(api.ErrInvalidHandle, "event is destroyed")
	}
	e.destroyed = true
	now := e.refs == 0
	e.gone = now
	e.mu.Unlock()
	if now {
		return check(eventDestroy(e.d.ctx, e.h), "cuEventDestroy")
	}
	return nil
}
