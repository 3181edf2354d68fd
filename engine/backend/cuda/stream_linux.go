//go:build cgo

package cuda

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// directCopyMax is the largest host-to-device copy staged on the caller's
// (the shard's) thread: a memcpy of this size takes some tens of
// microseconds, about what handing it to a goroutine would cost. Larger
// copies go to the stream's worker so the shard keeps serving other streams.
const directCopyMax = 256 << 10

// stream is a CUstream plus the host-side work that must happen in its
// order: staged copies need the CPU (memcpy into pinned memory, waiting for
// a chunk's DMA, calling a sink), which must not block the shard.
//
// While no host-side work is pending, calls go straight to the driver on
// the caller's thread, which is the fast path for launches, memsets and
// small copies. Once some is pending, every later call queues behind it on
// the stream's worker goroutine, so the driver sees the stream's work in
// the order it was given. The worker exits when its queue drains.
type stream struct {
	d *Device
	h handle

	mu        sync.Mutex
	queue     []queued
	hostOps   int   // queued or running ops other than Notify's bookkeeping
	working   bool  // the worker is running; new work must queue
	err       error // first error of queued work since the last report
	destroyed bool
	gone      bool // cuStreamDestroy was called

	// cancelled is set by Cancel: the worker drops what it has not
	// started. Atomic so the worker can look before each op for free.
	cancelled atomic.Bool

	wmu     sync.Mutex
	waits   []waitItem
	waiting bool // the waiter goroutine is running
}

var (
	_ backend.Stream   = (*stream)(nil)
	_ backend.Canceler = (*stream)(nil)
)

// errCancelled is what cancelled work and a cancelled stream report.
func errCancelled() error {
	return api.Errorf(backend.ErrCancelled, "stream cancelled: its session has ended")
}

// waitItem is a pending Notify: an internal event recorded at the point of
// the Notify, the host-side error seen before that point, and the callback.
type waitItem struct {
	ev      handle
	hostErr error
	fn      func(error)
}

// idle reports whether nothing host-side is pending, so that a call may go
// straight to the driver. The engine calls a stream from its shard thread
// only, so the answer holds until the caller acts on it.
func (s *stream) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.working && !s.destroyed && !s.cancelled.Load()
}

// queued is an op waiting for the worker. A Notify's op only records an
// event and hands it to the waiter: once it is the only thing left, all
// earlier host work has reached the driver, and Query may ask the driver.
//
// After Cancel the worker calls drop instead of op: whatever the op owes
// (a done, a reference, a callback) it pays there without doing the work.
type queued struct {
	op     func() error
	drop   func() // nil: nothing is owed
	notify bool
}

// enqueue queues host-side work. Its error, if any, becomes the stream's.
func (s *stream) enqueue(op func() error) error { return s.push(queued{op: op}) }

func (s *stream) push(q queued) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.acceptingLocked(q.notify); err != nil {
		return err
	}
	s.queue = append(s.queue, q)
	if !q.notify {
		s.hostOps++
	}
	if !s.working {
		s.working = true
		go s.work()
	}
	return nil
}

// acceptingLocked says why the stream takes no more work, if it does not.
// A cancelled stream still takes Notify (notify), which the engine uses to
// learn that it has gone quiet.
func (s *stream) acceptingLocked(notify bool) error {
	switch {
	case s.destroyed:
		return api.Errorf(api.ErrInvalidHandle, "stream is destroyed")
	case s.cancelled.Load() && !notify:
		return errCancelled()
	}
	return nil
}

func (s *stream) accepting() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acceptingLocked(false)
}

// run does op now if the stream is idle (its error is the caller's: the
// work was not queued), else queues it.
func (s *stream) run(op func() error) error { return s.runOr(op, nil) }

// runOr is run with what to do instead if the op is dropped by Cancel.
func (s *stream) runOr(op func() error, drop func()) error {
	if s.idle() {
		return op()
	}
	return s.push(queued{op: op, drop: drop})
}

// Cancel drops the host-side work queued on the stream and refuses more;
// see backend.Canceler. What the driver already has it cannot take back:
// CUDA has no way to cancel a kernel or copy once queued, so a kernel the
// driver has started (or queued) runs to its end, holding the GPU as long
// as it would have; only a context reset would stop it, and that would
// take every other session's work on the GPU with it. A staged copy that
// the worker has begun stops before its next chunk.
func (s *stream) Cancel() {
	s.mu.Lock()
	s.cancelled.Store(true)
	s.mu.Unlock()
}

func (s *stream) work() {
	var batch []queued
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.working = false
			destroy := s.destroyed && !s.gone
			s.gone = s.gone || destroy
			s.mu.Unlock()
			if destroy {
				s.destroy()
			}
			return
		}
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		for i, q := range batch {
			if s.cancelled.Load() {
				if q.drop != nil {
					q.drop()
				}
			} else if err := q.op(); err != nil {
				s.fail(err)
			}
			if !q.notify {
				s.mu.Lock()
				s.hostOps--
				s.mu.Unlock()
			}
			batch[i] = queued{}
		}
	}
}

func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *stream) takeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	s.err = nil
	return err
}

func (s *stream) destroy() error {
	// The driver defers the release until the stream's work is done.
	return check(streamDestroy(s.d.ctx, s.h), "cuStreamDestroy")
}

// stager takes staging buffers for a copy of n bytes: one, waiting if all
// are busy, and a second only if the copy spans chunks and one is free now
// (see stagingPool.get for why never wait for the second).
func (s *stream) stager(n uint64) (*copyStager, error) {
	first, err := s.d.staging.get(true)
	if err != nil {
		return nil, err
	}
	c := &copyStager{ctx: s.d.ctx, s: s.h, bufs: []*stagingBuf{first}, stop: &s.cancelled}
	if n > uint64(s.d.staging.size) {
		if second, err := s.d.staging.get(false); err == nil && second != nil {
			c.bufs = append(c.bufs, second)
		}
	}
	return c, nil
}

func (s *stream) release(c *copyStager) {
	for _, b := range c.bufs {
		s.d.staging.put(b)
	}
}

func (s *stream) CopyHtoD(dst backend.DevicePtr, src []byte, done func()) error {
	// Direct only within one chunk: a second chunk through the same single
	// buffer would wait for the first one's DMA on the shard's thread.
	if len(src) <= min(directCopyMax, s.d.staging.size) && s.idle() {
		b, err := s.d.staging.get(false)
		if err != nil {
			return err
		}
		if b != nil {
			c := &copyStager{ctx: s.d.ctx, s: s.h, bufs: []*stagingBuf{b}}
			err := stageHtoD(c, dst, src)
			s.d.staging.put(b)
			if err != nil {
				return err
			}
			done()
			return nil
		}
	}
	return s.push(queued{
		op: func() error {
			defer done()
			c, err := s.stager(uint64(len(src)))
			if err != nil {
				return err
			}
			defer s.release(c)
			return stageHtoD(c, dst, src)
		},
		drop: done,
	})
}

func (s *stream) CopyDtoH(src backend.DevicePtr, n uint64, sink func(off uint64, b []byte) error) error {
	return s.enqueue(func() error {
		c, err := s.stager(n)
		if err != nil {
			return err
		}
		defer s.release(c)
		return stageDtoH(c, src, n, sink)
	})
}

func (s *stream) CopyDtoD(dst, src backend.DevicePtr, n uint64) error {
	return s.run(func() error {
		return check(memcpyDtoD(s.d.ctx, dst, src, n, s.h), "cuMemcpyDtoDAsync(%#x, %#x, %d bytes)", dst, src, n)
	})
}

func (s *stream) Memset(dst backend.DevicePtr, value uint32, elemSize int, count uint64) error {
	switch elemSize {
	case 1, 2, 4:
	default:
		return api.Errorf(api.ErrInvalidValue, "memset element size %d", elemSize)
	}
	if dst%uint64(elemSize) != 0 {
		return api.Errorf(api.ErrInvalidValue, "memset of %d-byte elements at unaligned %#x", elemSize, dst)
	}
	return s.run(func() error {
		return check(memset(s.d.ctx, dst, value, elemSize, count, s.h), "cuMemsetD%dAsync(%#x, %d elements)", 8*elemSize, dst, count)
	})
}

func (s *stream) Launch(fn backend.Function, cfg backend.LaunchConfig, params []byte, _ backend.Memory) error {
	// memory goes unused: a compiled kernel's accesses cannot be known
	// before it runs. The engine's checks on copies and memsets still
	// hold; see the package doc for what that leaves open.
	f, ok := fn.(*function)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "function of another backend")
	}
	if f.mod.isUnloaded() {
		return api.Errorf(api.ErrInvalidHandle, "function %s of an unloaded module", f.name)
	}
	if err := checkGeometry(f.name, cfg.Grid, cfg.Block); err != nil {
		return err
	}
	if err := checkParamBuffer(f.name, f.params, params); err != nil {
		return err
	}
	if s.idle() {
		return check(launch(s.d.ctx, f.h, cfg, s.h, params), "cuLaunchKernel(%s, grid %v, block %v)", f.name, cfg.Grid, cfg.Block)
	}
	kept := bytes.Clone(params) // the caller's buffer is lent for this call only
	return s.enqueue(func() error {
		return check(launch(s.d.ctx, f.h, cfg, s.h, kept), "cuLaunchKernel(%s, grid %v, block %v)", f.name, cfg.Grid, cfg.Block)
	})
}

func (s *stream) Record(ev backend.Event) error {
	e, ok := ev.(*event)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	if err := s.accepting(); err != nil {
		return err // before reserve: a refused record must not count
	}
	gen, err := e.reserve()
	if err != nil {
		return err
	}
	// Dropped, the record never reaches the driver; marking it issued
	// lets waiters on other streams go on (they then wait for the
	// event's earlier record) instead of waiting for ever.
	return s.runOr(func() error {
		r := eventRecord(s.d.ctx, e.h, s.h)
		e.issued(gen)
		return check(r, "cuEventRecord")
	}, func() { e.issued(gen) })
}

func (s *stream) Wait(ev backend.Event) error {
	e, ok := ev.(*event)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	target, err := e.hold()
	if err != nil {
		return err
	}
	op := func() error {
		// A record that is still queued on another stream's worker has
		// not reached the driver: waiting on the event now would wait on
		// the record before it.
		e.waitIssued(target)
		defer e.release()
		return check(streamWaitEvent(s.d.ctx, s.h, e.h), "cuStreamWaitEvent")
	}
	if e.isIssued(target) && s.idle() {
		return op()
	}
	if err := s.push(queued{op: op, drop: e.release}); err != nil {
		e.release()
		return err
	}
	return nil
}

// Notify records an internal event at this point of the stream and hands
// it to the stream's waiter, which sleeps on it and then calls fn. The
// shard never blocks; one waiter per stream keeps a stream's notifications
// in order without a slow stream delaying another's.
func (s *stream) Notify(fn func(error)) error {
	if s.idle() {
		return s.notify(fn)
	}
	queuedNotify := func() error {
		// Queued, the error has no caller to go to but fn.
		if err := s.notify(fn); err != nil {
			fn(err)
		}
		return nil
	}
	// Dropped, it still goes through the waiter, so that fn comes after
	// the callbacks of earlier Notifies; notify gives it the cancellation.
	return s.push(queued{notify: true, op: queuedNotify, drop: func() { queuedNotify() }})
}

func (s *stream) notify(fn func(error)) error {
	ev, err := s.d.events.get()
	if err != nil {
		return err
	}
	if err := check(eventRecord(s.d.ctx, ev, s.h), "cuEventRecord"); err != nil {
		s.d.events.put(ev)
		return err
	}
	hostErr := s.takeErr()
	if hostErr == nil && s.cancelled.Load() {
		hostErr = errCancelled()
	}
	s.wmu.Lock()
	s.waits = append(s.waits, waitItem{ev: ev, hostErr: hostErr, fn: fn})
	if !s.waiting {
		s.waiting = true
		go s.waiter()
	}
	s.wmu.Unlock()
	return nil
}

func (s *stream) waiter() {
	for {
		s.wmu.Lock()
		if len(s.waits) == 0 {
			s.waiting = false
			s.wmu.Unlock()
			return
		}
		it := s.waits[0]
		s.waits[0] = waitItem{}
		s.waits = s.waits[1:]
		s.wmu.Unlock()

		r := eventSync(s.d.ctx, it.ev)
		err := it.hostErr
		if err == nil {
			err = check(r, "stream work")
		}
		if r == api.Success {
			s.d.events.put(it.ev)
		} else {
			eventDestroy(s.d.ctx, it.ev) // not trusted for reuse
		}
		it.fn(err)
	}
}

func (s *stream) Query() error {
	s.mu.Lock()
	pending := s.hostOps > 0
	s.mu.Unlock()
	if pending {
		return api.ErrNotReady
	}
	switch r := streamQuery(s.d.ctx, s.h); r {
	case api.Success:
		return s.takeErr()
	case api.ErrNotReady:
		return api.ErrNotReady
	default:
		if err := s.takeErr(); err != nil {
			return err
		}
		return check(r, "stream work")
	}
}

func (s *stream) Destroy() error {
	s.mu.Lock()
	if s.destroyed {
		s.mu.Unlock()
		return api.Errorf(api.ErrInvalidHandle, "stream is destroyed")
	}
	s.destroyed = true
	now := !s.working
	s.gone = now
	s.mu.Unlock()
	if now {
		return s.destroy()
	}
	return nil // the worker destroys it when its queue drains
}
