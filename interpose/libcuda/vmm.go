//go:build linux

package main

/*
#include "gf_memory2.h"
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// Virtual memory management. The server keeps reservations, physical
// memory (charged to the share) and mappings; here each mapping is also a
// device region, so unified addressing, pointer attributes and cuMemFree's
// refusal treat it as the driver would. Reservations are made on the
// current context's device: memory of another device cannot be mapped in
// them. Access is always read-write for the session's device, so
// cuMemSetAccess only checks what it is given.

// physHandle is a CUmemGenericAllocationHandle: the application's
// references (cuMemCreate, cuMemRetainAllocationHandle) and its mappings.
// The server's handle is released when both are gone, so that the
// handle a retain returns stays usable while the memory is mapped.
type physHandle struct {
	p    *interpose.Physical
	dev  int
	refs int
	maps int
}

var phys struct {
	mu sync.Mutex
	m  map[uint64]*physHandle
}

const physTag = 0xE

// CUmemAllocationProp and CUmemAccessDesc values.
const (
	allocTypePinned    = 1 // CU_MEM_ALLOCATION_TYPE_PINNED
	locationTypeDevice = 1 // CU_MEM_LOCATION_TYPE_DEVICE
	accessReadWrite    = 3 // CU_MEM_ACCESS_FLAGS_PROT_READWRITE
	accessRead         = 1
	accessNone         = 0
)

//export gfgo_memAddressReserve
func gfgo_memAddressReserve(dev C.int, ptr *C.CUdeviceptr, size, align C.size_t, addr C.CUdeviceptr, flags C.ulonglong) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	// addr is a hint the driver may ignore, and so does this one.
	if ptr == nil || size == 0 || flags != 0 {
		return res(api.ErrInvalidValue)
	}
	p, err := d.Reserve(uint64(size), uint64(align))
	if err != nil {
		return ret(err)
	}
	*ptr = C.CUdeviceptr(p)
	return 0
}

//export gfgo_memAddressFree
func gfgo_memAddressFree(ptr C.CUdeviceptr, size C.size_t) C.CUresult {
	c := live.Load()
	if c == nil {
		return res(api.ErrNotInitialized)
	}
	if ptr == 0 || size == 0 {
		return res(api.ErrInvalidValue)
	}
	if len(c.devs) == 0 || devMem.overlaps(uint64(ptr), uint64(size)) {
		return res(api.ErrInvalidValue) // mappings remain: refused now, not latched
	}
	// Calls travel on the session, not the device: the server finds the
	// reservation among the session's.
	return ret(c.devs[0].FreeReservation(interpose.DevicePtr(ptr), uint64(size)))
}

func propDevice(prop *C.CUmemAllocationProp) (C.int, api.Result) {
	if prop == nil || prop._type != allocTypePinned || prop.location._type != locationTypeDevice {
		return 0, api.ErrInvalidValue
	}
	if _, r := device(prop.location.id); r != api.Success {
		return 0, api.ErrInvalidDevice
	}
	return prop.location.id, api.Success
}

//export gfgo_memCreate
func gfgo_memCreate(h *C.CUmemGenericAllocationHandle, size C.size_t, prop *C.CUmemAllocationProp, flags C.ulonglong) C.CUresult {
	dev, r := propDevice(prop)
	if r != api.Success {
		return res(r)
	}
	if h == nil || size == 0 || flags != 0 || size%api.VMMGranularity != 0 {
		return res(api.ErrInvalidValue)
	}
	d, _ := device(dev)
	p, err := d.CreatePhysical(uint64(size))
	if err != nil {
		return ret(err)
	}
	key := uint64(p.Handle())<<4 | physTag
	phys.mu.Lock()
	if phys.m == nil {
		phys.m = map[uint64]*physHandle{}
	}
	phys.m[key] = &physHandle{p: p, dev: int(dev), refs: 1}
	phys.mu.Unlock()
	*h = C.CUmemGenericAllocationHandle(key)
	return 0
}

// settle releases the server's handle once nothing here refers to it;
// phys.mu held.
func (e *physHandle) settle(key uint64) error {
	if e.refs > 0 || e.maps > 0 {
		return nil
	}
	delete(phys.m, key)
	return e.p.Release()
}

//export gfgo_memRelease
func gfgo_memRelease(h C.CUmemGenericAllocationHandle) C.CUresult {
	phys.mu.Lock()
	defer phys.mu.Unlock()
	e := phys.m[uint64(h)]
	if e == nil || e.refs == 0 {
		return res(api.ErrInvalidValue)
	}
	e.refs--
	return ret(e.settle(uint64(h)))
}

//export gfgo_memMap
func gfgo_memMap(ptr C.CUdeviceptr, size, offset C.size_t, h C.CUmemGenericAllocationHandle, flags C.ulonglong) C.CUresult {
	if flags != 0 || ptr == 0 || size == 0 {
		return res(api.ErrInvalidValue)
	}
	phys.mu.Lock()
	defer phys.mu.Unlock()
	e := phys.m[uint64(h)]
	if e == nil {
		return res(api.ErrInvalidHandle)
	}
	if uint64(offset)+uint64(size) > e.p.Size() || devMem.overlaps(uint64(ptr), uint64(size)) {
		return res(api.ErrInvalidValue)
	}
	if err := e.p.Map(interpose.DevicePtr(ptr), uint64(size), uint64(offset)); err != nil {
		return ret(err)
	}
	e.maps++
	// global: a mapping is not cuMemFree's to free.
	devMem.add(&region{base: uint64(ptr), size: uint64(size), dev: e.dev, global: true, vmm: uint64(h)})
	return 0
}

//export gfgo_memUnmap
func gfgo_memUnmap(ptr C.CUdeviceptr, size C.size_t) C.CUresult {
	// The regions that tile the range, checked before any is taken out.
	var tiles []*region
	for at, end := uint64(ptr), uint64(ptr)+uint64(size); at < end; {
		g := devMem.find(at)
		if g == nil || g.vmm == 0 || g.base != at || g.base+g.size > end {
			return res(api.ErrInvalidValue)
		}
		tiles = append(tiles, g)
		at += g.size
	}
	if len(tiles) == 0 {
		return res(api.ErrInvalidValue)
	}
	d, r := device(C.int(tiles[0].dev))
	if r != api.Success {
		return res(r)
	}
	if err := d.Unmap(interpose.DevicePtr(ptr), uint64(size)); err != nil {
		return ret(err)
	}
	phys.mu.Lock()
	defer phys.mu.Unlock()
	var first error
	for _, g := range tiles {
		devMem.remove(g.base, nil)
		if e := phys.m[g.vmm]; e != nil {
			e.maps--
			if err := e.settle(g.vmm); err != nil && first == nil {
				first = err
			}
		}
	}
	return ret(first)
}

// mappedRun reports whether [ptr, ptr+size) is covered by mappings.
func mappedRun(ptr, size uint64) bool {
	for at, end := ptr, ptr+size; at < end; {
		g := devMem.find(at)
		if g == nil || g.vmm == 0 {
			return false
		}
		at = g.base + g.size
	}
	return size > 0
}

//export gfgo_memSetAccess
func gfgo_memSetAccess(ptr C.CUdeviceptr, size C.size_t, desc *C.CUmemAccessDesc, count C.size_t) C.CUresult {
	if desc == nil || count == 0 || !mappedRun(uint64(ptr), uint64(size)) {
		return res(api.ErrInvalidValue)
	}
	for _, a := range unsafe.Slice(desc, count) {
		if a.location._type != locationTypeDevice {
			return res(api.ErrInvalidValue)
		}
		if _, r := device(a.location.id); r != api.Success {
			return res(api.ErrInvalidDevice)
		}
		switch a.flags {
		case accessReadWrite, accessRead, accessNone:
		default:
			return res(api.ErrInvalidValue)
		}
	}
	return 0
}

//export gfgo_memGetAccess
func gfgo_memGetAccess(flags *C.ulonglong, loc *C.CUmemLocation, ptr C.CUdeviceptr) C.CUresult {
	if flags == nil || loc == nil || loc._type != locationTypeDevice {
		return res(api.ErrInvalidValue)
	}
	if _, r := device(loc.id); r != api.Success {
		return res(api.ErrInvalidDevice)
	}
	if !mappedRun(uint64(ptr), 1) {
		return res(api.ErrInvalidValue)
	}
	*flags = accessReadWrite
	return 0
}

//export gfgo_memGranularity
func gfgo_memGranularity(g *C.size_t, prop *C.CUmemAllocationProp, option C.int) C.CUresult {
	if _, r := propDevice(prop); r != api.Success {
		return res(r)
	}
	if g == nil || option < 0 || option > 1 { // MINIMUM, RECOMMENDED
		return res(api.ErrInvalidValue)
	}
	*g = api.VMMGranularity
	return 0
}

//export gfgo_memHandleProps
func gfgo_memHandleProps(prop *C.CUmemAllocationProp, h C.CUmemGenericAllocationHandle) C.CUresult {
	phys.mu.Lock()
	e := phys.m[uint64(h)]
	phys.mu.Unlock()
	if prop == nil || e == nil {
		return res(api.ErrInvalidValue)
	}
	*prop = C.CUmemAllocationProp{}
	prop._type = allocTypePinned
	prop.location._type = locationTypeDevice
	prop.location.id = C.int(e.dev)
	return 0
}

//export gfgo_memRetainHandle
func gfgo_memRetainHandle(h *C.CUmemGenericAllocationHandle, addr unsafe.Pointer) C.CUresult {
	g := devMem.find(uint64(uintptr(addr)))
	if h == nil || g == nil || g.vmm == 0 {
		return res(api.ErrInvalidValue)
	}
	phys.mu.Lock()
	defer phys.mu.Unlock()
	e := phys.m[g.vmm]
	if e == nil {
		return res(api.ErrInvalidValue)
	}
	e.refs++
	*h = C.CUmemGenericAllocationHandle(g.vmm)
	return 0
}
