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

// IPC memory and event handles. A handle's 64 bytes carry a marker, the
// server's device index and the server's 128-bit key; the server decides
// who may open it (a process of the same user that holds the device).

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
	putIpcHandle(unsafe.Pointer(out), h)
	return 0
}

// putIpcHandle writes h into the 64 bytes of a CUipcMemHandle or
// CUipcEventHandle at out.
func putIpcHandle(out unsafe.Pointer, h api.IpcMemHandle) {
	b := unsafe.Slice((*byte)(out), 64)
	clear(b)
	copy(b, ipcMarker)
	binary.LittleEndian.PutUint32(b[8:], h.Device)
	copy(b[12:28], h.Key[:])
}

// ipcHandle reads what putIpcHandle wrote, or false.
func ipcHandle(in unsafe.Pointer) (api.IpcMemHandle, bool) {
	var h api.IpcMemHandle
	b := unsafe.Slice((*byte)(in), 64)
	if !bytes.HasPrefix(b, ipcMarker) {
		return h, false
	}
	h.Device = binary.LittleEndian.Uint32(b[8:])
	copy(h.Key[:], b[12:28])
	return h, true
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
	h, ok := ipcHandle(unsafe.Pointer(in))
	if !ok {
		return res(api.ErrInvalidValue)
	}
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

const eventInterprocess = 0x4 // CU_EVENT_INTERPROCESS

//export gfgo_ipcGetEventHandle
func gfgo_ipcGetEventHandle(out *C.CUipcEventHandle, h C.uintptr_t) C.CUresult {
	e, r := lookup[*event](uintptr(h), kindEvent)
	if r != api.Success {
		return res(r)
	}
	if out == nil || e.flags&eventInterprocess == 0 {
		return res(api.ErrInvalidValue)
	}
	ih, err := e.ev.IpcEventHandle()
	if err != nil {
		return ret(err)
	}
	putIpcHandle(unsafe.Pointer(out), ih)
	return 0
}

//export gfgo_ipcOpenEventHandle
func gfgo_ipcOpenEventHandle(out *C.uintptr_t, in *C.CUipcEventHandle) C.CUresult {
	c := live.Load()
	if c == nil {
		return res(api.ErrNotInitialized)
	}
	h, ok := ipcHandle(unsafe.Pointer(in))
	if out == nil || !ok {
		return res(api.ErrInvalidValue)
	}
	// The event is on the server's device h.Device: the session's device
	// of that index opens it.
	for i, d := range c.devs {
		if uint32(d.ServerIndex()) != h.Device {
			continue
		}
		ev, err := d.IpcOpenEvent(h)
		if err != nil {
			return ret(err)
		}
		*out = C.uintptr_t(objects.add(kindEvent, &event{ev: ev, dev: i, flags: eventInterprocess | 0x2}))
		return 0
	}
	return res(api.ErrInvalidDevice)
}
