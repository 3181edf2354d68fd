package host

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Virtual memory management. The arena reserves, past the device's memory,
// a span of addresses twice its size (costing nothing: it is reserved with
// MAP_NORESERVE, like the rest) from which cuMemAddressReserve's ranges are
// cut, so that kernels reach mapped memory exactly as they reach any other.
// Physical memory is a memfd, mapped over the span with MAP_FIXED | MAP_SHARED:
// two mappings of one allocation alias, as on a GPU. Unmapping maps fresh
// anonymous memory back, which reads as zeros.

// virtualSpan is the addresses reserved for VMM past a device's memory.
func virtualSpan(memory uint64) uint64 {
	if !vmmSupported {
		return 0
	}
	// Within the device's terabyte of addresses, past its memory.
	span := min(2*memory, 1<<40-memory)
	return span &^ (api.VMMGranularity - 1)
}

var _ backend.VirtualMemory = (*Device)(nil)

// vaAllocator returns the allocator of the VMM span, made on first use;
// d.mu must be held.
func (d *Device) vaAllocator() (*allocator, uint64, error) {
	start := (d.alloc.size + api.VMMGranularity - 1) &^ (api.VMMGranularity - 1)
	if d.va == nil {
		if !vmmSupported || uint64(len(d.arena)) <= start {
			return nil, 0, api.Errorf(api.ErrNotSupported, "virtual memory management on %s: not on this system", d.info.Name)
		}
		d.va = newAllocator(uint64(len(d.arena)) - start)
	}
	return d.va, start, nil
}

// Reserve cuts a range from the VMM span. The allocator aligns to 512
// bytes; a larger alignment is had by asking for more and keeping an
// aligned part, which the reservation's base then names.
func (d *Device) Reserve(size, align uint64) (backend.DevicePtr, error) {
	align = max(align, api.VMMGranularity)
	if size == 0 || size%api.VMMGranularity != 0 || align&(align-1) != 0 {
		return 0, api.Errorf(api.ErrInvalidValue, "reservation of %d bytes aligned to %d", size, align)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	va, start, err := d.vaAllocator()
	if err != nil {
		return 0, err
	}
	// The span starts on a granularity boundary of device addresses (the
	// arena's base is aligned to a terabyte), so aligned offsets are
	// aligned addresses once start is added.
	off, ok := va.getAligned(size, align)
	if !ok {
		return 0, api.Errorf(api.ErrOutOfMemory, "no %d bytes of device addresses left to reserve on %s", size, d.info.Name)
	}
	return d.base + start + off, nil
}

// FreeReservation gives a reservation's addresses back.
func (d *Device) FreeReservation(ptr backend.DevicePtr, size uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	va, start, err := d.vaAllocator()
	if err != nil {
		return err
	}
	if ptr < d.base+start || va.putExact(ptr-d.base-start, size) == 0 {
		return api.Errorf(api.ErrInvalidValue, "%#x+%d is not a reservation", ptr, size)
	}
	return nil
}

// CreatePhysical makes physical memory.
func (d *Device) CreatePhysical(size uint64) (backend.Physical, error) {
	if size == 0 || size%api.VMMGranularity != 0 {
		return nil, api.Errorf(api.ErrInvalidValue, "physical allocation of %d bytes", size)
	}
	p, err := newPhysical(size)
	if err != nil {
		return nil, err // not a typed nil
	}
	return p, nil
}

// Map maps physical memory into the span.
func (d *Device) Map(ptr backend.DevicePtr, size uint64, bp backend.Physical, offset uint64) error {
	p, ok := bp.(*physical)
	if !ok || p == nil {
		return api.Errorf(api.ErrInvalidHandle, "physical memory of another backend")
	}
	if offset+size < offset || offset+size > p.size {
		return api.Errorf(api.ErrInvalidValue, "mapping of %d bytes from %d of a %d-byte allocation", size, offset, p.size)
	}
	b, err := d.spanBytes(ptr, size)
	if err != nil {
		return err
	}
	return p.mapAt(b, offset)
}

// Unmap puts fresh anonymous memory back over a mapping.
func (d *Device) Unmap(ptr backend.DevicePtr, size uint64) error {
	b, err := d.spanBytes(ptr, size)
	if err != nil {
		return err
	}
	return unmapFixed(b)
}

// spanBytes is the arena behind a range of the VMM span.
func (d *Device) spanBytes(ptr backend.DevicePtr, size uint64) ([]byte, error) {
	start := (d.alloc.size + api.VMMGranularity - 1) &^ (api.VMMGranularity - 1)
	if ptr < d.base+start || ptr%api.VMMGranularity != 0 || size%api.VMMGranularity != 0 {
		return nil, api.Errorf(api.ErrInvalidValue, "%#x+%d is not a range of reserved addresses", ptr, size)
	}
	return d.bytes(ptr, size)
}

// getAligned allocates n bytes at an offset that is a multiple of align
// (a power of two, at least allocAlign), by taking n+align-allocAlign and
// giving back what precedes and follows the aligned part.
func (a *allocator) getAligned(n, align uint64) (uint64, bool) {
	if align <= allocAlign {
		return a.get(n)
	}
	want := n + align - allocAlign
	if want < n {
		return 0, false
	}
	off, ok := a.get(want)
	if !ok {
		return 0, false
	}
	a.put(off)
	aligned := (off + align - 1) &^ (align - 1)
	// Take exactly [aligned, aligned+n) out of the free extent that holds it.
	if !a.take(aligned, n) {
		return 0, false
	}
	return aligned, true
}

// take allocates exactly [off, off+n) if it is free.
func (a *allocator) take(off, n uint64) bool {
	for i, e := range a.free {
		if off < e.off || off+n > e.off+e.size {
			continue
		}
		var rest []extent
		if off > e.off {
			rest = append(rest, extent{e.off, off - e.off})
		}
		if end := e.off + e.size; off+n < end {
			rest = append(rest, extent{off + n, end - off - n})
		}
		a.free = append(a.free[:i], append(rest, a.free[i+1:]...)...)
		a.alloc[off] = n
		a.used += n
		return true
	}
	return false
}

// putExact frees the allocation at off if its size is n.
func (a *allocator) putExact(off, n uint64) uint64 {
	if a.alloc[off] != n {
		return 0
	}
	return a.put(off)
}
