package host

import (
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// stream is a worker goroutine that runs queued work in order. Work is
// checked when it is queued (addresses, arguments) and only runs later, so
// an error returned by a queuing method means nothing was queued.
type stream struct {
	dev  *Device
	wake chan struct{} // one slot: "the queue is not empty"
	stop stopper       // set by Cancel; running kernels poll it

	mu        sync.Mutex
	queue     []op
	pending   int   // queued or running
	err       error // first error since the last Notify or Query reported one
	destroyed bool
	cancelled bool
}

// op is one piece of queued work. After Cancel the worker calls drop
// instead of run: whatever the op owes its caller (a done, a callback) it
// pays there, without doing the work.
type op struct {
	run  func() error
	drop func() // nil: nothing is owed
}

// stopper is a stream's cancellation, for work that is already running:
// kernels poll stopped between chunks of blocks (an atomic load, nothing
// more), and what sleeps selects on done.
type stopper struct {
	flag atomic.Bool
	done chan struct{}
	once sync.Once
}

func (s *stopper) stopped() bool { return s != nil && s.flag.Load() }

func (s *stopper) stop() {
	s.once.Do(func() {
		s.flag.Store(true)
		close(s.done)
	})
}

// errCancelled is what cancelled work and a cancelled stream report.
func errCancelled() error {
	return api.Errorf(backend.ErrCancelled, "stream cancelled: its session has ended")
}

var (
	_ backend.Stream   = (*stream)(nil)
	_ backend.Canceler = (*stream)(nil)
)

func newStream(d *Device) *stream {
	s := &stream{dev: d, wake: make(chan struct{}, 1), stop: stopper{done: make(chan struct{})}}
	go s.run()
	return s
}

func (s *stream) enqueue(run func() error) error { return s.push(op{run: run}, false) }

// push queues o. A cancelled stream takes only what afterCancel allows
// (Notify), which then runs as dropped.
func (s *stream) push(o op, afterCancel bool) error {
	s.mu.Lock()
	switch {
	case s.destroyed:
		s.mu.Unlock()
		return api.Errorf(api.ErrInvalidHandle, "stream is destroyed")
	case s.cancelled && !afterCancel:
		s.mu.Unlock()
		return errCancelled()
	}
	s.queue = append(s.queue, o)
	s.pending++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

func (s *stream) run() {
	var batch []op
	for {
		s.mu.Lock()
		for len(s.queue) == 0 {
			if s.destroyed {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		for i, o := range batch {
			var err error
			if s.stop.stopped() {
				if o.drop != nil {
					o.drop()
				}
			} else {
				err = o.run()
			}
			batch[i] = op{}
			s.mu.Lock()
			if err != nil && s.err == nil {
				s.err = err
			}
			s.pending--
			s.mu.Unlock()
		}
	}
}

// Cancel drops the stream's queued work and stops its running kernel at
// the kernel's next chunk of blocks; see backend.Canceler.
func (s *stream) Cancel() {
	s.mu.Lock()
	s.cancelled = true
	s.mu.Unlock()
	s.stop.stop()
}

func (s *stream) takeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	s.err = nil
	return err
}

func (s *stream) CopyHtoD(dst backend.DevicePtr, src []byte, done func()) error {
	b, err := s.dev.bytes(dst, uint64(len(src)))
	if err != nil {
		return err
	}
	return s.push(op{
		run: func() error {
			copy(b, src)
			done()
			return nil
		},
		drop: done,
	}, false)
}

// CopyDtoH hands the device bytes to sink in one piece: the arena is host
// memory, so there is nothing to stage, and the transport can write it out
// directly. The stream waits for sink, which keeps the copy in order with
// later work that may overwrite the range.
func (s *stream) CopyDtoH(src backend.DevicePtr, n uint64, sink func(off uint64, b []byte) error) error {
	b, err := s.dev.bytes(src, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error { return sink(0, b) })
}

func (s *stream) CopyDtoD(dst, src backend.DevicePtr, n uint64) error {
	d, err := s.dev.bytes(dst, n)
	if err != nil {
		return err
	}
	from, err := s.dev.bytes(src, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		copy(d, from)
		return nil
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
	n := count * uint64(elemSize)
	if n/uint64(elemSize) != count {
		return api.Errorf(api.ErrInvalidValue, "memset of %d elements overflows", count)
	}
	b, err := s.dev.bytes(dst, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		fill(b, value, elemSize)
		return nil
	})
}

// fill writes the element pattern once, then doubles it with copy, which is
// memmove-fast for any length.
func fill(b []byte, value uint32, elemSize int) {
	if len(b) == 0 {
		return
	}
	for i := 0; i < elemSize && i < len(b); i++ {
		b[i] = byte(value >> (8 * i))
	}
	for n := elemSize; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

func (s *stream) Launch(fn backend.Function, cfg backend.LaunchConfig, params []byte, memory backend.Memory) error {
	f, ok := fn.(*function)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "function of another backend")
	}
	if f.mod.unloaded() {
		return api.Errorf(api.ErrInvalidHandle, "function %s of an unloaded module", f.name)
	}
	if err := checkGeometry(cfg); err != nil {
		return err
	}
	if n := len(f.params); n > 0 {
		if last := f.params[n-1]; uint64(len(params)) < uint64(last.Offset)+uint64(last.Size) {
			return api.Errorf(api.ErrInvalidValue, "%s: %d bytes of parameters, the entry needs %d", f.name, len(params), last.Offset+last.Size)
		}
	}
	run, err := f.kernel.prepare(s.dev, gridOf(cfg), newArgs(f, params), memory)
	if err != nil {
		return err
	}
	return s.enqueue(func() error { return run(&s.stop) })
}

func checkGeometry(cfg backend.LaunchConfig) error {
	for _, v := range cfg.Grid {
		if v == 0 {
			return api.Errorf(api.ErrInvalidValue, "grid %v has a zero dimension", cfg.Grid)
		}
	}
	b := cfg.Block
	if b[0] == 0 || b[1] == 0 || b[2] == 0 || b[0] > 1024 || b[1] > 1024 || b[2] > 64 ||
		uint64(b[0])*uint64(b[1])*uint64(b[2]) > 1024 {
		return api.Errorf(api.ErrInvalidValue, "block %v is outside the device's limits (1024 threads)", b)
	}
	if cfg.Grid[1] > 65535 || cfg.Grid[2] > 65535 {
		return api.Errorf(api.ErrInvalidValue, "grid %v is outside the device's limits", cfg.Grid)
	}
	if cfg.SharedMem > 48<<10 {
		return api.Errorf(api.ErrInvalidValue, "%d bytes of dynamic shared memory exceeds 48 KiB", cfg.SharedMem)
	}
	return nil
}

func (s *stream) Record(ev backend.Event) error {
	e, ok := ev.(*event)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	if err := s.accepting(); err != nil {
		return err
	}
	gen := e.record()
	complete := func() { e.complete(gen) }
	return s.push(op{
		run:  func() error { complete(); return nil },
		drop: complete,
	}, false)
}

func (s *stream) Wait(ev backend.Event) error {
	e, ok := ev.(*event)
	if !ok {
		return api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	gen := e.target()
	return s.enqueue(func() error {
		done := make(chan struct{})
		e.notifyAt(gen, func(error) { close(done) })
		select {
		case <-done:
		case <-s.stop.done: // the wait was this stream's, and it is over
		}
		return nil
	})
}

// Notify is accepted after Cancel too: the engine learns from it that a
// cancelled stream has dropped everything.
func (s *stream) Notify(fn func(error)) error {
	return s.push(op{
		run: func() error {
			fn(s.takeErr())
			return nil
		},
		drop: func() {
			err := s.takeErr()
			if err == nil {
				err = errCancelled()
			}
			fn(err)
		},
	}, true)
}

// accepting fails as push would, for calls with bookkeeping to do before
// they push.
func (s *stream) accepting() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.destroyed:
		return api.Errorf(api.ErrInvalidHandle, "stream is destroyed")
	case s.cancelled:
		return errCancelled()
	}
	return nil
}

func (s *stream) Query() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending > 0 {
		return api.ErrNotReady
	}
	err := s.err
	s.err = nil
	return err
}

// Idle reports whether nothing is queued or running and no error waits.
func (s *stream) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending == 0 && s.err == nil
}

var _ backend.Idler = (*stream)(nil)

func (s *stream) Destroy() error {
	s.mu.Lock()
	s.destroyed = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}
