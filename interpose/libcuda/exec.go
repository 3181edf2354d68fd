//go:build linux

package main

/*
#include "gf.h"

// Host functions are the application's C functions, called from Go on the
// session's callback goroutine.
// gf_in_host_fn marks the thread while it runs one: a synchronisation
// from there would wait for the very function that asks.
typedef void (*gf_host_fn)(void *);
typedef void (*gf_stream_cb)(CUstream, CUresult, void *);
typedef size_t (*gf_b2smem)(int);
extern __thread int gf_in_host_fn;
static inline void gf_call_host_fn(void *fn, void *data) {
	gf_in_host_fn = 1;
	((gf_host_fn)fn)(data);
	gf_in_host_fn = 0;
}
static inline void gf_call_stream_cb(void *fn, uintptr_t s, CUresult status, void *data) {
	gf_in_host_fn = 1;
	((gf_stream_cb)fn)((CUstream)s, status, data);
	gf_in_host_fn = 0;
}
static inline int gf_host_fn_running(void) { return gf_in_host_fn; }
static inline size_t gf_call_b2smem(void *fn, int block) { return ((gf_b2smem)fn)(block); }
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"sync"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// ---- stream capture and graphs ----

// stream capture statuses, as CUstreamCaptureStatus.
const (
	captureNone        = 0
	captureActive      = 1
	captureInvalidated = 2
)

type graph struct {
	g   *interpose.Graph
	dev int
}

type graphExec struct {
	ge  *interpose.GraphExec
	dev int
}

// capturable resolves a stream that may capture: one the application
// created (the NULL and special streams cannot).
func capturable(h C.uintptr_t) (*stream, api.Result) {
	switch uintptr(h) {
	case 0, streamLegacy, streamPerThread:
		return nil, api.ErrStreamCaptureUnsupp
	}
	return lookup[*stream](uintptr(h), kindStream)
}

//export gfgo_beginCapture
func gfgo_beginCapture(h C.uintptr_t, mode C.int) C.CUresult {
	if mode < 0 || mode > 2 { // GLOBAL, THREAD_LOCAL, RELAXED
		return res(api.ErrInvalidValue)
	}
	s, r := capturable(h)
	if r != api.Success {
		return res(r)
	}
	return ret(s.st.BeginCapture())
}

//export gfgo_endCapture
func gfgo_endCapture(h C.uintptr_t, out *C.uintptr_t) C.CUresult {
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	s, r := capturable(h)
	if r != api.Success {
		return res(r)
	}
	g, err := s.st.EndCapture()
	if err != nil {
		*out = 0
		return ret(err)
	}
	*out = C.uintptr_t(objects.add(kindGraph, &graph{g: g, dev: s.dev}))
	return 0
}

// gfgo_captureInfo answers cuStreamIsCapturing and cuStreamGetCaptureInfo:
// the status, and the capture's id when id is not NULL.
//
//export gfgo_captureInfo
func gfgo_captureInfo(h C.uintptr_t, status *C.int, id *C.cuuint64_t) C.CUresult {
	if status == nil {
		return res(api.ErrInvalidValue)
	}
	*status = captureNone
	var cid uint64
	switch uintptr(h) {
	case 0, streamLegacy, streamPerThread:
	default:
		s, r := lookup[*stream](uintptr(h), kindStream)
		if r != api.Success {
			return res(r)
		}
		n, active, invalidated := s.st.Capturing()
		switch {
		case active:
			*status, cid = captureActive, n
		case invalidated:
			*status, cid = captureInvalidated, n
		}
	}
	if id != nil {
		*id = C.cuuint64_t(cid)
	}
	return 0
}

//export gfgo_graphInstantiate
func gfgo_graphInstantiate(out *C.uintptr_t, h C.uintptr_t, flags C.ulonglong) C.CUresult {
	if out == nil || flags&^0xF != 0 { // CUDA_GRAPH_INSTANTIATE_FLAG_*: hints here
		return res(api.ErrInvalidValue)
	}
	g, r := lookup[*graph](uintptr(h), kindGraph)
	if r != api.Success {
		return res(r)
	}
	ge, err := g.g.Instantiate()
	if err != nil {
		return ret(err)
	}
	*out = C.uintptr_t(objects.add(kindExec, &graphExec{ge: ge, dev: g.dev}))
	return 0
}

//export gfgo_graphLaunch
func gfgo_graphLaunch(h C.uintptr_t, sh C.uintptr_t, dev C.int) C.CUresult {
	ge, r := lookup[*graphExec](uintptr(h), kindExec)
	if r != api.Success {
		return res(r)
	}
	if dev < 0 {
		dev = C.int(ge.dev)
	}
	st, sdev, r := streamFor(sh, dev)
	if r != api.Success {
		return res(r)
	}
	if sdev != ge.dev {
		return res(api.ErrInvalidValue)
	}
	return ret(ge.ge.Launch(st))
}

//export gfgo_graphUpload
func gfgo_graphUpload(h C.uintptr_t) C.CUresult {
	_, r := lookup[*graphExec](uintptr(h), kindExec)
	return res(r)
}

//export gfgo_graphDestroy
func gfgo_graphDestroy(h C.uintptr_t, exec C.int) C.CUresult {
	if exec != 0 {
		ge, ok := objects.remove(uintptr(h), kindExec).(*graphExec)
		if !ok {
			return res(api.ErrInvalidValue)
		}
		return ret(ge.ge.Destroy())
	}
	if _, ok := objects.remove(uintptr(h), kindGraph).(*graph); !ok {
		return res(api.ErrInvalidValue)
	}
	return 0 // a captured graph lives in this process only
}

// ---- host functions ----

// gfgo_hostFunc queues a host function (cuLaunchHostFunc, cb == 0) or a
// stream callback (cuStreamAddCallback, cb == 1) on a stream.
//
//export gfgo_hostFunc
func gfgo_hostFunc(h C.uintptr_t, dev C.int, fn unsafe.Pointer, data unsafe.Pointer, cb C.int, flags C.uint) C.CUresult {
	if fn == nil || flags != 0 {
		return res(api.ErrInvalidValue)
	}
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	// fn and data point into C memory, which Go may keep.
	return ret(st.LaunchHostFunc(func(err error) {
		if cb != 0 {
			C.gf_call_stream_cb(fn, h, C.CUresult(api.ResultOf(err)), data)
		} else {
			C.gf_call_host_fn(fn, data)
		}
	}))
}

// inHostFunc reports whether the calling C thread is running a host
// function, which must not synchronise: the stream it would wait for waits
// for it. The driver forbids CUDA calls there; a synchronisation gets
// CUDA_ERROR_NOT_PERMITTED here rather than a deadlock. (A cgo callback
// runs on the calling C thread, so the C thread-local answers.)
func inHostFunc() bool { return C.gf_host_fn_running() != 0 }

// ---- stream memory operations ----

// gfgo_streamValue queues cuStreamWaitValue (write == 0) or
// cuStreamWriteValue (write == 1) on a size-byte word.
//
//export gfgo_streamValue
func gfgo_streamValue(h C.uintptr_t, dev C.int, addr C.CUdeviceptr, value C.cuuint64_t, size C.int, flags C.uint, write C.int) C.CUresult {
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	return ret(streamValue(st, uint64(addr), uint64(value), int(size), uint32(flags), write != 0))
}

func streamValue(st *interpose.Stream, addr, value uint64, size int, flags uint32, write bool) error {
	if write {
		if flags&^1 != 0 { // CU_STREAM_WRITE_VALUE_NO_MEMORY_BARRIER
			return api.Errorf(api.ErrInvalidValue, "stream write flags %#x", flags)
		}
		return st.WriteValue(interpose.DevicePtr(addr), value, size)
	}
	return st.WaitValue(interpose.DevicePtr(addr), value, size, flags)
}

// CUstreamBatchMemOpType values.
const (
	memOpWait32  = 1
	memOpWrite32 = 2
	memOpFlush   = 3
	memOpWait64  = 4
	memOpWrite64 = 5
	memOpBarrier = 6
)

// batchOpSize is sizeof(CUstreamBatchMemOpParams): a union padded to six
// 64-bit words.
const batchOpSize = 48

//export gfgo_batchMemOp
func gfgo_batchMemOp(h C.uintptr_t, dev C.int, count C.uint, ops unsafe.Pointer, flags C.uint) C.CUresult {
	if flags != 0 || count > 256 || count > 0 && ops == nil {
		return res(api.ErrInvalidValue)
	}
	st, _, r := streamFor(h, dev)
	if r != api.Success {
		return res(r)
	}
	all := unsafe.Slice((*byte)(ops), int(count)*batchOpSize)
	le := binary.LittleEndian
	for i := range int(count) {
		op := all[i*batchOpSize : (i+1)*batchOpSize]
		addr, opFlags := le.Uint64(op[8:]), le.Uint32(op[24:])
		var err error
		switch le.Uint32(op) {
		case memOpWait32:
			err = streamValue(st, addr, uint64(le.Uint32(op[16:])), 4, opFlags, false)
		case memOpWrite32:
			err = streamValue(st, addr, uint64(le.Uint32(op[16:])), 4, opFlags, true)
		case memOpWait64:
			err = streamValue(st, addr, le.Uint64(op[16:]), 8, opFlags, false)
		case memOpWrite64:
			err = streamValue(st, addr, le.Uint64(op[16:]), 8, opFlags, true)
		case memOpFlush, memOpBarrier:
			// A stream's operations run in order and see each other's
			// writes: there is nothing to flush or fence.
		default:
			err = api.Errorf(api.ErrInvalidValue, "batch memory operation %d", le.Uint32(op))
		}
		if err != nil {
			return ret(err)
		}
	}
	return 0
}

// ---- occupancy ----

// CUfunction_attribute values of a kernel's resources.
const (
	funcAttrSharedSizeBytes = 1
	funcAttrConstSizeBytes  = 2
	funcAttrLocalSizeBytes  = 3
)

// noFuncAttrs marks the devices (by ordinal) whose backend cannot report
// a function's resources, so that each asks once, not once per function.
var noFuncAttrs sync.Map

// deviceAttrs are the function's attributes as its device reports them,
// asked once (one round trip per function, none for a backend known not
// to say); nil where the device cannot say.
func (fn *function) deviceAttrs() []int32 {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.fetched {
		return fn.devAttrs
	}
	fn.fetched = true
	if _, none := noFuncAttrs.Load(fn.mod.dev); none {
		return nil
	}
	vals, err := fn.f.Attributes()
	if errors.Is(err, api.ErrNotSupported) {
		noFuncAttrs.Store(fn.mod.dev, true)
	}
	fn.devAttrs = vals // nil on failure: the defaults stand
	return vals
}

// Device attributes occupancy reads that the snapshot may lack (zero):
// the limits of current NVIDIA GPUs stand in for them.
const (
	attrMaxSharedPerSM = 81
	attrMaxRegsPerSM   = 82
	attrMaxBlocksPerSM = 106
)

// occupancyOf gathers what occupancy is computed from: the limits of a
// multiprocessor of the function's device (its attribute snapshot, with
// current GPUs' figures where the snapshot lacks one) and what the
// function's blocks take (its attributes). No round trip, beyond asking a
// function's attributes once (see deviceAttrs).
func occupancyOf(fn *function) (smLimits, kernelUse, int, api.Result) {
	d, r := device(C.int(fn.mod.dev))
	if r != api.Success {
		return smLimits{}, kernelUse{}, 0, r
	}
	attr := func(i int, def int32) int {
		if v, _ := d.Attribute(i); v > 0 {
			return int(v)
		}
		return int(def)
	}
	fattr := func(i int) int {
		v, _ := fn.attribute(i)
		return int(v)
	}
	l := smLimits{
		warp:    attr(api.AttrWarpSize, 32),
		threads: attr(api.AttrMaxThreadsPerMultiprocessor, 2048),
		blocks:  attr(attrMaxBlocksPerSM, 32),
		regs:    attr(attrMaxRegsPerSM, 65536),
		smem:    attr(attrMaxSharedPerSM, int32(attr(api.AttrMaxSharedMemoryPerBlock, 48<<10))),
	}
	k := kernelUse{
		maxThreads: fattr(funcAttrMaxThreadsPerBlock),
		regs:       fattr(funcAttrNumRegs),
		staticSmem: fattr(funcAttrSharedSizeBytes),
		maxDynSmem: fattr(funcAttrMaxDynamicSharedBytes),
	}
	return l, k, attr(api.AttrMultiprocessorCount, 1), api.Success
}

//export gfgo_occupancyBlocks
func gfgo_occupancyBlocks(out *C.int, fh C.uintptr_t, blockSize C.int, dynSmem C.size_t, flags C.uint) C.CUresult {
	if out == nil || flags&^1 != 0 { // CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE
		return res(api.ErrInvalidValue)
	}
	fn, r := lookup[*function](uintptr(fh), kindFunction)
	if r != api.Success {
		return res(r)
	}
	if blockSize <= 0 {
		return res(api.ErrInvalidValue)
	}
	l, k, _, r := occupancyOf(fn)
	if r != api.Success {
		return res(r)
	}
	*out = C.int(blocksPerSM(l, k, int(blockSize), uint64(dynSmem)))
	return 0
}

// gfgo_occupancyBlockSize answers cuOccupancyMaxPotentialBlockSize: the
// block size that keeps the most threads resident, and the grid that
// fills the device with it. b2smem, when not NULL, gives the dynamic
// shared memory of each block size.
//
//export gfgo_occupancyBlockSize
func gfgo_occupancyBlockSize(minGrid, blockOut *C.int, fh C.uintptr_t, b2smem unsafe.Pointer, dynSmem C.size_t, limit C.int, flags C.uint) C.CUresult {
	if minGrid == nil || blockOut == nil || flags&^1 != 0 || limit < 0 {
		return res(api.ErrInvalidValue)
	}
	fn, r := lookup[*function](uintptr(fh), kindFunction)
	if r != api.Success {
		return res(r)
	}
	l, k, sms, r := occupancyOf(fn)
	if r != api.Success {
		return res(r)
	}
	block, blocks := bestBlockSize(l, k, int(limit), func(bs int) uint64 {
		if b2smem != nil {
			return uint64(C.gf_call_b2smem(b2smem, C.int(bs)))
		}
		return uint64(dynSmem)
	})
	*blockOut = C.int(block)
	*minGrid = C.int(blocks * sms)
	return 0
}
