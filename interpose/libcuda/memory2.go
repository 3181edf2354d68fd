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

// ---- pitched memory ----

// pitchAlign is the alignment of the pitches cuMemAllocPitch picks: the
// driver's on current GPUs, so that a program that computes a buffer's size
// from its pitch sees the same figures remotely as locally.
const pitchAlign = 512

//export gfgo_memAllocPitch
func gfgo_memAllocPitch(ctx C.uintptr_t, dev C.int, dptr *C.CUdeviceptr, pitch *C.size_t, width, height C.size_t, elem C.uint) C.CUresult {
	if dptr == nil || pitch == nil || width == 0 || height == 0 {
		return res(api.ErrInvalidValue)
	}
	switch elem {
	case 4, 8, 16:
	default:
		return res(api.ErrInvalidValue)
	}
	p := (uint64(width) + pitchAlign - 1) &^ (pitchAlign - 1)
	size := p * uint64(height)
	if p < uint64(width) || size/p != uint64(height) {
		return res(api.ErrInvalidValue)
	}
	if d, r := device(dev); r == api.Success {
		if limit, err := d.Attribute(api.AttrMaxPitch); err == nil && limit > 0 && p > uint64(limit) {
			return res(api.ErrInvalidValue)
		}
	}
	if r := gfgo_memAlloc(ctx, dev, dptr, C.size_t(size)); r != 0 {
		return r
	}
	*pitch = C.size_t(p)
	return 0
}

// operand is one side of a 2D/3D copy, resolved: device memory as the
// server sees it, or host memory of this process.
type operand struct {
	device bool
	ptr    uint64 // the box's first byte
	pitch  uint64
	rows   uint64 // rows from one slice to the next
}

// operandOf resolves a side of a CUDA_MEMCPY3D. Unified addressing decides
// CU_MEMORYTYPE_UNIFIED by the address, as cuMemcpy does; arrays are not
// supported.
func operandOf(kind C.int, host unsafe.Pointer, dev C.CUdeviceptr, x, y, z, pitch, height C.size_t) (operand, api.Result) {
	var o operand
	switch kind {
	case C.GF_MEMORYTYPE_HOST:
		o.ptr = uint64(uintptr(host))
	case C.GF_MEMORYTYPE_DEVICE:
		o.ptr, o.device = uint64(dev), true
	case C.GF_MEMORYTYPE_UNIFIED:
		o.ptr = uint64(dev)
		o.device = isDevice(o.ptr)
	case C.GF_MEMORYTYPE_ARRAY:
		return o, api.ErrNotSupported
	default:
		return o, api.ErrInvalidValue
	}
	if o.ptr == 0 {
		return o, api.ErrInvalidValue
	}
	o.pitch, o.rows = uint64(pitch), uint64(height)
	o.ptr += uint64(x) + uint64(y)*o.pitch + uint64(z)*o.rows*o.pitch
	return o, api.Success
}

// span is the bytes a host operand's box spans, or false when its geometry
// is impossible.
func (o operand) span(b interpose.Box) (uint64, bool) {
	if b.Height > 1 && o.pitch < b.Width || b.Depth > 1 && o.rows < b.Height {
		return 0, false
	}
	n := ((b.Depth-1)*o.rows+b.Height-1)*o.pitch + b.Width
	return n, n >= b.Width
}

func (o operand) pitched() api.Pitched { return api.Pitched{Ptr: o.ptr, Pitch: o.pitch, Rows: o.rows} }

func (o operand) host(b interpose.Box) (interpose.HostPitched, api.Result) {
	n, ok := o.span(b)
	if !ok {
		return interpose.HostPitched{}, api.ErrInvalidValue
	}
	return interpose.HostPitched{Mem: hostBytes(o.ptr, n), Pitch: o.pitch, Rows: o.rows}, api.Success
}

//export gfgo_memcpy3D
func gfgo_memcpy3D(dev C.int, c *C.CUDA_MEMCPY3D, sh C.uintptr_t, async, aligned C.int) C.CUresult {
	if live.Load() == nil {
		return res(api.ErrNotInitialized)
	}
	if c == nil || c.srcLOD != 0 || c.dstLOD != 0 || c.reserved0 != nil || c.reserved1 != nil {
		return res(api.ErrInvalidValue)
	}
	src, r := operandOf(c.srcMemoryType, unsafe.Pointer(c.srcHost), c.srcDevice, c.srcXInBytes, c.srcY, c.srcZ, c.srcPitch, c.srcHeight)
	if r != api.Success {
		return res(r)
	}
	dst, r := operandOf(c.dstMemoryType, c.dstHost, c.dstDevice, c.dstXInBytes, c.dstY, c.dstZ, c.dstPitch, c.dstHeight)
	if r != api.Success {
		return res(r)
	}
	b := interpose.Box{Width: uint64(c.WidthInBytes), Height: uint64(c.Height), Depth: uint64(c.Depth)}
	if b.Width == 0 || b.Height == 0 || b.Depth == 0 {
		return 0
	}
	target := dev
	switch {
	case dst.device:
		target = owner(dst.ptr, dev)
	case src.device:
		target = owner(src.ptr, dev)
	}
	d, r := device(target)
	if r != api.Success {
		return res(r)
	}
	if aligned != 0 {
		// cuMemcpy2D/3D refuse pitches past CU_DEVICE_ATTRIBUTE_MAX_PITCH;
		// cuMemcpy2DUnaligned does not.
		if limit, err := d.Attribute(api.AttrMaxPitch); err == nil && limit > 0 && (src.pitch > uint64(limit) || dst.pitch > uint64(limit)) {
			return res(api.ErrInvalidValue)
		}
	}
	st, r := callStream(d, sh, dev, async)
	if r != api.Success {
		return res(r)
	}
	wait := async == 0
	switch {
	case src.device && dst.device:
		return ret(st.Copy3DDtoD(dst.pitched(), src.pitched(), b, wait))
	case dst.device:
		h, r := src.host(b)
		if r != api.Success {
			return res(r)
		}
		return ret(st.Copy3DHtoD(dst.pitched(), h, b, wait))
	case src.device:
		h, r := dst.host(b)
		if r != api.Success {
			return res(r)
		}
		// Into pageable memory the copy is synchronous, as the driver's.
		return ret(st.Copy3DDtoH(h, src.pitched(), b, wait || hostMem.find(dst.ptr) == nil))
	default:
		hs, r := src.host(b)
		if r != api.Success {
			return res(r)
		}
		hd, r := dst.host(b)
		if r != api.Success {
			return res(r)
		}
		if async != 0 {
			if err := st.Synchronize(); err != nil {
				return ret(err)
			}
		}
		for z := range b.Depth {
			for y := range b.Height {
				so, do := (z*hs.Rows+y)*hs.Pitch, (z*hd.Rows+y)*hd.Pitch
				copy(hd.Mem[do:do+b.Width], hs.Mem[so:so+b.Width])
			}
		}
		return 0
	}
}

//export gfgo_memset2D
func gfgo_memset2D(dev C.int, dst C.CUdeviceptr, pitch C.size_t, value C.uint, elem C.int, width, height C.size_t, sh C.uintptr_t, async C.int) C.CUresult {
	if live.Load() == nil {
		return res(api.ErrNotInitialized)
	}
	if width == 0 || height == 0 {
		return 0
	}
	if height > 1 && uint64(pitch) < uint64(width)*uint64(elem) {
		return res(api.ErrInvalidValue) // rows would overlap: refused now, not latched
	}
	d, r := device(owner(uint64(dst), dev))
	if r != api.Success {
		return res(r)
	}
	st, r := callStream(d, sh, dev, async)
	if r != api.Success {
		return res(r)
	}
	// A memset does not synchronise with the host, as the driver's does
	// not, unless the range is not one we know: the server judges it now.
	wait := async == 0 && !within(uint64(dst), uint64(pitch)*uint64(height-1)+uint64(width)*uint64(elem))
	return ret(st.Memset2D(interpose.DevicePtr(dst), uint64(pitch), uint32(value), int(elem), uint64(width), uint64(height), wait))
}

// callStream is the stream a call runs on: the one given (sh, resolved
// against the current context's device dev) for an asynchronous call, d's
// default stream for a synchronous one.
func callStream(d *interpose.Device, sh C.uintptr_t, dev C.int, async C.int) (*interpose.Stream, api.Result) {
	if async == 0 {
		return d.DefaultStream(), api.Success
	}
	st, _, r := streamFor(sh, dev)
	return st, r
}

// ---- stream-ordered allocation ----
//
// cuMemAllocAsync allocates at once, with the same call as cuMemAlloc: the
// memory is the session's from the call on, which orders it before any
// work the stream runs after. cuMemFreeAsync is cuMemFree, which the
// server carries out once the work the session queued before it has run,
// on every stream, this one included. So both are charged to the share
// like any allocation, and a pool never holds memory back: reserved is
// used, and trimming has nothing to do.

// memPool is a memory pool: the default pool of each device, or one
// cuMemPoolCreate made, and the attributes the application set on it.
type memPool struct {
	dev                   int
	handle                uintptr // of a pool cuMemPoolCreate made; 0 for a default pool
	maxSize               uint64  // CUmemPoolProps.maxSize; 0: no limit
	followEvents          bool    // CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES
	opportunistic         bool    // CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC
	internalDeps          bool    // CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES
	releaseThreshold      uint64
	used, usedHigh        uint64
	reservedHighWatermark uint64
}

// CUmemPool_attribute values.
const (
	poolAttrFollowEvents     = 1
	poolAttrOpportunistic    = 2
	poolAttrInternalDeps     = 3
	poolAttrReleaseThreshold = 4
	poolAttrReservedCurrent  = 5
	poolAttrReservedHigh     = 6
	poolAttrUsedCurrent      = 7
	poolAttrUsedHigh         = 8
)

// pools are the devices' default pools, by ordinal, and current, the pool
// each device allocates from (cuDeviceSetMemPool). A pool's handle is
// (ordinal+1)<<4 | 0xD: never NULL, never a host pointer.
var pools struct {
	mu      sync.Mutex
	byDev   map[int]*memPool
	current map[int]*memPool
	created map[uintptr]*memPool // by handle: (n+1)<<20 | 0xD, never a default's
	made    uintptr
	sizes   map[uint64]poolAlloc // allocations made from a pool, by address
}

type poolAlloc struct {
	pool *memPool
	size uint64
}

const poolTag = 0xD

func poolHandle(p *memPool) uintptr {
	if p.handle != 0 {
		return p.handle
	}
	return uintptr(p.dev+1)<<4 | poolTag
}

// defaultPool returns dev's default pool; pools.mu must be held.
func defaultPool(dev int) *memPool {
	if pools.byDev == nil {
		pools.byDev, pools.current, pools.sizes = map[int]*memPool{}, map[int]*memPool{}, map[uint64]poolAlloc{}
		pools.created = map[uintptr]*memPool{}
	}
	p := pools.byDev[dev]
	if p == nil {
		p = &memPool{dev: dev, followEvents: true, opportunistic: true, internalDeps: true}
		pools.byDev[dev] = p
	}
	return p
}

// poolOf resolves a pool handle; pools.mu must be held.
func poolOf(h uintptr) *memPool {
	if h&0xF != poolTag {
		return nil
	}
	if h >= 1<<20 {
		defaultPool(0) // the maps
		return pools.created[h]
	}
	dev := int(h>>4) - 1
	if _, r := device(C.int(dev)); r != api.Success {
		return nil
	}
	return defaultPool(dev)
}

//export gfgo_memAllocAsync
func gfgo_memAllocAsync(ctx C.uintptr_t, dev C.int, dptr *C.CUdeviceptr, size C.size_t, pool, sh C.uintptr_t) C.CUresult {
	_, sdev, r := streamFor(sh, dev)
	if r != api.Success {
		return res(r)
	}
	pools.mu.Lock()
	var p *memPool
	if pool == 0 {
		if p = pools.current[sdev]; p == nil {
			p = defaultPool(sdev)
		}
	} else if p = poolOf(uintptr(pool)); p == nil {
		pools.mu.Unlock()
		return res(api.ErrInvalidValue)
	}
	if p.maxSize > 0 && p.used+uint64(size) > p.maxSize {
		pools.mu.Unlock()
		return res(api.ErrOutOfMemory)
	}
	pools.mu.Unlock()
	if rc := gfgo_memAlloc(ctx, C.int(p.dev), dptr, size); rc != 0 {
		return rc
	}
	pools.mu.Lock()
	pools.sizes[uint64(*dptr)] = poolAlloc{p, uint64(size)}
	p.used += uint64(size)
	p.usedHigh = max(p.usedHigh, p.used)
	p.reservedHighWatermark = max(p.reservedHighWatermark, p.used)
	pools.mu.Unlock()
	return 0
}

//export gfgo_memFreeAsync
func gfgo_memFreeAsync(dev C.int, ptr C.CUdeviceptr, sh C.uintptr_t) C.CUresult {
	if _, _, r := streamFor(sh, dev); r != api.Success {
		return res(r)
	}
	if ptr == 0 {
		return res(api.ErrInvalidValue)
	}
	return gfgo_memFree(ptr)
}

// poolOfAlloc is the handle of the pool an allocation came from, or 0.
func poolOfAlloc(base uint64) uintptr {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	if a, ok := pools.sizes[base]; ok {
		return poolHandle(a.pool)
	}
	return 0
}

// forgetPoolAlloc takes a freed allocation out of its pool's figures, if it
// came from one (cuMemFree may free what cuMemAllocAsync allocated).
func forgetPoolAlloc(ptr uint64) {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	if a, ok := pools.sizes[ptr]; ok {
		delete(pools.sizes, ptr)
		a.pool.used -= a.size
	}
}

//export gfgo_devicePool
func gfgo_devicePool(dev C.int, out *C.uintptr_t, current C.int) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	pools.mu.Lock()
	defer pools.mu.Unlock()
	p := defaultPool(int(dev))
	if c := pools.current[int(dev)]; current != 0 && c != nil {
		p = c
	}
	*out = C.uintptr_t(poolHandle(p))
	return 0
}

//export gfgo_deviceSetPool
func gfgo_deviceSetPool(dev C.int, h C.uintptr_t) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	pools.mu.Lock()
	defer pools.mu.Unlock()
	p := poolOf(uintptr(h))
	if p == nil || p.dev != int(dev) {
		return res(api.ErrInvalidValue)
	}
	pools.current[int(dev)] = p
	return 0
}

//export gfgo_poolAttribute
func gfgo_poolAttribute(h C.uintptr_t, attr C.int, value unsafe.Pointer, set C.int) C.CUresult {
	if value == nil {
		return res(api.ErrInvalidValue)
	}
	pools.mu.Lock()
	defer pools.mu.Unlock()
	p := poolOf(uintptr(h))
	if p == nil {
		return res(api.ErrInvalidValue)
	}
	flag := func(f *bool) {
		v := (*C.int)(value)
		if set != 0 {
			*f = *v != 0
		} else if *f {
			*v = 1
		} else {
			*v = 0
		}
	}
	u64 := (*C.cuuint64_t)(value)
	// The high watermarks may only be reset, to zero.
	reset := func(f *uint64, now uint64) api.Result {
		if set == 0 {
			*u64 = C.cuuint64_t(*f)
			return api.Success
		}
		if *u64 != 0 {
			return api.ErrInvalidValue
		}
		*f = now
		return api.Success
	}
	switch attr {
	case poolAttrFollowEvents:
		flag(&p.followEvents)
	case poolAttrOpportunistic:
		flag(&p.opportunistic)
	case poolAttrInternalDeps:
		flag(&p.internalDeps)
	case poolAttrReleaseThreshold:
		if set != 0 {
			p.releaseThreshold = uint64(*u64)
		} else {
			*u64 = C.cuuint64_t(p.releaseThreshold)
		}
	case poolAttrReservedCurrent, poolAttrUsedCurrent:
		if set != 0 {
			return res(api.ErrInvalidValue)
		}
		*u64 = C.cuuint64_t(p.used)
	case poolAttrReservedHigh:
		return res(reset(&p.reservedHighWatermark, p.used))
	case poolAttrUsedHigh:
		return res(reset(&p.usedHigh, p.used))
	default:
		return res(api.ErrInvalidValue)
	}
	return 0
}

//export gfgo_poolTrim
func gfgo_poolTrim(h C.uintptr_t, keep C.size_t) C.CUresult {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	if poolOf(uintptr(h)) == nil {
		return res(api.ErrInvalidValue)
	}
	return 0 // a pool holds no freed memory back: there is nothing to trim
}

//export gfgo_poolCreate
func gfgo_poolCreate(out *C.uintptr_t, props *C.CUmemPoolProps) C.CUresult {
	if out == nil || props == nil || props.allocType != allocTypePinned || props.location._type != locationTypeDevice {
		return res(api.ErrInvalidValue)
	}
	if _, r := device(props.location.id); r != api.Success {
		return res(api.ErrInvalidDevice)
	}
	if props.handleTypes != 0 {
		return res(api.ErrNotSupported) // pools shared between processes by file descriptor
	}
	pools.mu.Lock()
	defer pools.mu.Unlock()
	defaultPool(0) // the maps
	pools.made++
	p := &memPool{dev: int(props.location.id), handle: (pools.made+1)<<20 | poolTag, maxSize: uint64(props.maxSize),
		followEvents: true, opportunistic: true, internalDeps: true}
	pools.created[p.handle] = p
	*out = C.uintptr_t(p.handle)
	return 0
}

//export gfgo_poolDestroy
func gfgo_poolDestroy(h C.uintptr_t) C.CUresult {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	p := poolOf(uintptr(h))
	if p == nil || p.handle == 0 {
		return res(api.ErrInvalidValue) // unknown, or a device's default pool
	}
	delete(pools.created, p.handle)
	if pools.current[p.dev] == p {
		delete(pools.current, p.dev)
	}
	// Allocations still made from it stay valid until freed, as the
	// driver's do: they only leave its figures then.
	return 0
}
