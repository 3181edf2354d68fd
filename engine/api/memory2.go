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

// newMemoryRequest is NewRequest for the calls of this file.
func newMemoryRequest(op Op) Message {
	switch op {
	case OpMemcpy3D:
		return new(Memcpy3D)
	case OpMemset2D:
		return new(Memset2D)
	}
	return nil
}
