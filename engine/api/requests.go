package api

// Handles name objects inside a session. Streams, events, modules and
// functions get handles the client chooses, so creating one needs no reply.
// Handles at or above DefaultStreamBase are reserved: DefaultStream(d) is the
// session's default stream on its device ordinal d, which always exists.
type Handle = uint32

// DefaultStreamBase is the first reserved handle.
const DefaultStreamBase Handle = 0x8000_0000

// DefaultStream is the handle of the session's default stream on device
// ordinal d (CUDA's NULL stream).
func DefaultStream(ordinal uint32) Handle { return DefaultStreamBase | ordinal }

// Hello opens a connection: who the client is, and what it can prove.
type Hello struct {
	Magic   uint32
	Version uint16
	Client  string // free text: user@host/pid, for logs and smi
	Token   string // must match the server's, when it has one
	BootID  string // the client host's boot id, for transport selection
}

// HelloReply answers Hello.
type HelloReply struct {
	Server  string
	Version uint16
	BootID  string
	Devices uint32 // devices the server has
	Session uint64 // the session's id, as smi and the logs show it
	// Offers are the transports the server listens on, as
	// "transport:address" (for example "shm:@gpufabric-7000"), for a client
	// that wants to measure them and move to the best.
	Offers []string
	// BulkKey lets a second connection of this client join the session as
	// its bulk lane (JoinBulk); only the session's own client learns it.
	BulkKey string
}

// JoinBulk is the first and only call on a connection that becomes the bulk
// lane of an open session: afterwards it carries only the payloads of
// frames marked FlagBulkPayload on the session's connection, in order.
type JoinBulk struct {
	Session uint64
	Key     string // the session's HelloReply.BulkKey
}

// Goodbye tells the server the client is leaving. The server answers it
// once everything the session held is released (its queued work dropped,
// its memory freed, its shares returned), so a client that saw the answer
// knows the next smi or Attach sees the capacity free.
type Goodbye struct{}

// Ping does nothing and answers at once: the floor of a synchronous call.
type Ping struct{}

// Echo sends its frame payload back in the reply's: the bandwidth probe of
// transport selection.
type Echo struct{}

// MaxEcho bounds an Echo's payload.
const MaxEcho = 16 << 20

// Describe tells the server how the client chose this connection's
// transport and what it measured, for the server's logs and smi.
type Describe struct{ Selection string }

// ServerStatus asks for the server's state (devices, sessions, what each
// holds). The reply's frame payload is a JSON document.
type ServerStatus struct{}

// Attach adds a device to the session with a share of its memory: a
// fraction in millionths, or a size in bytes when Bytes is not zero.
type Attach struct {
	Device          int32 // server device index; -1 picks the one with most room
	ShareMillionths uint32
	ShareBytes      uint64
}

// AttachReply gives the attached device's ordinal within the session and
// the memory quota the session holds on it.
type AttachReply struct {
	Ordinal    uint32
	Device     uint32
	QuotaBytes uint64
}

// DeviceGet asks for the description of a session device.
type DeviceGet struct{ Ordinal uint32 }

// DeviceInfo describes a device as the session sees it: TotalMem is the
// session's quota, not the card's.
type DeviceInfo struct {
	Name          string
	UUID          [16]byte
	TotalMem      uint64
	DriverVersion int32
	// Attrs is the device's attribute snapshot, indexed by CUdevice_attribute.
	Attrs []int32
	// AddrLow and AddrHigh bound the addresses the device hands out,
	// [AddrLow, AddrHigh); both 0 when the server cannot say.
	AddrLow, AddrHigh uint64
}

// MemGetInfo asks for the free and total memory of a session device.
type MemGetInfo struct{ Ordinal uint32 }

// MemInfo answers MemGetInfo, both figures bounded by the session's share.
type MemInfo struct{ Free, Total uint64 }

// CtxSynchronize waits for all of the session's work on a device.
type CtxSynchronize struct{ Ordinal uint32 }

// MemAlloc allocates device memory on a session device.
type MemAlloc struct {
	Ordinal uint32
	Size    uint64
}

// MemAllocReply gives the allocation's device address.
type MemAllocReply struct{ Ptr uint64 }

// MemFree frees an allocation by its base address.
type MemFree struct{ Ptr uint64 }

// MemcpyHtoD copies the frame's payload to device address Dst, in order on
// Stream.
type MemcpyHtoD struct {
	Dst    uint64
	Stream Handle
}

// MemcpyDtoH copies Size bytes from device address Src; the reply's frame
// payload holds them.
type MemcpyDtoH struct {
	Src    uint64
	Size   uint64
	Stream Handle
}

// MemcpyDtoD copies Size bytes between device addresses.
type MemcpyDtoD struct {
	Dst, Src uint64
	Size     uint64
	Stream   Handle
}

// Memset fills Count elements of ElemSize (1, 2 or 4) bytes at Dst with Value.
type Memset struct {
	Dst      uint64
	Value    uint32
	ElemSize uint8
	Count    uint64
	Stream   Handle
}

// ModuleLoad loads the module image in the frame's payload (PTX text, cubin
// or fatbin) on a session device as Module.
type ModuleLoad struct {
	Module  Handle
	Ordinal uint32
}

// ModuleUnload unloads a module and its functions.
type ModuleUnload struct{ Module Handle }

// ModuleGetFunction binds Function to the kernel Name of Module.
type ModuleGetFunction struct {
	Module, Function Handle
	Name             string
}

// Param is one kernel parameter's place in the packed parameter buffer.
type Param struct{ Offset, Size uint32 }

// FunctionInfo gives a kernel's parameter layout, which the client needs to
// pack the arguments of a launch.
type FunctionInfo struct{ Params []Param }

// ModuleGetGlobal asks for the address and size of a module global.
type ModuleGetGlobal struct {
	Module Handle
	Name   string
}

// GlobalInfo answers ModuleGetGlobal.
type GlobalInfo struct{ Ptr, Size uint64 }

// LaunchKernel launches Function on Stream. Params is the packed parameter
// buffer laid out as FunctionInfo said.
type LaunchKernel struct {
	Function  Handle
	Stream    Handle
	Grid      [3]uint32
	Block     [3]uint32
	SharedMem uint32
	Params    []byte
}

// StreamCreate creates Stream on a session device.
type StreamCreate struct {
	Stream   Handle
	Ordinal  uint32
	Flags    uint32
	Priority int32
}

// StreamDestroy destroys a stream once its work is done.
type StreamDestroy struct{ Stream Handle }

// StreamSynchronize waits for a stream's work.
type StreamSynchronize struct{ Stream Handle }

// StreamQuery asks whether a stream's work is done (Success) or not
// (ErrNotReady).
type StreamQuery struct{ Stream Handle }

// StreamWaitEvent makes later work on Stream wait for Event's last record.
type StreamWaitEvent struct {
	Stream, Event Handle
	Flags         uint32
}

// EventCreate creates Event on a session device.
type EventCreate struct {
	Event   Handle
	Ordinal uint32
	Flags   uint32
}

// EventRecord records Event on Stream.
type EventRecord struct{ Event, Stream Handle }

// EventSynchronize waits for an event's last record.
type EventSynchronize struct{ Event Handle }

// EventQuery asks whether an event's last record has completed.
type EventQuery struct{ Event Handle }

// EventElapsedTime asks for the time between two completed events.
type EventElapsedTime struct{ Start, End Handle }

// ElapsedTime answers EventElapsedTime in milliseconds, as cuEventElapsedTime does.
type ElapsedTime struct{ Milliseconds float32 }

// EventDestroy destroys an event.
type EventDestroy struct{ Event Handle }

func (*Hello) Op() Op { return OpHello }
func (m *Hello) Encode(e *Encoder) {
	e.U32(m.Magic)
	e.U16(m.Version)
	e.String(m.Client)
	e.String(m.Token)
	e.String(m.BootID)
}
func (m *Hello) Decode(d *Decoder) {
	m.Magic, m.Version = d.U32(), d.U16()
	m.Client, m.Token, m.BootID = d.String(), d.String(), d.String()
}

func (*HelloReply) Op() Op { return OpHello }
func (m *HelloReply) Encode(e *Encoder) {
	e.String(m.Server)
	e.U16(m.Version)
	e.String(m.BootID)
	e.U32(m.Devices)
	e.U64(m.Session)
	e.U32(uint32(len(m.Offers)))
	for _, o := range m.Offers {
		e.String(o)
	}
	e.String(m.BulkKey)
}
func (m *HelloReply) Decode(d *Decoder) {
	m.Server, m.Version, m.BootID = d.String(), d.U16(), d.String()
	m.Devices, m.Session = d.U32(), d.U64()
	if n := d.Count(2); n > 0 {
		m.Offers = make([]string, n)
		for i := range m.Offers {
			m.Offers[i] = d.String()
		}
	}
	m.BulkKey = d.String()
}

func (*JoinBulk) Op() Op { return OpJoinBulk }
func (m *JoinBulk) Encode(e *Encoder) {
	e.U64(m.Session)
	e.String(m.Key)
}
func (m *JoinBulk) Decode(d *Decoder) { m.Session, m.Key = d.U64(), d.String() }

func (*Goodbye) Op() Op          { return OpGoodbye }
func (*Goodbye) Encode(*Encoder) {}
func (*Goodbye) Decode(*Decoder) {}
func (*Ping) Op() Op             { return OpPing }
func (*Ping) Encode(*Encoder)    {}
func (*Ping) Decode(*Decoder)    {}
func (*Echo) Op() Op             { return OpEcho }
func (*Echo) Encode(*Encoder)    {}
func (*Echo) Decode(*Decoder)    {}

func (*Describe) Op() Op              { return OpDescribe }
func (m *Describe) Encode(e *Encoder) { e.String(m.Selection) }
func (m *Describe) Decode(d *Decoder) { m.Selection = d.String() }

func (*ServerStatus) Op() Op          { return OpServerStatus }
func (*ServerStatus) Encode(*Encoder) {}
func (*ServerStatus) Decode(*Decoder) {}

func (*Attach) Op() Op { return OpAttach }
func (m *Attach) Encode(e *Encoder) {
	e.I32(m.Device)
	e.U32(m.ShareMillionths)
	e.U64(m.ShareBytes)
}
func (m *Attach) Decode(d *Decoder) {
	m.Device, m.ShareMillionths, m.ShareBytes = d.I32(), d.U32(), d.U64()
}

func (*AttachReply) Op() Op { return OpAttach }
func (m *AttachReply) Encode(e *Encoder) {
	e.U32(m.Ordinal)
	e.U32(m.Device)
	e.U64(m.QuotaBytes)
}
func (m *AttachReply) Decode(d *Decoder) {
	m.Ordinal, m.Device, m.QuotaBytes = d.U32(), d.U32(), d.U64()
}

func (*DeviceGet) Op() Op              { return OpDeviceGet }
func (m *DeviceGet) Encode(e *Encoder) { e.U32(m.Ordinal) }
func (m *DeviceGet) Decode(d *Decoder) { m.Ordinal = d.U32() }

func (*DeviceInfo) Op() Op { return OpDeviceGet }
func (m *DeviceInfo) Encode(e *Encoder) {
	e.String(m.Name)
	e.buf = append(e.buf, m.UUID[:]...)
	e.U64(m.TotalMem)
	e.I32(m.DriverVersion)
	e.U32(uint32(len(m.Attrs)))
	for _, a := range m.Attrs {
		e.I32(a)
	}
	e.U64(m.AddrLow)
	e.U64(m.AddrHigh)
}
func (m *DeviceInfo) Decode(d *Decoder) {
	m.Name = d.String()
	copy(m.UUID[:], d.take(16))
	m.TotalMem, m.DriverVersion = d.U64(), d.I32()
	n := d.Count(4)
	m.Attrs = make([]int32, n)
	for i := range m.Attrs {
		m.Attrs[i] = d.I32()
	}
	m.AddrLow, m.AddrHigh = d.U64(), d.U64()
}

func (*MemGetInfo) Op() Op              { return OpMemGetInfo }
func (m *MemGetInfo) Encode(e *Encoder) { e.U32(m.Ordinal) }
func (m *MemGetInfo) Decode(d *Decoder) { m.Ordinal = d.U32() }

func (*MemInfo) Op() Op              { return OpMemGetInfo }
func (m *MemInfo) Encode(e *Encoder) { e.U64(m.Free); e.U64(m.Total) }
func (m *MemInfo) Decode(d *Decoder) { m.Free, m.Total = d.U64(), d.U64() }

func (*CtxSynchronize) Op() Op              { return OpCtxSynchronize }
func (m *CtxSynchronize) Encode(e *Encoder) { e.U32(m.Ordinal) }
func (m *CtxSynchronize) Decode(d *Decoder) { m.Ordinal = d.U32() }

func (*MemAlloc) Op() Op              { return OpMemAlloc }
func (m *MemAlloc) Encode(e *Encoder) { e.U32(m.Ordinal); e.U64(m.Size) }
func (m *MemAlloc) Decode(d *Decoder) { m.Ordinal, m.Size = d.U32(), d.U64() }

func (*MemAllocReply) Op() Op              { return OpMemAlloc }
func (m *MemAllocReply) Encode(e *Encoder) { e.U64(m.Ptr) }
func (m *MemAllocReply) Decode(d *Decoder) { m.Ptr = d.U64() }

func (*MemFree) Op() Op              { return OpMemFree }
func (m *MemFree) Encode(e *Encoder) { e.U64(m.Ptr) }
func (m *MemFree) Decode(d *Decoder) { m.Ptr = d.U64() }

func (*MemcpyHtoD) Op() Op              { return OpMemcpyHtoD }
func (m *MemcpyHtoD) Encode(e *Encoder) { e.U64(m.Dst); e.U32(m.Stream) }
func (m *MemcpyHtoD) Decode(d *Decoder) { m.Dst, m.Stream = d.U64(), d.U32() }

func (*MemcpyDtoH) Op() Op { return OpMemcpyDtoH }
func (m *MemcpyDtoH) Encode(e *Encoder) {
	e.U64(m.Src)
	e.U64(m.Size)
	e.U32(m.Stream)
}
func (m *MemcpyDtoH) Decode(d *Decoder) { m.Src, m.Size, m.Stream = d.U64(), d.U64(), d.U32() }

func (*MemcpyDtoD) Op() Op { return OpMemcpyDtoD }
func (m *MemcpyDtoD) Encode(e *Encoder) {
	e.U64(m.Dst)
	e.U64(m.Src)
	e.U64(m.Size)
	e.U32(m.Stream)
}
func (m *MemcpyDtoD) Decode(d *Decoder) {
	m.Dst, m.Src, m.Size, m.Stream = d.U64(), d.U64(), d.U64(), d.U32()
}

func (*Memset) Op() Op { return OpMemset }
func (m *Memset) Encode(e *Encoder) {
	e.U64(m.Dst)
	e.U32(m.Value)
	e.U8(m.ElemSize)
	e.U64(m.Count)
	e.U32(m.Stream)
}
func (m *Memset) Decode(d *Decoder) {
	m.Dst, m.Value, m.ElemSize, m.Count, m.Stream = d.U64(), d.U32(), d.U8(), d.U64(), d.U32()
}

func (*ModuleLoad) Op() Op              { return OpModuleLoad }
func (m *ModuleLoad) Encode(e *Encoder) { e.U32(m.Module); e.U32(m.Ordinal) }
func (m *ModuleLoad) Decode(d *Decoder) { m.Module, m.Ordinal = d.U32(), d.U32() }

func (*ModuleUnload) Op() Op              { return OpModuleUnload }
func (m *ModuleUnload) Encode(e *Encoder) { e.U32(m.Module) }
func (m *ModuleUnload) Decode(d *Decoder) { m.Module = d.U32() }

func (*ModuleGetFunction) Op() Op { return OpModuleGetFunction }
func (m *ModuleGetFunction) Encode(e *Encoder) {
	e.U32(m.Module)
	e.U32(m.Function)
	e.String(m.Name)
}
func (m *ModuleGetFunction) Decode(d *Decoder) {
	m.Module, m.Function, m.Name = d.U32(), d.U32(), d.String()
}

func (*FunctionInfo) Op() Op { return OpModuleGetFunction }
func (m *FunctionInfo) Encode(e *Encoder) {
	e.U32(uint32(len(m.Params)))
	for _, p := range m.Params {
		e.U32(p.Offset)
		e.U32(p.Size)
	}
}
func (m *FunctionInfo) Decode(d *Decoder) {
	m.Params = make([]Param, d.Count(8))
	for i := range m.Params {
		m.Params[i] = Param{Offset: d.U32(), Size: d.U32()}
	}
}

func (*ModuleGetGlobal) Op() Op              { return OpModuleGetGlobal }
func (m *ModuleGetGlobal) Encode(e *Encoder) { e.U32(m.Module); e.String(m.Name) }
func (m *ModuleGetGlobal) Decode(d *Decoder) { m.Module, m.Name = d.U32(), d.String() }

func (*GlobalInfo) Op() Op              { return OpModuleGetGlobal }
func (m *GlobalInfo) Encode(e *Encoder) { e.U64(m.Ptr); e.U64(m.Size) }
func (m *GlobalInfo) Decode(d *Decoder) { m.Ptr, m.Size = d.U64(), d.U64() }

func (*LaunchKernel) Op() Op { return OpLaunchKernel }
func (m *LaunchKernel) Encode(e *Encoder) {
	e.U32(m.Function)
	e.U32(m.Stream)
	for _, v := range m.Grid {
		e.U32(v)
	}
	for _, v := range m.Block {
		e.U32(v)
	}
	e.U32(m.SharedMem)
	e.Blob(m.Params)
}
func (m *LaunchKernel) Decode(d *Decoder) {
	m.Function, m.Stream = d.U32(), d.U32()
	for i := range m.Grid {
		m.Grid[i] = d.U32()
	}
	for i := range m.Block {
		m.Block[i] = d.U32()
	}
	m.SharedMem = d.U32()
	m.Params = d.Blob()
}

func (*StreamCreate) Op() Op { return OpStreamCreate }
func (m *StreamCreate) Encode(e *Encoder) {
	e.U32(m.Stream)
	e.U32(m.Ordinal)
	e.U32(m.Flags)
	e.I32(m.Priority)
}
func (m *StreamCreate) Decode(d *Decoder) {
	m.Stream, m.Ordinal, m.Flags, m.Priority = d.U32(), d.U32(), d.U32(), d.I32()
}

func (*StreamDestroy) Op() Op                  { return OpStreamDestroy }
func (m *StreamDestroy) Encode(e *Encoder)     { e.U32(m.Stream) }
func (m *StreamDestroy) Decode(d *Decoder)     { m.Stream = d.U32() }
func (*StreamSynchronize) Op() Op              { return OpStreamSynchronize }
func (m *StreamSynchronize) Encode(e *Encoder) { e.U32(m.Stream) }
func (m *StreamSynchronize) Decode(d *Decoder) { m.Stream = d.U32() }
func (*StreamQuery) Op() Op                    { return OpStreamQuery }
func (m *StreamQuery) Encode(e *Encoder)       { e.U32(m.Stream) }
func (m *StreamQuery) Decode(d *Decoder)       { m.Stream = d.U32() }

func (*StreamWaitEvent) Op() Op { return OpStreamWaitEvent }
func (m *StreamWaitEvent) Encode(e *Encoder) {
	e.U32(m.Stream)
	e.U32(m.Event)
	e.U32(m.Flags)
}
func (m *StreamWaitEvent) Decode(d *Decoder) { m.Stream, m.Event, m.Flags = d.U32(), d.U32(), d.U32() }

func (*EventCreate) Op() Op { return OpEventCreate }
func (m *EventCreate) Encode(e *Encoder) {
	e.U32(m.Event)
	e.U32(m.Ordinal)
	e.U32(m.Flags)
}
func (m *EventCreate) Decode(d *Decoder) { m.Event, m.Ordinal, m.Flags = d.U32(), d.U32(), d.U32() }

func (*EventRecord) Op() Op                   { return OpEventRecord }
func (m *EventRecord) Encode(e *Encoder)      { e.U32(m.Event); e.U32(m.Stream) }
func (m *EventRecord) Decode(d *Decoder)      { m.Event, m.Stream = d.U32(), d.U32() }
func (*EventSynchronize) Op() Op              { return OpEventSynchronize }
func (m *EventSynchronize) Encode(e *Encoder) { e.U32(m.Event) }
func (m *EventSynchronize) Decode(d *Decoder) { m.Event = d.U32() }
func (*EventQuery) Op() Op                    { return OpEventQuery }
func (m *EventQuery) Encode(e *Encoder)       { e.U32(m.Event) }
func (m *EventQuery) Decode(d *Decoder)       { m.Event = d.U32() }
func (*EventElapsedTime) Op() Op              { return OpEventElapsedTime }
func (m *EventElapsedTime) Encode(e *Encoder) { e.U32(m.Start); e.U32(m.End) }
func (m *EventElapsedTime) Decode(d *Decoder) { m.Start, m.End = d.U32(), d.U32() }
func (*ElapsedTime) Op() Op                   { return OpEventElapsedTime }
func (m *ElapsedTime) Encode(e *Encoder)      { e.F32(m.Milliseconds) }
func (m *ElapsedTime) Decode(d *Decoder)      { m.Milliseconds = d.F32() }
func (*EventDestroy) Op() Op                  { return OpEventDestroy }
func (m *EventDestroy) Encode(e *Encoder)     { e.U32(m.Event) }
func (m *EventDestroy) Decode(d *Decoder)     { m.Event = d.U32() }
