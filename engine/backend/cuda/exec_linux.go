//go:build cgo

package cuda

/*
#include "cuda_shim.h"
*/
import "C"

import (
	"encoding/binary"
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
		buf, r := allocPinned(s.d.ctx, 8)
		if r != api.Success {
			return check(r, "cuMemHostAlloc")
		}
		defer buf.free(s.d.ctx)
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
