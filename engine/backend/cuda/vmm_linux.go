//go:build cgo

package cuda

/*
#include "cuda_shim.h"
*/
import "C"

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Virtual memory management through the driver's own (cuMemAddressReserve,
// cuMemCreate, cuMemMap), in the device's primary context. Physical memory
// is cleared before anyone may map it, as Alloc clears allocations: the
// driver hands out memory as another tenant left it.

var _ backend.VirtualMemory = (*Device)(nil)

func vmmCheck(r C.int, format string, args ...any) error {
	if r == C.GF_MISSING {
		return api.Errorf(api.ErrNotSupported, "virtual memory management: the driver lacks it")
	}
	return check(res(r), format, args...)
}

// Reserve reserves device addresses.
func (d *Device) Reserve(size, align uint64) (backend.DevicePtr, error) {
	var p C.uint64_t
	r := C.gf_vmm_reserve(C.gf_handle(d.ctx), C.size_t(size), C.size_t(align), &p)
	if err := vmmCheck(r, "cuMemAddressReserve(%d bytes, align %d)", size, align); err != nil {
		return 0, err
	}
	return uint64(p), nil
}

// FreeReservation frees a reservation.
func (d *Device) FreeReservation(ptr backend.DevicePtr, size uint64) error {
	return vmmCheck(C.gf_vmm_free(C.gf_handle(d.ctx), C.uint64_t(ptr), C.size_t(size)), "cuMemAddressFree(%#x, %d)", ptr, size)
}

// physical is a CUmemGenericAllocationHandle.
type physical struct {
	d    *Device
	h    uint64
	size uint64
}

// CreatePhysical creates physical memory and clears it, through a mapping
// of its own that is gone before the memory is returned.
func (d *Device) CreatePhysical(size uint64) (backend.Physical, error) {
	var h C.uint64_t
	r := C.gf_vmm_create(C.gf_handle(d.ctx), C.int(d.dev), C.size_t(size), &h)
	if err := vmmCheck(r, "cuMemCreate(%d bytes)", size); err != nil {
		return nil, err
	}
	p := &physical{d: d, h: uint64(h), size: size}
	if err := d.clearPhysical(p); err != nil {
		p.Release()
		return nil, err
	}
	return p, nil
}

func (d *Device) clearPhysical(p *physical) error {
	va, err := d.Reserve(p.size, 0)
	if err != nil {
		return err
	}
	defer d.FreeReservation(va, p.size)
	if err := d.Map(va, p.size, p, 0); err != nil {
		return err
	}
	defer d.Unmap(va, p.size)
	return d.clear(va, p.size)
}

// Release releases the handle; the driver frees the memory once it is
// unmapped everywhere.
func (p *physical) Release() error {
	return vmmCheck(C.gf_vmm_release(C.gf_handle(p.d.ctx), C.uint64_t(p.h)), "cuMemRelease")
}

// Map maps physical memory and grants this device read-write access.
func (d *Device) Map(ptr backend.DevicePtr, size uint64, bp backend.Physical, offset uint64) error {
	p, ok := bp.(*physical)
	if !ok || p == nil || p.d != d {
		return api.Errorf(api.ErrInvalidHandle, "physical memory of another device or backend")
	}
	r := C.gf_vmm_map(C.gf_handle(d.ctx), C.int(d.dev), C.uint64_t(ptr), C.size_t(size), C.size_t(offset), C.uint64_t(p.h))
	return vmmCheck(r, "cuMemMap(%#x, %d bytes, offset %d)", ptr, size, offset)
}

// Unmap unmaps a mapping.
func (d *Device) Unmap(ptr backend.DevicePtr, size uint64) error {
	return vmmCheck(C.gf_vmm_unmap(C.gf_handle(d.ctx), C.uint64_t(ptr), C.size_t(size)), "cuMemUnmap(%#x, %d)", ptr, size)
}
