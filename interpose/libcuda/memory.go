//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// region is a range of memory the driver API handed out or registered.
type region struct {
	base, size uint64
	dev        int
	ctx        uintptr // the context current when it was made
	id         uint64  // CU_POINTER_ATTRIBUTE_BUFFER_ID
	flags      uint32  // host memory: CU_MEMHOSTALLOC_* or CU_MEMHOSTREGISTER_*
	global     bool    // a module global: freed with its module, not by cuMemFree
	registered bool    // host memory the application owns (cuMemHostRegister)
	vmm        uint64  // a mapping of this physical memory handle (vmm.go)
	ipc        bool    // memory another process exported, opened here (ipc.go)
}

// registry is a set of non-overlapping regions, sorted by base. Unified
// addressing decides a copy's direction from it: a device address is one
// the server gave; a host pointer is anything else.
type registry struct {
	mu   sync.RWMutex
	list []*region
}

var (
	devMem   registry // device memory of the session's devices
	hostMem  registry // host memory allocated or registered through the driver API
	bufferID atomic.Uint64
)

// find returns the region containing p.
func (r *registry) find(p uint64) *region {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := sort.Search(len(r.list), func(i int) bool { return r.list[i].base > p }) - 1
	if i < 0 {
		return nil
	}
	if g := r.list[i]; p-g.base < max(g.size, 1) {
		return g
	}
	return nil
}

// overlaps reports whether [base, base+size) meets a region.
func (r *registry) overlaps(base, size uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := sort.Search(len(r.list), func(i int) bool { return r.list[i].base >= base+size })
	return i > 0 && r.list[i-1].base+r.list[i-1].size > base
}

func (r *registry) add(g *region) {
	g.id = bufferID.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.list), func(i int) bool { return r.list[i].base >= g.base })
	r.list = append(r.list, nil)
	copy(r.list[i+1:], r.list[i:])
	r.list[i] = g
}

// remove takes out the region based exactly at base.
func (r *registry) remove(base uint64, keep func(*region) bool) *region {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := sort.Search(len(r.list), func(i int) bool { return r.list[i].base >= base })
	if i == len(r.list) || r.list[i].base != base || keep != nil && keep(r.list[i]) {
		return nil
	}
	g := r.list[i]
	r.list = append(r.list[:i], r.list[i+1:]...)
	return g
}

// removeCtx takes out the freeable regions made under ctx.
func (r *registry) removeCtx(ctx uintptr) []*region {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*region
	kept := r.list[:0]
	for _, g := range r.list {
		if g.ctx == ctx && !g.global {
			out = append(out, g)
		} else {
			kept = append(kept, g)
		}
	}
	clear(r.list[len(kept):])
	r.list = kept
	return out
}

// ---- device memory ----

//export gfgo_memAlloc
func gfgo_memAlloc(ctx C.uintptr_t, dev C.int, dptr *C.CUdeviceptr, size C.size_t) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	if dptr == nil || size == 0 {
		return res(api.ErrInvalidValue)
	}
	p, err := d.Alloc(uint64(size))
	if err != nil {
		return ret(err)
	}
	if len(live.Load().sessions) > 1 && devMem.overlaps(uint64(p), uint64(size)) {
		// Servers whose ranges are unknown (real GPUs: each driver picks
		// its addresses) handed out one address twice: refused, rather
		// than copies going to the wrong server.
		_ = d.Free(p)
		fmt.Fprintf(os.Stderr, "gpufabric: device %d gave address %#x, which another server's device already gave: devices of these servers cannot be used together\n", dev, uint64(p))
		return res(api.ErrOutOfMemory)
	}
	devMem.add(&region{base: uint64(p), size: uint64(size), dev: int(dev), ctx: uintptr(ctx)})
	*dptr = C.CUdeviceptr(p)
	return 0
}

//export gfgo_memFree
func gfgo_memFree(ptr C.CUdeviceptr) C.CUresult {
	if ptr == 0 {
		return 0
	}
	g := devMem.remove(uint64(ptr), func(g *region) bool { return g.global })
	if g == nil {
		return res(api.ErrInvalidValue)
	}
	forgetPoolAlloc(uint64(ptr))
	d, r := device(C.int(g.dev))
	if r != api.Success {
		return res(r)
	}
	return ret(d.Free(interpose.DevicePtr(ptr)))
}

//export gfgo_memGetInfo
func gfgo_memGetInfo(dev C.int, free, total *C.size_t, free32, total32 *C.uint) C.CUresult {
	d, r := device(dev)
	if r != api.Success {
		return res(r)
	}
	f, t, err := d.MemGetInfo()
	if err != nil {
		return ret(err)
	}
	if free != nil {
		*free = C.size_t(f)
	}
	if total != nil {
		*total = C.size_t(t)
	}
	if free32 != nil {
		*free32 = C.uint(min(f, 1<<32-1))
	}
	if total32 != nil {
		*total32 = C.uint(min(t, 1<<32-1))
	}
	return 0
}

//export gfgo_memGetAddressRange
func gfgo_memGetAddressRange(base *C.CUdeviceptr, size *C.size_t, ptr C.CUdeviceptr) C.CUresult {
	g := devMem.find(uint64(ptr))
	if g == nil {
		return res(api.ErrNotFound)
	}
	if base != nil {
		*base = C.CUdeviceptr(g.base)
	}
	if size != nil {
		*size = C.size_t(g.size)
	}
	return 0
}

// Copy directions of gfgo_memcpy.
const (
	copyUnified = 0
	copyHtoD    = 1
	copyDtoH    = 2
	copyDtoD    = 3
	copyHtoH    = 4
)

// hostBytes is the application's host memory at address p. The address
// comes from C (a CUdeviceptr-typed argument that unified addressing found
// to be host memory), never from Go, so reinterpreting its bits as a pointer
// hides nothing from the garbage collector.
func hostBytes(p uint64, n uint64) []byte {
	return unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&p))), n)
}

// isDevice decides a unified address's side: device memory the session
// allocated (or a module global), and not host memory we handed out.
func isDevice(p uint64) bool { return hostMem.find(p) == nil && devMem.find(p) != nil }

// within reports whether [p, p+n) lies inside one known device region.
func within(p, n uint64) bool {
	g := devMem.find(p)
	return g != nil && n <= g.size-(p-g.base)
}

// owner is the device ordinal of a device address, or dev when the address
// is not one we know (the server then judges it).
func owner(p uint64, dev C.int) C.int {
	if g := devMem.find(p); g != nil {
		return C.int(g.dev)
	}
	return dev
}

// elsewhere reports whether p is memory of a device on another server
// than device dev's. A stream of dev cannot reach it (no server reaches
// another's memory): the call is refused, as the driver refuses an access
// that no peer mapping allows. Copies between the two are peer copies.
func elsewhere(p uint64, dev int) bool {
	// One server (nearly every program) reaches all its own memory: no
	// lookup on every copy and memset.
	if c := live.Load(); c == nil || len(c.sessions) < 2 {
		return false
	}
	g := devMem.find(p)
	if g == nil || g.dev == dev {
		return false
	}
	owner, r1 := device(C.int(g.dev))
	d, r2 := device(C.int(dev))
	return r1 == api.Success && r2 == api.Success && owner.Session() != d.Session()
}

//export gfgo_memcpy
func gfgo_memcpy(dev C.int, dst, src C.CUdeviceptr, n C.size_t, dir C.int, sh C.uintptr_t, async C.int) C.CUresult {
	if c := live.Load(); c == nil {
		return res(api.ErrNotInitialized)
	}
	if n == 0 {
		return 0
	}
	if dir == copyUnified {
		switch dd, sd := isDevice(uint64(dst)), isDevice(uint64(src)); {
		case dd && sd:
			dir = copyDtoD
		case dd:
			dir = copyHtoD
		case sd:
			dir = copyDtoH
		default:
			dir = copyHtoH
		}
	}
	if (dir == copyHtoD && src == 0) || (dir == copyDtoH && dst == 0) {
		return res(api.ErrInvalidValue)
	}
	if dir == copyDtoD {
		// Between two of the session's devices: a peer copy (peer.go).
		if dd, sd := owner(uint64(dst), -1), owner(uint64(src), -1); dd >= 0 && sd >= 0 && dd != sd {
			return gfgo_memcpyPeer(dev, dst, dd, src, sd, n, sh, async)
		}
	}
	var target C.int
	switch dir {
	case copyHtoD, copyDtoD:
		target = owner(uint64(dst), dev)
	case copyDtoH:
		target = owner(uint64(src), dev)
	default:
		target = dev
	}
	if async == 0 {
		if dir == copyHtoH {
			copy(hostBytes(uint64(dst), uint64(n)), hostBytes(uint64(src), uint64(n)))
			return 0
		}
		d, r := device(target)
		if r != api.Success {
			return res(r)
		}
		// The driver's synchronous copies need not wait for the device
		// in two cases, and neither do ours, which saves a round trip:
		// from pageable memory the call returns once the data is taken,
		// and device-to-device copies do not synchronise with the host.
		// Only for addresses known good, so a bad one still fails here.
		switch dir {
		case copyHtoD:
			if hostMem.find(uint64(src)) == nil && within(uint64(dst), uint64(n)) {
				return ret(d.DefaultStream().CopyHtoDAsync(interpose.DevicePtr(dst), hostBytes(uint64(src), uint64(n))))
			}
			return ret(d.CopyHtoD(interpose.DevicePtr(dst), hostBytes(uint64(src), uint64(n))))
		case copyDtoH:
			return ret(d.CopyDtoH(hostBytes(uint64(dst), uint64(n)), interpose.DevicePtr(src)))
		default:
			if within(uint64(dst), uint64(n)) && within(uint64(src), uint64(n)) {
				return ret(d.DefaultStream().CopyDtoDAsync(interpose.DevicePtr(dst), interpose.DevicePtr(src), uint64(n)))
			}
			return ret(d.CopyDtoD(interpose.DevicePtr(dst), interpose.DevicePtr(src), uint64(n)))
		}
	}
	st, sdev, r := streamFor(sh, dev)
	if r != api.Success {
		return res(r)
	}
	if (dir == copyHtoD || dir == copyDtoD) && elsewhere(uint64(dst), sdev) || (dir == copyDtoH || dir == copyDtoD) && elsewhere(uint64(src), sdev) {
		return res(api.ErrInvalidValue)
	}
	switch dir {
	case copyHtoD:
		return ret(st.CopyHtoDAsync(interpose.DevicePtr(dst), hostBytes(uint64(src), uint64(n))))
	case copyDtoH:
		if err := st.CopyDtoHAsync(hostBytes(uint64(dst), uint64(n)), interpose.DevicePtr(src)); err != nil {
			return ret(err)
		}
		// Into pageable memory the copy is synchronous, as the driver's:
		// the caller may read dst as soon as the call returns.
		if hostMem.find(uint64(dst)) == nil {
			return ret(st.Synchronize())
		}
		return 0
	case copyDtoD:
		return ret(st.CopyDtoDAsync(interpose.DevicePtr(dst), interpose.DevicePtr(src), uint64(n)))
	default:
		if err := st.Synchronize(); err != nil {
			return ret(err)
		}
		copy(hostBytes(uint64(dst), uint64(n)), hostBytes(uint64(src), uint64(n)))
		return 0
	}
}

//export gfgo_memset
func gfgo_memset(dev C.int, dst C.CUdeviceptr, value C.uint, elem C.int, count C.size_t, sh C.uintptr_t, async C.int) C.CUresult {
	if c := live.Load(); c == nil {
		return res(api.ErrNotInitialized)
	}
	if count == 0 {
		return 0
	}
	if async == 0 {
		d, r := device(owner(uint64(dst), dev))
		if r != api.Success {
			return res(r)
		}
		// A memset of device memory does not synchronise with the host,
		// as the driver's does not: queued on the default stream, unless
		// the range is not one we know, which the server then judges now.
		if within(uint64(dst), uint64(count)*uint64(elem)) {
			return ret(d.DefaultStream().MemsetAsync(interpose.DevicePtr(dst), uint32(value), int(elem), uint64(count)))
		}
		return ret(d.Memset(interpose.DevicePtr(dst), uint32(value), int(elem), uint64(count)))
	}
	st, sdev, r := streamFor(sh, dev)
	if r != api.Success {
		return res(r)
	}
	if elsewhere(uint64(dst), sdev) {
		return res(api.ErrInvalidValue)
	}
	return ret(st.MemsetAsync(interpose.DevicePtr(dst), uint32(value), int(elem), uint64(count)))
}

// ---- host memory ----
//
// Page-locked host memory is shared with the server where the transport
// allows (pinned.go), and recorded so that pointer attributes and
// asynchronous copies treat it as the driver would (a copy into it stays
// asynchronous).

//export gfgo_memHostAlloc
func gfgo_memHostAlloc(ctx C.uintptr_t, dev C.int, pp *unsafe.Pointer, size C.size_t, flags C.uint) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if pp == nil {
		return res(api.ErrInvalidValue)
	}
	p := hostAlloc(size)
	if p == nil {
		return res(api.ErrOutOfMemory)
	}
	hostMem.add(&region{base: uint64(uintptr(p)), size: uint64(size), dev: int(dev), ctx: uintptr(ctx), flags: uint32(flags)})
	*pp = p
	return 0
}

//export gfgo_memFreeHost
func gfgo_memFreeHost(p unsafe.Pointer) C.CUresult {
	g := hostMem.remove(uint64(uintptr(p)), func(g *region) bool { return g.registered })
	if g == nil {
		return res(api.ErrInvalidValue)
	}
	return hostFree(p)
}

//export gfgo_memHostRegister
func gfgo_memHostRegister(ctx C.uintptr_t, dev C.int, p unsafe.Pointer, size C.size_t, flags C.uint) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if p == nil || size == 0 {
		return res(api.ErrInvalidValue)
	}
	if hostMem.overlaps(uint64(uintptr(p)), uint64(size)) {
		return 712 // CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
	}
	hostMem.add(&region{base: uint64(uintptr(p)), size: uint64(size), dev: int(dev), ctx: uintptr(ctx), flags: uint32(flags), registered: true})
	return 0
}

//export gfgo_memHostUnregister
func gfgo_memHostUnregister(p unsafe.Pointer) C.CUresult {
	if hostMem.remove(uint64(uintptr(p)), func(g *region) bool { return !g.registered }) == nil {
		return 713 // CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
	}
	return 0
}

//export gfgo_memHostGetFlags
func gfgo_memHostGetFlags(flags *C.uint, p unsafe.Pointer) C.CUresult {
	g := hostMem.find(uint64(uintptr(p)))
	if g == nil || flags == nil {
		return res(api.ErrInvalidValue)
	}
	*flags = C.uint(g.flags)
	return 0
}

// ---- pointer attributes ----

// CUpointer_attribute values.
const (
	ptrAttrContext         = 1
	ptrAttrMemoryType      = 2
	ptrAttrDevicePointer   = 3
	ptrAttrHostPointer     = 4
	ptrAttrP2PTokens       = 5
	ptrAttrSyncMemops      = 6
	ptrAttrBufferID        = 7
	ptrAttrIsManaged       = 8
	ptrAttrDeviceOrdinal   = 9
	ptrAttrIsLegacyIPC     = 10
	ptrAttrRangeStart      = 11
	ptrAttrRangeSize       = 12
	ptrAttrMapped          = 13
	ptrAttrAllowedHandles  = 14
	ptrAttrIsGPUDirectRDMA = 15
	ptrAttrAccessFlags     = 16
	ptrAttrMempoolHandle   = 17
	ptrAttrMappingSize     = 18
	ptrAttrMappingBase     = 19
	ptrAttrMemoryBlockID   = 20

	memoryTypeHost       = 1 // CU_MEMORYTYPE_HOST
	memoryTypeDevice     = 2 // CU_MEMORYTYPE_DEVICE
	accessFlagsReadWrite = 3 // CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE
)

// pointerAttr writes one attribute of ptr into data, sized as the driver
// documents it (bool attributes are one byte). g is ptr's region and host
// says which registry it came from; g == nil is memory the driver API does
// not know, for which strict reports CUDA_ERROR_INVALID_VALUE and !strict
// (cuPointerGetAttributes) writes zeros.
func pointerAttr(data unsafe.Pointer, attr int, ptr uint64, g *region, host, strict bool) api.Result {
	put64 := func(v uint64) { *(*uint64)(data) = v }
	put32 := func(v uint32) { *(*uint32)(data) = v }
	putBool := func(v bool) {
		var b byte
		if v {
			b = 1
		}
		*(*byte)(data) = b
	}
	if g == nil {
		if strict {
			return api.ErrInvalidValue
		}
		switch attr {
		case ptrAttrMemoryType, ptrAttrAllowedHandles, ptrAttrAccessFlags:
			put32(0)
		case ptrAttrDeviceOrdinal:
			*(*int32)(data) = -2 // CU_DEVICE_INVALID
		case ptrAttrSyncMemops, ptrAttrIsManaged, ptrAttrIsLegacyIPC, ptrAttrMapped, ptrAttrIsGPUDirectRDMA:
			putBool(false)
		case ptrAttrP2PTokens:
		default:
			put64(0)
		}
		return api.Success
	}
	switch attr {
	case ptrAttrContext:
		put64(uint64(g.ctx))
	case ptrAttrMemoryType:
		if host {
			put32(memoryTypeHost)
		} else {
			put32(memoryTypeDevice)
		}
	case ptrAttrDevicePointer:
		if host {
			// Mapped host memory would need the server to reach ours.
			put64(0)
			if strict {
				return api.ErrNotSupported
			}
			break
		}
		put64(ptr)
	case ptrAttrHostPointer:
		if !host {
			put64(0)
			if strict {
				return api.ErrInvalidValue
			}
			break
		}
		put64(ptr)
	case ptrAttrSyncMemops:
		putBool(true)
	case ptrAttrBufferID, ptrAttrMemoryBlockID:
		put64(g.id)
	case ptrAttrIsManaged, ptrAttrIsLegacyIPC, ptrAttrIsGPUDirectRDMA:
		putBool(false)
	case ptrAttrDeviceOrdinal:
		*(*int32)(data) = int32(g.dev)
	case ptrAttrRangeStart, ptrAttrMappingBase:
		put64(g.base)
	case ptrAttrRangeSize, ptrAttrMappingSize:
		put64(g.size)
	case ptrAttrMapped:
		putBool(true)
	case ptrAttrAllowedHandles:
		put32(0)
	case ptrAttrAccessFlags:
		put32(accessFlagsReadWrite)
	case ptrAttrMempoolHandle:
		put64(uint64(poolOfAlloc(g.base))) // memory2.go
	case ptrAttrP2PTokens:
		if strict {
			return api.ErrNotSupported
		}
	default:
		return api.ErrInvalidValue
	}
	return api.Success
}

func regionOf(ptr uint64) (*region, bool) {
	if g := hostMem.find(ptr); g != nil {
		return g, true
	}
	return devMem.find(ptr), false
}

//export gfgo_pointerGetAttribute
func gfgo_pointerGetAttribute(data unsafe.Pointer, attr C.int, ptr C.CUdeviceptr) C.CUresult {
	if data == nil {
		return res(api.ErrInvalidValue)
	}
	g, host := regionOf(uint64(ptr))
	return res(pointerAttr(data, int(attr), uint64(ptr), g, host, true))
}

//export gfgo_pointerGetAttributes
func gfgo_pointerGetAttributes(n C.uint, attrs *C.int, data *unsafe.Pointer, ptr C.CUdeviceptr) C.CUresult {
	if n == 0 || attrs == nil || data == nil {
		return res(api.ErrInvalidValue)
	}
	as := unsafe.Slice(attrs, n)
	ds := unsafe.Slice(data, n)
	g, host := regionOf(uint64(ptr))
	for i := range as {
		if ds[i] == nil {
			return res(api.ErrInvalidValue)
		}
		if r := pointerAttr(ds[i], int(as[i]), uint64(ptr), g, host, false); r != api.Success {
			return res(r)
		}
	}
	return 0
}
