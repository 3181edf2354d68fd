package interpose

import "github.com/gpufabric/gpufabric/engine/api"

// Box is the extent of a strided copy: Width bytes × Height rows × Depth
// slices.
type Box struct{ Width, Height, Depth uint64 }

// HostPitched is a host operand of a strided copy: Mem starts at the box's
// first byte and covers it; rows are Pitch bytes apart and slices Rows rows
// apart.
type HostPitched struct {
	Mem         []byte
	Pitch, Rows uint64
}

// slab is a part of a box that one call carries: Depth slices from slice z,
// or, when the box is too large for one call, rows y .. y+Height of slice z.
type slab struct{ z, y, height, depth uint64 }

// slabs splits b into parts of at most api.MaxBoxRows rows and maxBytes
// packed bytes; rows wider than maxBytes do not come here.
func slabs(b Box, maxBytes int) []slab {
	rows := b.Height * b.Depth
	if rows <= api.MaxBoxRows && rows*b.Width <= uint64(maxBytes) {
		return []slab{{0, 0, b.Height, b.Depth}}
	}
	per := max(1, min(uint64(maxBytes)/max(b.Width, 1), api.MaxBoxRows))
	var out []slab
	for z := range b.Depth {
		for y := uint64(0); y < b.Height; y += per {
			out = append(out, slab{z, y, min(per, b.Height-y), 1})
		}
	}
	return out
}

// at is the device operand of slab sl of p.
func (sl slab) at(p api.Pitched) api.Pitched {
	return api.Pitched{Ptr: rowAt(p, sl.z, sl.y), Pitch: p.Pitch, Rows: p.Rows}
}

// rowAt is the address of row y of slice z of a device operand.
func rowAt(p api.Pitched, z, y uint64) uint64 { return p.Ptr + (z*p.Rows+y)*p.Pitch }

// eachRow calls fn for every row of b, slice after slice, until it fails.
func eachRow(b Box, fn func(z, y uint64) error) error {
	for z := range b.Depth {
		for y := range b.Height {
			if err := fn(z, y); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostOffset is the offset of row y of slice z in a host operand.
func (h HostPitched) offset(z, y uint64) uint64 { return (z*h.Rows + y) * h.Pitch }

// check reports a host operand too small for b.
func (h HostPitched) check(b Box) error {
	if b.Width == 0 || b.Height == 0 || b.Depth == 0 {
		return nil
	}
	if (b.Height > 1 && h.Pitch < b.Width) || (b.Depth > 1 && h.Rows < b.Height) {
		return api.Errorf(api.ErrInvalidValue, "host pitch %d, height %d for a box of %d×%d", h.Pitch, h.Rows, b.Width, b.Height)
	}
	if end := h.offset(b.Depth-1, b.Height-1) + b.Width; end > uint64(len(h.Mem)) {
		return api.Errorf(api.ErrInvalidValue, "host operand of %d bytes for a box that spans %d", len(h.Mem), end)
	}
	return nil
}

// Copy3DDtoD copies box b between device operands on st; wait makes it
// return when the copy has run.
func (st *Stream) Copy3DDtoD(dst, src api.Pitched, b Box, wait bool) error {
	s := st.d.s
	var waits []*pending
	for _, sl := range slabs(b, s.opts.ChunkSize) {
		req := &api.Memcpy3D{Kind: api.Copy3DDtoD, Dst: sl.at(dst), Src: sl.at(src), Width: b.Width, Height: sl.height, Depth: sl.depth, Stream: st.h}
		if err := st.issue(req, nil, nil, wait, &waits); err != nil {
			return err
		}
	}
	return s.waitAll(waits)
}

// Copy3DHtoD copies box b of host memory to a device operand on st. It
// returns once src has been taken, or, with wait, once the copy has run.
func (st *Stream) Copy3DHtoD(dst api.Pitched, src HostPitched, b Box, wait bool) error {
	if err := src.check(b); err != nil {
		return err
	}
	s := st.d.s
	if b.Width > uint64(s.opts.ChunkSize) {
		// Rows wider than a chunk go as plain copies, which are split in
		// chunks: one message per row would pass the frame limits.
		return eachRow(b, func(z, y uint64) error {
			off := src.offset(z, y)
			return st.copyHtoD(DevicePtr(rowAt(dst, z, y)), src.Mem[off:off+b.Width], wait)
		})
	}
	var waits []*pending
	for _, sl := range slabs(b, s.opts.ChunkSize) {
		packed := make([]byte, 0, sl.height*sl.depth*b.Width)
		for z := range sl.depth {
			for y := range sl.height {
				off := src.offset(sl.z+z, sl.y+y)
				packed = append(packed, src.Mem[off:off+b.Width]...)
			}
		}
		req := &api.Memcpy3D{Kind: api.Copy3DHtoD, Dst: sl.at(dst), Width: b.Width, Height: sl.height, Depth: sl.depth, Stream: st.h}
		if err := st.issue(req, packed, nil, wait, &waits); err != nil {
			return err
		}
	}
	return s.waitAll(waits)
}

// Copy3DDtoH copies box b of a device operand into host memory. Without
// wait, a copy into rows laid end to end (dst.Pitch == b.Width, one slice
// or dst.Rows == b.Height) lands once the stream is synchronised; any other
// waits, since its rows are scattered from the reply when it arrives.
func (st *Stream) Copy3DDtoH(dst HostPitched, src api.Pitched, b Box, wait bool) error {
	if err := dst.check(b); err != nil {
		return err
	}
	s := st.d.s
	if b.Width > uint64(s.opts.ChunkSize) {
		return eachRow(b, func(z, y uint64) error {
			off := dst.offset(z, y)
			return st.copyDtoH(dst.Mem[off:off+b.Width], DevicePtr(rowAt(src, z, y)), true)
		})
	}
	var waits []*pending
	for _, sl := range slabs(b, s.opts.ChunkSize) {
		n := sl.height * sl.depth * b.Width
		off := dst.offset(sl.z, sl.y)
		contiguous := dst.Pitch == b.Width && (sl.depth == 1 || dst.Rows == sl.height)
		into := dst.Mem[off : off+n : off+n]
		if !contiguous {
			into = make([]byte, n)
		}
		req := &api.Memcpy3D{Kind: api.Copy3DDtoH, Src: sl.at(src), Width: b.Width, Height: sl.height, Depth: sl.depth, Stream: st.h}
		p, err := s.start(req, &pending{into: into, async: !wait && contiguous}, nil)
		if err != nil {
			return err
		}
		if wait || !contiguous {
			if err := s.wait(p); err != nil {
				return err
			}
		}
		if !contiguous {
			for z := range sl.depth {
				for y := range sl.height {
					o := dst.offset(sl.z+z, sl.y+y)
					i := (z*sl.height + y) * b.Width
					copy(dst.Mem[o:o+b.Width], into[i:i+b.Width])
				}
			}
		}
	}
	return s.waitAll(waits)
}

// Memset2D sets height rows of width elements of elemSize bytes, pitch
// apart, from dst; wait makes it return when the memset has run.
func (st *Stream) Memset2D(dst DevicePtr, pitch uint64, value uint32, elemSize int, width, height uint64, wait bool) error {
	s := st.d.s
	var waits []*pending
	for y := uint64(0); y < height || y == 0; y += api.MaxBoxRows {
		req := &api.Memset2D{Dst: uint64(dst) + y*pitch, Pitch: pitch, Value: value, ElemSize: uint8(elemSize), Width: width, Height: min(height-y, api.MaxBoxRows), Stream: st.h}
		if err := st.issue(req, nil, nil, wait, &waits); err != nil {
			return err
		}
		if height == 0 {
			break
		}
	}
	return s.waitAll(waits)
}

// issue sends req, without a reply unless wait asks for one (added to waits).
func (st *Stream) issue(req api.Message, payload, into []byte, wait bool, waits *[]*pending) error {
	s := st.d.s
	if !wait {
		return s.send(req, payload)
	}
	p, err := s.start(req, &pending{into: into}, payload)
	if err != nil {
		return err
	}
	*waits = append(*waits, p)
	return nil
}

// Reserve reserves size bytes of device addresses aligned to align (0: the
// granularity), as cuMemAddressReserve does. Nothing is mapped there yet.
func (d *Device) Reserve(size, align uint64) (DevicePtr, error) {
	var r api.MemAllocReply
	err := d.s.call(&api.MemAddressReserve{Ordinal: d.ordinal, Size: size, Align: align}, &r, nil, nil)
	return DevicePtr(r.Ptr), err
}

// FreeReservation frees a whole reservation once the work queued before it
// is done. It does not wait.
func (d *Device) FreeReservation(ptr DevicePtr, size uint64) error {
	return d.s.send(&api.MemAddressFree{Ptr: uint64(ptr), Size: size}, nil)
}

// Physical is physical device memory (cuMemCreate), charged to the
// session's share until it is released and unmapped everywhere.
type Physical struct {
	d    *Device
	h    api.Handle
	size uint64
}

// CreatePhysical allocates size bytes of physical memory, waiting for the
// server's verdict: running out of the share is the answer a caller needs
// at once, as cuMemCreate gives it.
func (d *Device) CreatePhysical(size uint64) (*Physical, error) {
	p := &Physical{d: d, h: d.s.newHandle(), size: size}
	if err := d.s.call(&api.MemCreate{Handle: p.h, Ordinal: d.ordinal, Size: size}, nil, nil, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Size is the physical allocation's size.
func (p *Physical) Size() uint64 { return p.size }

// Device is the device the memory is on.
func (p *Physical) Device() *Device { return p.d }

// Map maps size bytes of the memory, from offset, at ptr inside one of the
// session's reservations. It does not wait: a failure comes back from the
// next synchronising call.
func (p *Physical) Map(ptr DevicePtr, size, offset uint64) error {
	return p.d.s.send(&api.MemMap{Ptr: uint64(ptr), Size: size, Offset: offset, Handle: p.h}, nil)
}

// Release gives up the handle; mappings keep the memory until unmapped.
func (p *Physical) Release() error { return p.d.s.send(&api.MemRelease{Handle: p.h}, nil) }

// Unmap unmaps the whole mappings that tile [ptr, ptr+size), once the work
// queued before it is done. It does not wait.
func (d *Device) Unmap(ptr DevicePtr, size uint64) error {
	return d.s.send(&api.MemUnmap{Ptr: uint64(ptr), Size: size}, nil)
}

// Handle is the physical memory's handle in the session.
func (p *Physical) Handle() api.Handle { return p.h }

// CopyPeer copies n bytes from src on device srcDev to dst on dstDev, in
// order on st, which is on one of them; wait makes it return when the copy
// has run. Devices of one server copy on it; devices of different servers
// copy through this client (across.go), in order on st and on the other
// device's default stream, and the call returns when the copy has run,
// whatever wait says.
func (st *Stream) CopyPeer(dst DevicePtr, dstDev *Device, src DevicePtr, srcDev *Device, n uint64, wait bool) error {
	if dstDev.s != srcDev.s {
		srcSt, dstSt := srcDev.def, dstDev.def
		switch st.d {
		case srcDev:
			srcSt = st
		case dstDev:
			dstSt = st
		default:
			// A stream of a third device: the copy follows its work.
			if err := st.Synchronize(); err != nil {
				return err
			}
		}
		return copyAcross(dst, dstSt, src, srcSt, n)
	}
	req := &api.MemcpyPeer{Dst: uint64(dst), Src: uint64(src), DstOrdinal: dstDev.ordinal, SrcOrdinal: srcDev.ordinal, Size: n, Stream: st.h}
	var waits []*pending
	if err := st.issue(req, nil, nil, wait, &waits); err != nil {
		return err
	}
	return st.d.s.waitAll(waits)
}

// IpcHandle exports the allocation based at ptr to processes of the same
// user on the server (cuIpcGetMemHandle).
func (d *Device) IpcHandle(ptr DevicePtr) (api.IpcMemHandle, error) {
	var r api.IpcMemHandle
	err := d.s.call(&api.IpcGetMemHandle{Ptr: uint64(ptr)}, &r, nil, nil)
	return r, err
}

// IpcOpen opens memory another session exported (cuIpcOpenMemHandle): its
// address, its size, and the session's ordinal of the device it is on.
func (s *Session) IpcOpen(h api.IpcMemHandle) (DevicePtr, uint64, int, error) {
	var r api.IpcOpened
	err := s.call(&api.IpcOpenMemHandle{Handle: h}, &r, nil, nil)
	return DevicePtr(r.Ptr), r.Size, int(r.Ordinal), err
}

// IpcClose closes memory IpcOpen opened, once the work queued before it is
// done. It does not wait.
func (s *Session) IpcClose(ptr DevicePtr) error {
	return s.send(&api.IpcCloseMemHandle{Ptr: uint64(ptr)}, nil)
}

// IpcEventHandle exports an event created with CU_EVENT_INTERPROCESS.
func (ev *Event) IpcEventHandle() (api.IpcMemHandle, error) {
	var r api.IpcMemHandle
	err := ev.d.s.call(&api.IpcGetEventHandle{Event: ev.h}, &r, nil, nil)
	return r, err
}

// IpcOpenEvent opens an event another session exported, on this session's
// device d (the one the event is on).
func (d *Device) IpcOpenEvent(h api.IpcMemHandle) (*Event, error) {
	ev := &Event{d: d, h: d.s.newHandle()}
	if err := d.s.call(&api.IpcOpenEventHandle{Event: ev.h, Handle: h}, nil, nil, nil); err != nil {
		return nil, err
	}
	return ev, nil
}
