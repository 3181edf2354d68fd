package backend

// VirtualMemory is implemented by devices that can map physical memory into
// reserved ranges of device addresses, as CUDA's virtual memory management
// does (cuMemAddressReserve, cuMemCreate, cuMemMap). The engine checks every
// range against the session's reservations and mappings before it calls;
// sizes and offsets are multiples of api.VMMGranularity. Methods are called
// from the shard.
type VirtualMemory interface {
	// Reserve reserves size bytes of device addresses aligned to align (a
	// power of two, at least the granularity). Nothing is mapped there.
	Reserve(size, align uint64) (DevicePtr, error)
	// FreeReservation frees a reservation Reserve returned, whole. Nothing
	// is mapped in it.
	FreeReservation(ptr DevicePtr, size uint64) error
	// CreatePhysical allocates size bytes of physical memory. It reads as
	// zeros (never another tenant's bytes), and belongs to no address
	// until mapped.
	CreatePhysical(size uint64) (Physical, error)
	// Map maps size bytes of p, from offset, at ptr, a range inside a
	// reservation where nothing is mapped. The same physical memory may be
	// mapped at several places; they alias.
	Map(ptr DevicePtr, size uint64, p Physical, offset uint64) error
	// Unmap unmaps [ptr, ptr+size), a range Map mapped. The engine calls it
	// only once no queued work can touch the range.
	Unmap(ptr DevicePtr, size uint64) error
}

// Physical is physical memory of a VirtualMemory device.
type Physical interface {
	// Release frees the memory once it is unmapped everywhere; mappings
	// that remain keep it until they are unmapped.
	Release() error
}

// PeerCopier is implemented by streams that can copy between two devices
// of one server in their own order, as cuMemcpyPeerAsync does. The stream
// is on one of the two devices; the engine has checked both ranges.
type PeerCopier interface {
	CopyPeer(dst DevicePtr, dstDev Device, src DevicePtr, srcDev Device, n uint64) error
}

// StridedStream is implemented by streams that copy or set the rows of a
// pitched 2D slice of device memory as one operation (as cuMemcpy2DAsync
// and cuMemsetD2D*Async do), where the engine would otherwise queue one
// per row. Rows are width bytes, pitch bytes apart; the engine has checked
// the whole slice.
type StridedStream interface {
	// CopyDtoD2D copies rows between device operands.
	CopyDtoD2D(dst DevicePtr, dstPitch uint64, src DevicePtr, srcPitch uint64, width, rows uint64) error
	// Memset2D sets rows of count elements of elemSize bytes to value.
	Memset2D(dst DevicePtr, pitch uint64, value uint32, elemSize int, count, rows uint64) error
}

// StridedHostStream is StridedStream for copies with host memory, whose
// rows are packed: row after row, no gaps.
type StridedHostStream interface {
	// CopyHtoD2D copies rows packed in src to dst. done is as CopyHtoD's.
	CopyHtoD2D(dst DevicePtr, pitch uint64, src []byte, width uint64, done func()) error
	// CopyDtoH2D reads rows from src and passes them to sink packed, in
	// consecutive pieces, as CopyDtoH does.
	CopyDtoH2D(src DevicePtr, pitch, width, rows uint64, sink func(off uint64, b []byte) error) error
}
