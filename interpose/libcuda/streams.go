//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"sync/atomic"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

type stream struct {
	st       *interpose.Stream
	dev      int
	flags    uint32
	priority int32
	ctx      uintptr
	id       uint64
}

type event struct {
	ev    *interpose.Event
	dev   int
	flags uint32
}

var streamIDs atomic.Uint64

// The driver's special stream handles.
const (
	streamLegacy    = 0x1 // CU_STREAM_LEGACY
	streamPerThread = 0x2 // CU_STREAM_PER_THREAD
)

// streamFor resolves a CUstream: NULL, CU_STREAM_LEGACY and
// CU_STREAM_PER_THREAD name the default stream of the current context's
// device (dev); the per-thread stream is served by the same default stream,
// which orders no less than the driver's would.
func streamFor(h C.uintptr_t, dev C.int) (*interpose.Stream, int, api.Result) {
	switch uintptr(h) {
	case 0, streamLegacy, streamPerThread:
		d, r := device(dev)
		if r != api.Success {
			return nil, 0, r
		}
		return d.DefaultStream(), int(dev), api.Success
	}
	s, r := lookup[*stream](uintptr(h), kindStream)
	if r != api.Success {
		return nil, 0, r
	}
	return s.st, s.dev, api.Success
}

// Priorities the driver reports: 0 (lowest) to -5 (highest); others clamp.
const (
	leastPriority    = 0
	greatestPriority = -5
)

//export gfgo_streamCreate
func gfgo_streamCreate(ctx C.uintptr_t, dev C.int, out *C.uintptr_t, flags C.uint, priority C.int) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if out == nil || flags&^1 != 0 { // CU_STREAM_NON_BLOCKING is the only flag
		return res(api.ErrInvalidValue)
	}
	p := max(min(int32(priority), leastPriority), greatestPriority)
	st, err := d.NewStream(uint32(flags), p)
	if err != nil {
		return ret(err)
	}
	*out = C.uintptr_t(objects.add(kindStream, &stream{st: st, dev: int(dev), flags: uint32(flags), priority: p, ctx: uintptr(ctx), id: streamIDs.Add(1)}))
	return 0
}

//export gfgo_streamDestroy
func gfgo_streamDestroy(h C.uintptr_t) C.CUresult {
	s, ok := objects.remove(uintptr(h), kindStream).(*stream)
	if !ok {
		return res(api.ErrInvalidHandle)
	}
	return ret(s.st.Destroy())
}

//export gfgo_streamSynchronize
func gfgo_streamSynchronize(h C.uintptr_t, dev C.int) C.CUresult {
	if inHostFunc() {
		return res(api.ErrNotPermitted)
	}
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	return ret(st.Synchronize())
}

//export gfgo_streamQuery
func gfgo_streamQuery(h C.uintptr_t, dev C.int) C.CUresult {
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	done, err := st.Query()
	if err != nil {
		return ret(err)
	}
	if !done {
		return C.CUresult(api.ErrNotReady)
	}
	return 0
}

//export gfgo_streamWaitEvent
func gfgo_streamWaitEvent(h C.uintptr_t, dev C.int, ev C.uintptr_t) C.CUresult {
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	e, r := lookup[*event](uintptr(ev), kindEvent)
	if r != api.Success {
		return res(r)
	}
	return ret(st.WaitEvent(e.ev))
}

// What gfgo_streamInfo reports.
const (
	streamInfoPriority = 0
	streamInfoFlags    = 1
	streamInfoCtx      = 2
	streamInfoID       = 3
	streamInfoDevice   = 4
)

//export gfgo_streamInfo
func gfgo_streamInfo(h C.uintptr_t, ctx C.uintptr_t, dev C.int, what C.int, out unsafe.Pointer) C.CUresult {
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	s := &stream{dev: int(dev), ctx: uintptr(ctx)} // the default stream
	switch uintptr(h) {
	case 0, streamLegacy, streamPerThread:
		if _, r := device(dev); r != api.Success {
			return res(r)
		}
		s.id = uint64(h)
	default:
		var r api.Result
		if s, r = lookup[*stream](uintptr(h), kindStream); r != api.Success {
			return res(r)
		}
	}
	switch what {
	case streamInfoPriority:
		*(*C.int)(out) = C.int(s.priority)
	case streamInfoFlags:
		*(*C.uint)(out) = C.uint(s.flags)
	case streamInfoCtx:
		*(*C.uintptr_t)(out) = C.uintptr_t(s.ctx)
	case streamInfoID:
		*(*C.ulonglong)(out) = C.ulonglong(s.id)
	case streamInfoDevice:
		*(*C.int)(out) = C.int(s.dev)
	default:
		return res(api.ErrInvalidValue)
	}
	return 0
}

// ---- events ----

//export gfgo_eventCreate
func gfgo_eventCreate(dev C.int, out *C.uintptr_t, flags C.uint) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if out == nil || flags&^0xF != 0 {
		return res(api.ErrInvalidValue)
	}
	ev, err := d.NewEvent(uint32(flags))
	if err != nil {
		return ret(err)
	}
	*out = C.uintptr_t(objects.add(kindEvent, &event{ev: ev, dev: int(dev), flags: uint32(flags)}))
	return 0
}

//export gfgo_eventRecord
func gfgo_eventRecord(ev C.uintptr_t, h C.uintptr_t, dev C.int) C.CUresult {
	e, r := lookup[*event](uintptr(ev), kindEvent)
	if r != api.Success {
		return res(r)
	}
	if dev < 0 {
		dev = C.int(e.dev) // NULL stream without a current context
	}
	st, sdev, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	if sdev != e.dev {
		return res(api.ErrInvalidHandle)
	}
	return ret(e.ev.Record(st))
}

//export gfgo_eventSynchronize
func gfgo_eventSynchronize(ev C.uintptr_t) C.CUresult {
	if inHostFunc() {
		return res(api.ErrNotPermitted)
	}
	e, r := lookup[*event](uintptr(ev), kindEvent)
	if r != api.Success {
		return res(r)
	}
	return ret(e.ev.Synchronize())
}

//export gfgo_eventQuery
func gfgo_eventQuery(ev C.uintptr_t) C.CUresult {
	e, r := lookup[*event](uintptr(ev), kindEvent)
	if r != api.Success {
		return res(r)
	}
	done, err := e.ev.Query()
	if err != nil {
		return ret(err)
	}
	if !done {
		return C.CUresult(api.ErrNotReady)
	}
	return 0
}

//export gfgo_eventElapsedTime
func gfgo_eventElapsedTime(ms *C.float, start, end C.uintptr_t) C.CUresult {
	if ms == nil {
		return res(api.ErrInvalidValue)
	}
	s, r := lookup[*event](uintptr(start), kindEvent)
	if r != api.Success {
		return res(r)
	}
	e, r := lookup[*event](uintptr(end), kindEvent)
	if r != api.Success {
		return res(r)
	}
	t, err := interpose.ElapsedTime(s.ev, e.ev)
	if err != nil {
		return ret(err)
	}
	*ms = C.float(t)
	return 0
}

//export gfgo_eventDestroy
func gfgo_eventDestroy(ev C.uintptr_t) C.CUresult {
	e, ok := objects.remove(uintptr(ev), kindEvent).(*event)
	if !ok {
		return res(api.ErrInvalidHandle)
	}
	return ret(e.ev.Destroy())
}
