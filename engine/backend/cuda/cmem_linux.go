//go:build cgo

package cuda

// This file is the package's only use of unsafe. Two kinds of memory cross
// to the driver here:
//
//   - Go byte slices (a module image, a launch's parameter buffer), passed
//     by address for the length of one cgo call. cgo allows it: the bytes
//     hold no Go pointers, and the shim copies them into C memory before the
//     driver sees them, so nothing keeps the Go address after the call.
//   - Pinned staging buffers that the driver allocated (cuMemHostAlloc).
//     They are viewed as []byte so Go can copy in and out of them. The view
//     is exactly the allocation's length, and it is dropped (pinned.b = nil)
//     before the memory is freed, which happens only once the buffer's last
//     DMA has completed (see staging_linux.go).
//   - Host memory the engine registers with the driver (a client's pinned
//     region, hostreg_linux.go): a mapping outside the Go heap, which the
//     driver reads and writes by DMA after the call that queues a copy
//     returns. The engine keeps it mapped and registered until the stream
//     has passed every copy that names it.

/*
#include <stdlib.h>
#include "cuda_shim.h"
*/
import "C"

import (
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// goBytes is b's address for one cgo call, or nil for an empty slice.
func goBytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

func moduleLoad(ctx handle, image []byte) (handle, api.Result) {
	var h C.gf_handle
	r := C.gf_module_load(C.gf_handle(ctx), goBytes(image), C.size_t(len(image)), &h)
	return handle(h), res(r)
}

func launch(ctx, fn handle, cfg backend.LaunchConfig, s handle, params []byte) api.Result {
	return res(C.gf_launch(C.gf_handle(ctx), C.gf_handle(fn),
		C.uint(cfg.Grid[0]), C.uint(cfg.Grid[1]), C.uint(cfg.Grid[2]),
		C.uint(cfg.Block[0]), C.uint(cfg.Block[1]), C.uint(cfg.Block[2]),
		C.uint(cfg.SharedMem), C.gf_handle(s), goBytes(params), C.size_t(len(params))))
}

// pinned is page-locked host memory from cuMemHostAlloc.
type pinned struct {
	p unsafe.Pointer
	b []byte
}

func allocPinned(ctx handle, n int) (*pinned, api.Result) {
	var p unsafe.Pointer
	if r := res(C.gf_host_alloc(C.gf_handle(ctx), C.size_t(n), &p)); r != api.Success {
		return nil, r
	}
	return &pinned{p: p, b: unsafe.Slice((*byte)(p), n)}, api.Success
}

func (m *pinned) free(ctx handle) api.Result {
	m.b = nil
	return res(C.gf_host_free(C.gf_handle(ctx), m.p))
}

// htod queues a copy of the first n bytes of m to dst on stream s.
func (m *pinned) htod(ctx handle, dst uint64, n int, s handle) api.Result {
	return res(C.gf_memcpy_htod(C.gf_handle(ctx), C.uint64_t(dst), m.p, C.size_t(n), C.gf_handle(s)))
}

// dtoh queues a copy of n bytes at src into the start of m on stream s.
func (m *pinned) dtoh(ctx handle, src uint64, n int, s handle) api.Result {
	return res(C.gf_memcpy_dtoh(C.gf_handle(ctx), m.p, C.uint64_t(src), C.size_t(n), C.gf_handle(s)))
}

// link links inputs with the driver's linker (gf_link): the inputs' bytes
// cross as one Go buffer for the call, the image comes back in C memory,
// copied out and freed here; log is the linker's error log.
func link(ctx handle, types []C.int, data []byte, sizes []C.size_t, names []byte) (image []byte, log string, r api.Result) {
	var out unsafe.Pointer
	var n C.size_t
	var logBuf [1024]C.char
	rc := C.gf_link(C.gf_handle(ctx), C.int(len(types)), unsafe.SliceData(types), goBytes(data), unsafe.SliceData(sizes),
		(*C.char)(goBytes(names)), &out, &n, &logBuf[0], C.size_t(len(logBuf)))
	log = C.GoString(&logBuf[0])
	if rc == C.GF_MISSING {
		return nil, log, missing
	}
	if r = res(rc); r != api.Success {
		return nil, log, r
	}
	defer C.free(out)
	return C.GoBytes(out, C.int(n)), log, api.Success
}

// funcAttributes reads fn's CUfunction_attribute values 0 to n-1, -1 for
// any the driver refuses; missing when the driver lacks cuFuncGetAttribute.
func funcAttributes(ctx, fn handle, n int) ([]int32, api.Result) {
	vals := make([]C.int, n)
	rc := C.gf_func_attributes(C.gf_handle(ctx), C.gf_handle(fn), C.int(n), &vals[0])
	if rc == C.GF_MISSING {
		return nil, missing
	}
	out := make([]int32, n)
	for i, v := range vals {
		out[i] = int32(v)
	}
	return out, res(rc)
}

// hostRegister registers b, mapped outside the Go heap, for every context.
func hostRegister(ctx handle, b []byte) api.Result {
	return res(C.gf_host_register(C.gf_handle(ctx), goBytes(b), C.size_t(len(b))))
}

// hostUnregister undoes hostRegister.
func hostUnregister(ctx handle, b []byte) api.Result {
	return res(C.gf_host_unregister(C.gf_handle(ctx), goBytes(b)))
}

// memcpyHtoDHost queues a copy from registered host memory to dst on s:
// the driver reads src when the stream reaches the copy.
func memcpyHtoDHost(ctx handle, dst uint64, src []byte, s handle) api.Result {
	return res(C.gf_memcpy_htod(C.gf_handle(ctx), C.uint64_t(dst), goBytes(src), C.size_t(len(src)), C.gf_handle(s)))
}

// memcpyDtoHHost queues a copy from src into registered host memory on s.
func memcpyDtoHHost(ctx handle, dst []byte, src uint64, s handle) api.Result {
	return res(C.gf_memcpy_dtoh(C.gf_handle(ctx), goBytes(dst), C.uint64_t(src), C.size_t(len(dst)), C.gf_handle(s)))
}
