//go:build cgo

package cuda

/*
#include "cuda_shim.h"
*/
import "C"

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// The execution capabilities of a stream (backend.Holder,
// backend.ValueStream). Both hold the stream's later work on its worker,
// host-side, rather than in the driver: a stream held in the driver (a
// cuStreamWaitValue nobody satisfies, a host callback that blocks) cannot
// be let go when its session ends, and a blocked driver callback thread
// would delay every tenant's callbacks. On the worker, Cancel ends the wait,
// and work queued before the hold has reached the driver in order.

var (
	_ backend.Holder      = (*stream)(nil)
	_ backend.ValueStream = (*stream)(nil)
)

// holdPoll is how often a held worker looks whether its stream was
// cancelled; the release itself wakes it at once.
const holdPoll = 10 * time.Millisecond

func (s *stream) Hold(release <-chan struct{}) error {
	return s.push(queued{op: func() error {
		t := time.NewTicker(holdPoll)
		defer t.Stop()
		for !s.cancelled.Load() {
			select {
			case <-release:
				return nil
			case <-t.C:
			}
		}
		return nil
	}})
}

func (s *stream) WriteValue(ptr backend.DevicePtr, value uint64, size int) error {
	if err := backend.CheckValueOp(ptr, size, 0, false); err != nil {
		return err
	}
	return s.run(func() error {
		r := streamWriteValue(s.d.ctx, s.h, ptr, value, size)
		if r == missing {
			return api.Errorf(api.ErrNotSupported, "the driver has no cuStreamWriteValue%d", 8*size)
		}
		return check(r, "cuStreamWriteValue%d(%#x)", 8*size, ptr)
	})
}

// Polls of a waited word: from quick to a millisecond apart.
const (
	firstValuePoll = 20 * time.Microsecond
	maxValuePoll   = time.Millisecond
)

// WaitValue waits on the worker: it reads the word on the stream itself,
// so each look comes after the stream's earlier work, as the driver's
// wait would begin, and later work reaches the driver only once the
// comparison holds.
func (s *stream) WaitValue(ptr backend.DevicePtr, value uint64, size int, flags uint32) error {
	if err := backend.CheckValueOp(ptr, size, flags, true); err != nil {
		return err
	}
	cmp := flags &^ api.WaitFlush
	return s.push(queued{op: func() error {
		buf, err := valueWords.get(s.d)
		if err != nil {
			return err
		}
		defer valueWords.put(s.d, buf)
		pause := firstValuePoll
		for !s.cancelled.Load() {
			if err := s.readWord(buf, ptr, size); err != nil {
				return err
			}
			var v uint64
			if size == 4 {
				v = uint64(binary.LittleEndian.Uint32(buf.b))
			} else {
				v = binary.LittleEndian.Uint64(buf.b)
			}
			if api.WaitSatisfied(cmp, v, value, size) {
				return nil
			}
			time.Sleep(pause)
			pause = min(2*pause, maxValuePoll)
		}
		return nil
	}})
}

// wordPool keeps the pinned words that value waits read into, per
// device: cuMemHostAlloc costs far more than a wait's look. Close frees a
// device's (drop).
type wordPool struct {
	mu   sync.Mutex
	free map[*Device][]*pinned
}

// maxFreeWords bounds the words kept per device: more are freed.
const maxFreeWords = 64

var valueWords = wordPool{free: map[*Device][]*pinned{}}

func (p *wordPool) get(d *Device) (*pinned, error) {
	p.mu.Lock()
	if l := p.free[d]; len(l) > 0 {
		w := l[len(l)-1]
		p.free[d] = l[:len(l)-1]
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	w, r := allocPinned(d.ctx, 8)
	if r != api.Success {
		return nil, check(r, "cuMemHostAlloc")
	}
	return w, nil
}

func (p *wordPool) put(d *Device, w *pinned) {
	p.mu.Lock()
	if len(p.free[d]) < maxFreeWords {
		p.free[d] = append(p.free[d], w)
		w = nil
	}
	p.mu.Unlock()
	if w != nil {
		w.free(d.ctx)
	}
}

// drop frees d's words; a wait still running frees its own at put.
func (p *wordPool) drop(d *Device) {
	p.mu.Lock()
	l := p.free[d]
	delete(p.free, d)
	p.mu.Unlock()
	for _, w := range l {
		w.free(d.ctx)
	}
}

// readWord copies the word at ptr into buf on the stream and waits for it.
func (s *stream) readWord(buf *pinned, ptr backend.DevicePtr, size int) error {
	if err := check(buf.dtoh(s.d.ctx, ptr, size, s.h), "cuMemcpyDtoHAsync(%#x)", ptr); err != nil {
		return err
	}
	ev, err := s.d.events.get()
	if err != nil {
		return err
	}
	if err := check(eventRecord(s.d.ctx, ev, s.h), "cuEventRecord"); err != nil {
		s.d.events.put(ev)
		return err
	}
	r := eventSync(s.d.ctx, ev)
	s.d.events.put(ev)
	return check(r, "stream work before a value wait")
}

var _ backend.Linker = (*Device)(nil)

// Link links the inputs with the driver's own linker, on the caller's
// thread (the shim makes the device's context current for the call).
func (d *Device) Link(inputs []backend.LinkInput) ([]byte, error) {
	if len(inputs) == 0 {
		return nil, api.Errorf(api.ErrInvalidValue, "a link of no inputs")
	}
	types := make([]C.int, len(inputs))
	sizes := make([]C.size_t, len(inputs))
	var data, names []byte
	for i, in := range inputs {
		types[i], sizes[i] = C.int(in.Type), C.size_t(len(in.Data))
		data = append(data, in.Data...)
		names = append(append(names, in.Name...), 0)
	}
	image, log, r := link(d.ctx, types, data, sizes, names)
	switch {
	case r == missing:
		return nil, api.Errorf(api.ErrNotSupported, "the driver has no cuLink*")
	case r != api.Success:
		return nil, check(r, "cuLinkComplete: %s", log)
	}
	return image, nil
}

var _ backend.FunctionAttributer = (*function)(nil)

// Attributes are what the driver says of the function's resources.
func (f *function) Attributes() ([]int32, error) {
	vals, r := funcAttributes(f.mod.d.ctx, f.h, api.FuncAttrCount)
	if r == missing {
		return nil, api.Errorf(api.ErrNotSupported, "the driver has no cuFuncGetAttribute")
	}
	return vals, check(r, "cuFuncGetAttribute(%s)", f.name)
}
