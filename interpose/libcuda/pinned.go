//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/gpufabric/gpufabric/interpose"
)

// Page-locked host memory (cuMemAllocHost, cuMemHostAlloc) comes from the
// session (interpose.Session.AllocHost): over shared memory the server maps
// it too, and the client library turns a copy between it and the device
// into a call that names the range, so the server copies once, between its
// mapping and device memory. Over TCP it is ordinary memory. Either way the
// application's pointer is the mapping's, which is not Go memory, so C may
// keep it.
//
// Memory the application registers (cuMemHostRegister) is its own: it
// cannot be moved into a shared file after the fact, and mapping the
// process's pages into the server would need the server to read another
// process's memory. It is recorded (pointer attributes, flags, copies into
// it stay asynchronous, as the driver's) and its copies travel as payloads
// into the server's staging, which the cuda backend allocates page-locked,
// so the device still copies from memory its driver knows.

// pinned maps the application's pointers to the memory behind them.
var pinned sync.Map // uintptr → *interpose.HostMem

// hostAlloc allocates size bytes of page-locked host memory, from the
// session when there is one, else (or when the session cannot) from C.
func hostAlloc(size C.size_t) unsafe.Pointer {
	if c := live.Load(); c != nil {
		if h, err := c.s.AllocHost(max(int(size), 1)); err == nil {
			p := unsafe.Pointer(unsafe.SliceData(h.Bytes()))
			pinned.Store(uintptr(p), h)
			return p
		}
	}
	return C.gf_host_alloc(size)
}

// hostFree frees what hostAlloc returned. Shared memory is unmapped by the
// server first, once the work queued before it has run, as cuMemFreeHost
// synchronises.
func hostFree(p unsafe.Pointer) C.CUresult {
	if h, ok := pinned.LoadAndDelete(uintptr(p)); ok {
		return ret(h.(*interpose.HostMem).Free())
	}
	C.gf_host_free(p)
	return 0
}
