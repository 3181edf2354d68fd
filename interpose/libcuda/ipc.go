//go:build linux

package main

/*
#include "gf_memory2.h"
*/
import "C"

import (
	"bytes"
	"encoding/binary"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// IPC memory handles. A CUipcMemHandle's 64 bytes carry a marker, the
// server's device index and the server's 128-bit key; the server decides
// who may open it (a process of the same user that holds the device).
// Event handles are not served: cuIpcGetEventHandle and
// cuIpcOpenEventHandle answer CUDA_ERROR_NOT_SUPPORTED.

var ipcMarker = []byte("GFIPC1\x00\x00")

const ipcLazyEnablePeerAccess = 0x1 // CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS

//export gfgo_ipcGetMemHandle
func gfgo_ipcGetMemHandle(out *C.CUipcMemHandle, ptr C.CUdeviceptr) C.CUresult {
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	g := devMem.find(uint64(ptr))
	if g == nil || g.base != uint64(ptr) || g.global {
		return res(api.ErrInvalidValue)
	}
	d, r := device(C.int(g.dev))
	if r != api.Success {
		return res(r)
	}
	h, err := d.IpcHandle(interpose.DevicePtr(ptr))
	if err != nil {
		return ret(err)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(out)), 64)
	clear(b)
	copy(b, ipcMarker)
	binary.LittleEndian.PutUint32(b[8:], h.Device)
	copy(b[12:28], h.Key[:])
	return 0
}

//export gfgo_ipcOpenMemHandle
func gfgo_ipcOpenMemHandle(out *C.CUdeviceptr, in *C.CUipcMemHandle, flags C.uint) C.CUresult {
	c := live.Load()
	if c == nil {
		return res(api.ErrNotInitialized)
	}
	if out == nil || flags&^ipcLazyEnablePeerAccess != 0 {
		return res(api.ErrInvalidValue)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(in)), 64)
	if !bytes.HasPrefix(b, ipcMarker) {
		return res(api.ErrInvalidValue)
	}
	var h api.IpcMemHandle
	h.Device = binary.LittleEndian.Uint32(b[8:])
	copy(h.Key[:], b[12:28])
	p, size, ordinal, err := c.s.IpcOpen(h)
	if err != nil {
		return ret(err)
	}
	// global: cuMemFree refuses it; cuIpcCloseMemHandle lets it go.
	devMem.add(&region{base: uint64(p), size: size, dev: ordinal, global: true, ipc: true})
	*out = C.CUdeviceptr(p)
	return 0
}

//export gfgo_ipcCloseMemHandle
func gfgo_ipcCloseMemHandle(ptr C.CUdeviceptr) C.CUresult {
	c := live.Load()
	if c == nil {
		return res(api.ErrNotInitialized)
	}
	if devMem.remove(uint64(ptr), func(g *region) bool { return !g.ipc }) == nil {
		return res(api.ErrInvalidValue)
	}
	return ret(c.s.IpcClose(interpose.DevicePtr(ptr)))
}
