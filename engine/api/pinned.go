package api

// Pinned host memory the server reads in place. Over shared memory the
// client allocates page-locked memory (cuMemAllocHost, cuMemHostAlloc) in a
// region of its own, a sealed memfd, and hands the file to the server over
// the transport's socket (see transport/shm): PinnedMap then asks the
// server to map it. A copy between such memory and the device names the
// region and a range of it instead of carrying the bytes: the server's one
// copy is from its mapping into device memory, or out of device memory into
// it.

// PinnedMap maps the client's region Region, of Size bytes, whose file the
// client has just passed over the connection's socket. Region ids are the
// client's and name regions of its own session only.
type PinnedMap struct {
	Region uint32
	Size   uint64
}

// PinnedUnmap unmaps region Region. It is answered once the work the
// session had queued before it, which may read or write the region, has
// run: after the answer the server no longer touches the memory.
type PinnedUnmap struct{ Region uint32 }

// MemcpyHtoDPinned copies Size bytes at Offset in region Region to device
// address Dst, in order on Stream. The server reads the region when the
// stream reaches the copy, as the driver reads page-locked memory: the
// client must not change the range until the copy is done.
type MemcpyHtoDPinned struct {
	Dst    uint64
	Region uint32
	Offset uint64
	Size   uint64
	Stream Handle
}

// MemcpyDtoHPinned copies Size bytes from device address Src to Offset in
// region Region, in order on Stream. The reply carries no payload: the
// bytes are in the region once the copy is answered (or, sent async, once
// the stream is synchronised).
type MemcpyDtoHPinned struct {
	Src    uint64
	Region uint32
	Offset uint64
	Size   uint64
	Stream Handle
}

func (*PinnedMap) Op() Op              { return OpPinnedMap }
func (m *PinnedMap) Encode(e *Encoder) { e.U32(m.Region); e.U64(m.Size) }
func (m *PinnedMap) Decode(d *Decoder) { m.Region, m.Size = d.U32(), d.U64() }

func (*PinnedUnmap) Op() Op              { return OpPinnedUnmap }
func (m *PinnedUnmap) Encode(e *Encoder) { e.U32(m.Region) }
func (m *PinnedUnmap) Decode(d *Decoder) { m.Region = d.U32() }

func (*MemcpyHtoDPinned) Op() Op { return OpMemcpyHtoDPinned }
func (m *MemcpyHtoDPinned) Encode(e *Encoder) {
	e.U64(m.Dst)
	e.U32(m.Region)
	e.U64(m.Offset)
	e.U64(m.Size)
	e.U32(m.Stream)
}
func (m *MemcpyHtoDPinned) Decode(d *Decoder) {
	m.Dst, m.Region, m.Offset, m.Size, m.Stream = d.U64(), d.U32(), d.U64(), d.U64(), d.U32()
}

func (*MemcpyDtoHPinned) Op() Op { return OpMemcpyDtoHPinned }
func (m *MemcpyDtoHPinned) Encode(e *Encoder) {
	e.U64(m.Src)
	e.U32(m.Region)
	e.U64(m.Offset)
	e.U64(m.Size)
	e.U32(m.Stream)
}
func (m *MemcpyDtoHPinned) Decode(d *Decoder) {
	m.Src, m.Region, m.Offset, m.Size, m.Stream = d.U64(), d.U32(), d.U64(), d.U64(), d.U32()
}
