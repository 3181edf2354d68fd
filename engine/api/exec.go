package api

// The execution calls: captured graphs, which travel once and replay in one
// message; stream memory operations; host functions, which run in the
// client when the stream reaches them; and JIT linking.

// GraphNode kinds: the operations a stream capture records.
const (
	NodeLaunch    uint8 = 1 // a kernel launch
	NodeMemset    uint8 = 2 // a memset of 1-, 2- or 4-byte elements
	NodeCopy      uint8 = 3 // a device-to-device copy
	NodeWrite     uint8 = 4 // cuStreamWriteValue: Size (4 or 8) bytes of Value at Dst
	NodeWaitValue uint8 = 5 // cuStreamWaitValue: see StreamWaitValue
)

// MaxGraphNodes bounds the nodes of one graph.
const MaxGraphNodes = 1 << 16

// GraphNode is one operation of a graph, in the graph's order. Which fields
// mean something depends on Kind: a launch uses Function, Grid, Block,
// SharedMem and Params; a memset Dst, Value, ElemSize and Count; a copy
// Dst, Src and Count (bytes); a write Dst, Value64 and ElemSize (4 or 8); a
// value wait Dst, Value64, ElemSize (4 or 8) and Flags.
type GraphNode struct {
	Kind      uint8
	Function  Handle
	Grid      [3]uint32
	Block     [3]uint32
	SharedMem uint32
	Params    []byte
	Dst, Src  uint64
	Value     uint32
	Value64   uint64
	ElemSize  uint8
	Count     uint64
	Flags     uint32
}

// GraphCreate makes an executable graph (client-chosen handle) on a session
// device from the nodes a stream capture recorded. The server checks every
// node's handles when it creates the graph, and the memory they name each
// time it launches it, as it checks the calls they stand for.
type GraphCreate struct {
	Graph   Handle
	Ordinal uint32
	Nodes   []GraphNode
}

// GraphLaunch queues a graph's nodes, in order, on Stream.
type GraphLaunch struct{ Graph, Stream Handle }

// GraphDestroy destroys a graph; launches already queued still run.
type GraphDestroy struct{ Graph Handle }

// Comparisons of StreamWaitValue, as CU_STREAM_WAIT_VALUE_*.
const (
	WaitGEQ = 0x0 // (int32)(*addr - value) >= 0, as the driver wraps it
	WaitEQ  = 0x1
	WaitAND = 0x2 // (*addr & value) != 0
	WaitNOR = 0x3 // ~(*addr | value) != 0
	// WaitFlush asks for remote writes to be flushed; it adds nothing to
	// a comparison here.
	WaitFlush = 1 << 30
)

// WaitSatisfied is the driver's comparison of a waited size-byte (4 or 8)
// word v with value under cmp (Wait*, without WaitFlush).
func WaitSatisfied(cmp uint32, v, value uint64, size int) bool {
	if size == 4 {
		v, value = uint64(uint32(v)), uint64(uint32(value))
	}
	switch cmp {
	case WaitGEQ: // wrapping, as the driver compares sequence numbers
		if size == 4 {
			return int32(uint32(v)-uint32(value)) >= 0
		}
		return int64(v-value) >= 0
	case WaitEQ:
		return v == value
	case WaitAND:
		return v&value != 0
	case WaitNOR:
		m := ^(v | value)
		if size == 4 {
			m = uint64(uint32(m))
		}
		return m != 0
	}
	return false
}

// StreamWaitValue makes later work on Stream wait until the Size-byte (4 or
// 8) word at Ptr compares with Value as Flags says.
type StreamWaitValue struct {
	Stream Handle
	Ptr    uint64
	Value  uint64
	Size   uint8
	Flags  uint32
}

// StreamWriteValue writes the Size-byte (4 or 8) Value at Ptr when Stream
// reaches it.
type StreamWriteValue struct {
	Stream Handle
	Ptr    uint64
	Value  uint64
	Size   uint8
	Flags  uint32
}

// HostFunc asks to be answered when Stream reaches this point, and makes
// later work on Stream wait until the client says (HostFuncDone with the
// same Marker) that the host function it runs there has returned. The
// reply's status is the stream's failure before that point, if any.
type HostFunc struct {
	Stream Handle
	Marker uint32
}

// HostFuncDone releases the stream held at Marker.
type HostFuncDone struct{ Marker uint32 }

func (*GraphCreate) Op() Op { return OpGraphCreate }
func (m *GraphCreate) Encode(e *Encoder) {
	e.U32(m.Graph)
	e.U32(m.Ordinal)
	e.U32(uint32(len(m.Nodes)))
	for i := range m.Nodes {
		n := &m.Nodes[i]
		e.U8(n.Kind)
		switch n.Kind {
		case NodeLaunch:
			e.U32(n.Function)
			for _, v := range n.Grid {
				e.U32(v)
			}
			for _, v := range n.Block {
				e.U32(v)
			}
			e.U32(n.SharedMem)
			e.Blob(n.Params)
		case NodeMemset:
			e.U64(n.Dst)
			e.U32(n.Value)
			e.U8(n.ElemSize)
			e.U64(n.Count)
		case NodeCopy:
			e.U64(n.Dst)
			e.U64(n.Src)
			e.U64(n.Count)
		case NodeWrite, NodeWaitValue:
			e.U64(n.Dst)
			e.U64(n.Value64)
			e.U8(n.ElemSize)
			e.U32(n.Flags)
		}
	}
}
func (m *GraphCreate) Decode(d *Decoder) {
	m.Graph, m.Ordinal = d.U32(), d.U32()
	n := d.Count(1)
	if n > MaxGraphNodes {
		d.err = malformedf("graph of %d nodes; the limit is %d", n, MaxGraphNodes)
		return
	}
	m.Nodes = make([]GraphNode, n)
	for i := range m.Nodes {
		g := &m.Nodes[i]
		g.Kind = d.U8()
		switch g.Kind {
		case NodeLaunch:
			g.Function = d.U32()
			for j := range g.Grid {
				g.Grid[j] = d.U32()
			}
			for j := range g.Block {
				g.Block[j] = d.U32()
			}
			g.SharedMem = d.U32()
			g.Params = d.Blob()
		case NodeMemset:
			g.Dst, g.Value, g.ElemSize, g.Count = d.U64(), d.U32(), d.U8(), d.U64()
		case NodeCopy:
			g.Dst, g.Src, g.Count = d.U64(), d.U64(), d.U64()
		case NodeWrite, NodeWaitValue:
			g.Dst, g.Value64, g.ElemSize, g.Flags = d.U64(), d.U64(), d.U8(), d.U32()
		default:
			if d.err == nil {
				d.err = malformedf("graph node of kind %d", g.Kind)
			}
			return
		}
	}
}

func (*GraphLaunch) Op() Op               { return OpGraphLaunch }
func (m *GraphLaunch) Encode(e *Encoder)  { e.U32(m.Graph); e.U32(m.Stream) }
func (m *GraphLaunch) Decode(d *Decoder)  { m.Graph, m.Stream = d.U32(), d.U32() }
func (*GraphDestroy) Op() Op              { return OpGraphDestroy }
func (m *GraphDestroy) Encode(e *Encoder) { e.U32(m.Graph) }
func (m *GraphDestroy) Decode(d *Decoder) { m.Graph = d.U32() }

func (*StreamWaitValue) Op() Op { return OpStreamWaitValue }
func (m *StreamWaitValue) Encode(e *Encoder) {
	e.U32(m.Stream)
	e.U64(m.Ptr)
	e.U64(m.Value)
	e.U8(m.Size)
	e.U32(m.Flags)
}
func (m *StreamWaitValue) Decode(d *Decoder) {
	m.Stream, m.Ptr, m.Value, m.Size, m.Flags = d.U32(), d.U64(), d.U64(), d.U8(), d.U32()
}

func (*HostFunc) Op() Op                  { return OpHostFunc }
func (m *HostFunc) Encode(e *Encoder)     { e.U32(m.Stream); e.U32(m.Marker) }
func (m *HostFunc) Decode(d *Decoder)     { m.Stream, m.Marker = d.U32(), d.U32() }
func (*HostFuncDone) Op() Op              { return OpHostFuncDone }
func (m *HostFuncDone) Encode(e *Encoder) { e.U32(m.Marker) }
func (m *HostFuncDone) Decode(d *Decoder) { m.Marker = d.U32() }

func (*StreamWriteValue) Op() Op { return OpStreamWriteValue }
func (m *StreamWriteValue) Encode(e *Encoder) {
	e.U32(m.Stream)
	e.U64(m.Ptr)
	e.U64(m.Value)
	e.U8(m.Size)
	e.U32(m.Flags)
}
func (m *StreamWriteValue) Decode(d *Decoder) {
	m.Stream, m.Ptr, m.Value, m.Size, m.Flags = d.U32(), d.U64(), d.U64(), d.U8(), d.U32()
}

// JIT link input types, as CUjitInputType.
const (
	LinkCubin   uint8 = 0
	LinkPTX     uint8 = 1
	LinkFatbin  uint8 = 2
	LinkObject  uint8 = 3
	LinkLibrary uint8 = 4
)

// MaxLinkInputs bounds the inputs of one Link.
const MaxLinkInputs = 1024

// LinkInput describes one input of a Link: its type, its name (for the
// linker's messages) and its size; the bytes travel in the frame payload.
type LinkInput struct {
	Type uint8
	Name string
	Size uint64
}

// Link links Inputs, whose bytes are the frame payload back to back, into
// one image for the device Ordinal, which the reply's payload carries: the
// image cuLinkComplete returns and cuModuleLoadData loads.
type Link struct {
	Ordinal uint32
	Inputs  []LinkInput
}

func (*Link) Op() Op { return OpLink }
func (m *Link) Encode(e *Encoder) {
	e.U32(m.Ordinal)
	e.U32(uint32(len(m.Inputs)))
	for _, in := range m.Inputs {
		e.U8(in.Type)
		e.String(in.Name)
		e.U64(in.Size)
	}
}
func (m *Link) Decode(d *Decoder) {
	m.Ordinal = d.U32()
	n := d.Count(11)
	if n > MaxLinkInputs {
		d.err = malformedf("link of %d inputs; the limit is %d", n, MaxLinkInputs)
		return
	}
	m.Inputs = make([]LinkInput, n)
	for i := range m.Inputs {
		m.Inputs[i] = LinkInput{Type: d.U8(), Name: d.String(), Size: d.U64()}
	}
}

// FuncAttrCount bounds the CUfunction_attribute values FuncAttributes
// carries (CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0 through
// CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6 and a few after).
const FuncAttrCount = 16

// FuncAttributes asks what the device says of a function's resources: its
// CUfunction_attribute values, which occupancy is computed from.
type FuncAttributes struct{ Function Handle }

// FuncAttributeValues answers FuncAttributes: Values[a] is attribute a,
// -1 where the device cannot say.
type FuncAttributeValues struct{ Values []int32 }

func (*FuncAttributes) Op() Op              { return OpFuncAttributes }
func (m *FuncAttributes) Encode(e *Encoder) { e.U32(m.Function) }
func (m *FuncAttributes) Decode(d *Decoder) { m.Function = d.U32() }

func (*FuncAttributeValues) Op() Op { return OpFuncAttributes }
func (m *FuncAttributeValues) Encode(e *Encoder) {
	e.U32(uint32(len(m.Values)))
	for _, v := range m.Values {
		e.I32(v)
	}
}
func (m *FuncAttributeValues) Decode(d *Decoder) {
	n := d.Count(4)
	if n > FuncAttrCount {
		d.err = malformedf("%d function attributes; the limit is %d", n, FuncAttrCount)
		return
	}
	m.Values = make([]int32, n)
	for i := range m.Values {
		m.Values[i] = d.I32()
	}
}
