package api

// Calls of the driver API's pitched and 2D/3D memory families
// (cuMemcpy2D/3D and their async forms, cuMemsetD2D*). cuMemAllocPitch
// needs no call of its own: the client picks the pitch and allocates
// pitch × height bytes with MemAlloc.

// MaxBoxRows bounds the rows (Height × Depth) of one Memcpy3D or
// Memset2D: each row is an operation on the server's stream, and one call
// must not queue millions. Clients split larger boxes.
const MaxBoxRows = 1 << 16

// Directions of Memcpy3D.
const (
	Copy3DHtoD uint8 = 1 // the frame's payload, packed rows, to Dst
	Copy3DDtoH uint8 = 2 // Src to the reply's payload, packed rows
	Copy3DDtoD uint8 = 3
)

// Pitched is a device operand of a strided call: the address of the box's
// first byte, the bytes from one row to the next (Pitch), and the rows from
// one slice to the next (Rows: CUDA_MEMCPY3D's srcHeight/dstHeight; unused
// when the box has one slice).
type Pitched struct {
	Ptr, Pitch, Rows uint64
}

// Memcpy3D copies a box of Width bytes × Height rows × Depth slices, in
// order on Stream. Host operands travel packed (Width × Height × Depth
// bytes, row after row): the client gathers and scatters its own pitched
// host memory, so the wire carries no gaps. The operand of Dst or Src that
// is host memory is zero.
type Memcpy3D struct {
	Kind                 uint8 // Copy3D*
	Dst, Src             Pitched
	Width, Height, Depth uint64
	Stream               Handle
}

// Memset2D sets Height rows of Width elements of ElemSize (1, 2 or 4)
// bytes, Pitch bytes apart, from Dst, to Value.
type Memset2D struct {
	Dst           uint64
	Pitch         uint64
	Value         uint32
	ElemSize      uint8
	Width, Height uint64
	Stream        Handle
}

func (p *Pitched) encode(e *Encoder) { e.U64(p.Ptr); e.U64(p.Pitch); e.U64(p.Rows) }
func (p *Pitched) decode(d *Decoder) { p.Ptr, p.Pitch, p.Rows = d.U64(), d.U64(), d.U64() }

func (*Memcpy3D) Op() Op { return OpMemcpy3D }
func (m *Memcpy3D) Encode(e *Encoder) {
	e.U8(m.Kind)
	m.Dst.encode(e)
	m.Src.encode(e)
	e.U64(m.Width)
	e.U64(m.Height)
	e.U64(m.Depth)
	e.U32(m.Stream)
}
func (m *Memcpy3D) Decode(d *Decoder) {
	m.Kind = d.U8()
	m.Dst.decode(d)
	m.Src.decode(d)
	m.Width, m.Height, m.Depth, m.Stream = d.U64(), d.U64(), d.U64(), d.U32()
}

func (*Memset2D) Op() Op { return OpMemset2D }
func (m *Memset2D) Encode(e *Encoder) {
	e.U64(m.Dst)
	e.U64(m.Pitch)
	e.U32(m.Value)
	e.U8(m.ElemSize)
	e.U64(m.Width)
	e.U64(m.Height)
	e.U32(m.Stream)
}
func (m *Memset2D) Decode(d *Decoder) {
	m.Dst, m.Pitch, m.Value, m.ElemSize = d.U64(), d.U64(), d.U32(), d.U8()
	m.Width, m.Height, m.Stream = d.U64(), d.U64(), d.U32()
}

// Virtual memory management (cuMemAddressReserve, cuMemCreate, cuMemMap and
// their inverses). Physical allocations get handles the client chooses, as
// streams do; what can fail for want of memory (MemCreate) or needs the
// server's answer (MemAddressReserve's address) is synchronous, the rest is
// sent without waiting.

// VMMGranularity is the granularity of reservations, physical allocations
// and mappings: CUDA's on current GPUs (cuMemGetAllocationGranularity), so
// that programs size their segments the same remotely.
const VMMGranularity = 2 << 20

// MemAddressReserve reserves Size bytes of device addresses on a session
// device, aligned to Align (0: the granularity). The reply is a
// MemAllocReply with the range's start.
type MemAddressReserve struct {
	Ordinal     uint32
	Size, Align uint64
}

// MemAddressFree frees a whole reservation; nothing may be mapped in it.
type MemAddressFree struct{ Ptr, Size uint64 }

// MemCreate allocates Size bytes of physical memory on a session device as
// Handle, charged to the session's share.
type MemCreate struct {
	Handle  Handle
	Ordinal uint32
	Size    uint64
}

// MemRelease releases the client's handle to physical memory; the memory
// is freed once no mapping uses it either.
type MemRelease struct{ Handle Handle }

// MemMap maps Size bytes of Handle's memory, from Offset, at Ptr, inside
// one of the session's reservations.
type MemMap struct {
	Ptr, Size, Offset uint64
	Handle            Handle
}

// MemUnmap unmaps the mappings that tile [Ptr, Ptr+Size).
type MemUnmap struct{ Ptr, Size uint64 }

func (*MemAddressReserve) Op() Op { return OpMemAddressReserve }
func (m *MemAddressReserve) Encode(e *Encoder) {
	e.U32(m.Ordinal)
	e.U64(m.Size)
	e.U64(m.Align)
}
func (m *MemAddressReserve) Decode(d *Decoder) {
	m.Ordinal, m.Size, m.Align = d.U32(), d.U64(), d.U64()
}

func (*MemAddressFree) Op() Op              { return OpMemAddressFree }
func (m *MemAddressFree) Encode(e *Encoder) { e.U64(m.Ptr); e.U64(m.Size) }
func (m *MemAddressFree) Decode(d *Decoder) { m.Ptr, m.Size = d.U64(), d.U64() }

func (*MemCreate) Op() Op { return OpMemCreate }
func (m *MemCreate) Encode(e *Encoder) {
	e.U32(m.Handle)
	e.U32(m.Ordinal)
	e.U64(m.Size)
}
func (m *MemCreate) Decode(d *Decoder) { m.Handle, m.Ordinal, m.Size = d.U32(), d.U32(), d.U64() }

func (*MemRelease) Op() Op              { return OpMemRelease }
func (m *MemRelease) Encode(e *Encoder) { e.U32(m.Handle) }
func (m *MemRelease) Decode(d *Decoder) { m.Handle = d.U32() }

func (*MemMap) Op() Op { return OpMemMap }
func (m *MemMap) Encode(e *Encoder) {
	e.U64(m.Ptr)
	e.U64(m.Size)
	e.U64(m.Offset)
	e.U32(m.Handle)
}
func (m *MemMap) Decode(d *Decoder) {
	m.Ptr, m.Size, m.Offset, m.Handle = d.U64(), d.U64(), d.U64(), d.U32()
}

func (*MemUnmap) Op() Op              { return OpMemUnmap }
func (m *MemUnmap) Encode(e *Encoder) { e.U64(m.Ptr); e.U64(m.Size) }
func (m *MemUnmap) Decode(d *Decoder) { m.Ptr, m.Size = d.U64(), d.U64() }

// MemcpyPeer copies Size bytes from Src on session device SrcOrdinal to Dst
// on DstOrdinal, devices of this server, in order on Stream, which is on
// one of the two (cuMemcpyPeer and its async form).
type MemcpyPeer struct {
	Dst, Src               uint64
	DstOrdinal, SrcOrdinal uint32
	Size                   uint64
	Stream                 Handle
}

func (*MemcpyPeer) Op() Op { return OpMemcpyPeer }
func (m *MemcpyPeer) Encode(e *Encoder) {
	e.U64(m.Dst)
	e.U64(m.Src)
	e.U32(m.DstOrdinal)
	e.U32(m.SrcOrdinal)
	e.U64(m.Size)
	e.U32(m.Stream)
}
func (m *MemcpyPeer) Decode(d *Decoder) {
	m.Dst, m.Src, m.DstOrdinal, m.SrcOrdinal, m.Size, m.Stream = d.U64(), d.U64(), d.U32(), d.U32(), d.U64(), d.U32()
}

// IPC between processes of one user (cuIpcGetMemHandle and the rest). A
// handle is 128 random bits the server chose and the server device the
// memory is on; only a session of the same user, holding that device, may
// open it.

// IpcGetMemHandle exports the allocation based at Ptr. The reply is an
// IpcMemHandle.
type IpcGetMemHandle struct{ Ptr uint64 }

// IpcMemHandle names exported memory.
type IpcMemHandle struct {
	Key    [16]byte
	Device uint32 // the server's device index
}

// IpcOpenMemHandle opens exported memory in this session. The reply is an
// IpcOpened.
type IpcOpenMemHandle struct{ Handle IpcMemHandle }

// IpcOpened is where opened memory is, and on which session device.
type IpcOpened struct {
	Ptr, Size uint64
	Ordinal   uint32
}

// IpcCloseMemHandle closes memory this session opened.
type IpcCloseMemHandle struct{ Ptr uint64 }

func (h *IpcMemHandle) encode(e *Encoder) {
	for _, b := range h.Key {
		e.U8(b)
	}
	e.U32(h.Device)
}
func (h *IpcMemHandle) decode(d *Decoder) {
	for i := range h.Key {
		h.Key[i] = d.U8()
	}
	h.Device = d.U32()
}

func (*IpcGetMemHandle) Op() Op              { return OpIpcGetMemHandle }
func (m *IpcGetMemHandle) Encode(e *Encoder) { e.U64(m.Ptr) }
func (m *IpcGetMemHandle) Decode(d *Decoder) { m.Ptr = d.U64() }

func (*IpcMemHandle) Op() Op              { return OpIpcGetMemHandle }
func (m *IpcMemHandle) Encode(e *Encoder) { m.encode(e) }
func (m *IpcMemHandle) Decode(d *Decoder) { m.decode(d) }

func (*IpcOpenMemHandle) Op() Op              { return OpIpcOpenMemHandle }
func (m *IpcOpenMemHandle) Encode(e *Encoder) { m.Handle.encode(e) }
func (m *IpcOpenMemHandle) Decode(d *Decoder) { m.Handle.decode(d) }

func (*IpcOpened) Op() Op { return OpIpcOpenMemHandle }
func (m *IpcOpened) Encode(e *Encoder) {
	e.U64(m.Ptr)
	e.U64(m.Size)
	e.U32(m.Ordinal)
}
func (m *IpcOpened) Decode(d *Decoder) { m.Ptr, m.Size, m.Ordinal = d.U64(), d.U64(), d.U32() }

func (*IpcCloseMemHandle) Op() Op              { return OpIpcCloseMemHandle }
func (m *IpcCloseMemHandle) Encode(e *Encoder) { e.U64(m.Ptr) }
func (m *IpcCloseMemHandle) Decode(d *Decoder) { m.Ptr = d.U64() }

// IpcGetEventHandle exports an event (created with CU_EVENT_INTERPROCESS).
// The reply is an IpcMemHandle naming it.
type IpcGetEventHandle struct{ Event Handle }

// IpcOpenEventHandle opens an exported event in this session as Event, a
// handle the client chose.
type IpcOpenEventHandle struct {
	Event  Handle
	Handle IpcMemHandle
}

func (*IpcGetEventHandle) Op() Op              { return OpIpcGetEventHandle }
func (m *IpcGetEventHandle) Encode(e *Encoder) { e.U32(m.Event) }
func (m *IpcGetEventHandle) Decode(d *Decoder) { m.Event = d.U32() }

func (*IpcOpenEventHandle) Op() Op { return OpIpcOpenEventHandle }
func (m *IpcOpenEventHandle) Encode(e *Encoder) {
	e.U32(m.Event)
	m.Handle.encode(e)
}
func (m *IpcOpenEventHandle) Decode(d *Decoder) {
	m.Event = d.U32()
	m.Handle.decode(d)
}
