package interpose

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
)

// DevicePtr is a device address.
type DevicePtr uint64

// Share is how much of a device a session holds: a fraction of its memory,
// or a size in bytes.
type Share struct {
	Fraction float64
	Bytes    uint64
}

// AnyDevice asks Attach for the device with the most unshared memory.
const AnyDevice = -1

// Device is a device attached to the session.
type Device struct {
	s       *Session
	ordinal uint32
	index   uint32 // the server's device index
	quota   uint64
	info    api.DeviceInfo
	def     *Stream
}

// Attach adds the server's device index (or AnyDevice) to the session with
// the given share.
func (s *Session) Attach(index int, share Share) (*Device, error) {
	req := &api.Attach{Device: int32(index), ShareBytes: share.Bytes}
	if share.Bytes == 0 {
		if share.Fraction <= 0 || share.Fraction > 1 || math.IsNaN(share.Fraction) {
			return nil, api.Errorf(api.ErrInvalidValue, "share fraction %g is outside (0, 1]", share.Fraction)
		}
		req.ShareMillionths = uint32(math.Round(share.Fraction * 1e6))
	}
	var r api.AttachReply
	if err := s.call(req, &r, nil, nil); err != nil {
		return nil, err
	}
	d := &Device{s: s, ordinal: r.Ordinal, index: r.Device, quota: r.QuotaBytes}
	d.def = &Stream{d: d, h: api.DefaultStream(r.Ordinal)}
	if err := s.call(&api.DeviceGet{Ordinal: r.Ordinal}, &d.info, nil, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.devices = append(s.devices, d)
	s.mu.Unlock()
	return d, nil
}

// Devices are the session's devices, by ordinal.
func (s *Session) Devices() []*Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Device(nil), s.devices...)
}

// Info is the device as the session sees it (TotalMem is the share),
// snapshotted at Attach.
func (d *Device) Info() api.DeviceInfo { return d.info }

// Ordinal is the device's index within the session.
func (d *Device) Ordinal() int { return int(d.ordinal) }

// ServerIndex is the device's index on the server.
func (d *Device) ServerIndex() int { return int(d.index) }

// Quota is the session's share of the device's memory, in bytes.
func (d *Device) Quota() uint64 { return d.quota }

// Attribute returns a CUdevice_attribute from the snapshot.
func (d *Device) Attribute(attr int) (int32, error) {
	if attr <= 0 || attr >= len(d.info.Attrs) {
		return 0, api.Errorf(api.ErrInvalidValue, "device attribute %d", attr)
	}
	return d.info.Attrs[attr], nil
}

// MemGetInfo reports free and total memory within the session's share.
func (d *Device) MemGetInfo() (free, total uint64, err error) {
	var r api.MemInfo
	err = d.s.call(&api.MemGetInfo{Ordinal: d.ordinal}, &r, nil, nil)
	return r.Free, r.Total, err
}

// Synchronize waits for all of the session's work on the device.
func (d *Device) Synchronize() error {
	return d.s.syncCall(&api.CtxSynchronize{Ordinal: d.ordinal}, nil)
}

// Alloc allocates device memory.
func (d *Device) Alloc(size uint64) (DevicePtr, error) {
	var r api.MemAllocReply
	err := d.s.call(&api.MemAlloc{Ordinal: d.ordinal, Size: size}, &r, nil, nil)
	return DevicePtr(r.Ptr), err
}

// Free frees an allocation once the work queued before it is done. It does
// not wait; a failure comes back from the next synchronising call.
func (d *Device) Free(ptr DevicePtr) error {
	return d.s.send(&api.MemFree{Ptr: uint64(ptr)}, nil)
}

// DefaultStream is the device's NULL stream.
func (d *Device) DefaultStream() *Stream { return d.def }

// CopyHtoD copies src to dst and returns when the copy has completed.
func (d *Device) CopyHtoD(dst DevicePtr, src []byte) error { return d.def.copyHtoD(dst, src, true) }

// CopyDtoH copies len(dst) bytes from src and returns when they are in dst.
func (d *Device) CopyDtoH(dst []byte, src DevicePtr) error { return d.def.copyDtoH(dst, src, true) }

// CopyDtoD copies n bytes between device addresses and waits for it.
func (d *Device) CopyDtoD(dst, src DevicePtr, n uint64) error {
	return d.s.call(&api.MemcpyDtoD{Dst: uint64(dst), Src: uint64(src), Size: n, Stream: d.def.h}, nil, nil, nil)
}

// Memset sets count elements of elemSize (1, 2 or 4) bytes at dst to value
// and waits for it.
func (d *Device) Memset(dst DevicePtr, value uint32, elemSize int, count uint64) error {
	return d.s.call(&api.Memset{Dst: uint64(dst), Value: value, ElemSize: uint8(elemSize), Count: count, Stream: d.def.h}, nil, nil, nil)
}

// NewStream creates a stream. It does not wait: a failure comes back from
// the stream's first synchronising call.
func (d *Device) NewStream(flags uint32, priority int32) (*Stream, error) {
	st := &Stream{d: d, h: d.s.newHandle()}
	err := d.s.send(&api.StreamCreate{Stream: st.h, Ordinal: d.ordinal, Flags: flags, Priority: priority}, nil)
	return st, err
}

// Event flags, as CUDA's CU_EVENT_*.
const (
	EventDefault       = 0x0
	EventBlockingSync  = 0x1
	EventDisableTiming = 0x2
)

// NewEvent creates an event without waiting.
func (d *Device) NewEvent(flags uint32) (*Event, error) {
	ev := &Event{d: d, h: d.s.newHandle()}
	err := d.s.send(&api.EventCreate{Event: ev.h, Ordinal: d.ordinal, Flags: flags}, nil)
	return ev, err
}

// LoadModule loads a module image (PTX text, cubin or fatbin) and waits for
// the device's verdict on it.
func (d *Device) LoadModule(image []byte) (*Module, error) {
	m := &Module{d: d, h: d.s.newHandle()}
	if err := d.s.call(&api.ModuleLoad{Module: m.h, Ordinal: d.ordinal}, nil, image, nil); err != nil {
		return nil, err
	}
	return m, nil
}

// Stream is a device stream.
type Stream struct {
	d       *Device
	h       api.Handle
	capture atomic.Pointer[capture] // see BeginCapture
}

// Handle is the stream's handle in the session.
func (st *Stream) Handle() api.Handle { return st.h }

// CopyHtoDAsync queues a copy of src to dst. It returns once src has been
// taken (copied or written out), so the caller may reuse src, as CUDA's
// copies from pageable memory do.
func (st *Stream) CopyHtoDAsync(dst DevicePtr, src []byte) error { return st.copyHtoD(dst, src, false) }

// CopyDtoHAsync queues a copy from src into dst; dst holds the bytes once
// the stream has been synchronised.
func (st *Stream) CopyDtoHAsync(dst []byte, src DevicePtr) error { return st.copyDtoH(dst, src, false) }

// MemsetAsync queues a memset.
func (st *Stream) MemsetAsync(dst DevicePtr, value uint32, elemSize int, count uint64) error {
	if c := st.capture.Load(); c != nil {
		return c.add(st, api.GraphNode{Kind: api.NodeMemset, Dst: uint64(dst), Value: value, ElemSize: uint8(elemSize), Count: count})
	}
	return st.d.s.send(&api.Memset{Dst: uint64(dst), Value: value, ElemSize: uint8(elemSize), Count: count, Stream: st.h}, nil)
}

// CopyDtoDAsync queues a device-to-device copy.
func (st *Stream) CopyDtoDAsync(dst, src DevicePtr, n uint64) error {
	if c := st.capture.Load(); c != nil {
		return c.add(st, api.GraphNode{Kind: api.NodeCopy, Dst: uint64(dst), Src: uint64(src), Count: n})
	}
	return st.d.s.send(&api.MemcpyDtoD{Dst: uint64(dst), Src: uint64(src), Size: n, Stream: st.h}, nil)
}

func (st *Stream) copyHtoD(dst DevicePtr, src []byte, wait bool) error {
	if err := st.notCapturing(); err != nil {
		return err
	}
	s := st.d.s
	if h, off, ok := s.hostMem.find(src); ok {
		return st.copyHtoDPinned(dst, h, off, uint64(len(src)), wait)
	}
	chunk := s.opts.ChunkSize
	var waits []*pending
	for off := 0; off < len(src) || off == 0; off += chunk {
		piece := src[off:min(off+chunk, len(src))]
		req := &api.MemcpyHtoD{Dst: uint64(dst) + uint64(off), Stream: st.h}
		if !wait {
			if err := s.send(req, piece); err != nil {
				return err
			}
		} else {
			p, err := s.start(req, &pending{}, piece)
			if err != nil {
				return err
			}
			waits = append(waits, p)
		}
		if len(src) == 0 {
			break
		}
	}
	return s.waitAll(waits)
}

func (st *Stream) copyDtoH(dst []byte, src DevicePtr, wait bool) error {
	if err := st.notCapturing(); err != nil {
		return err
	}
	s := st.d.s
	if h, off, ok := s.hostMem.find(dst); ok {
		return st.copyDtoHPinned(h, off, uint64(len(dst)), src, wait)
	}
	chunk := s.opts.ChunkSize
	var waits []*pending
	for off := 0; off < len(dst); off += chunk {
		piece := dst[off:min(off+chunk, len(dst))]
		req := &api.MemcpyDtoH{Src: uint64(src) + uint64(off), Size: uint64(len(piece)), Stream: st.h}
		p, err := s.start(req, &pending{into: piece, async: !wait}, nil)
		if err != nil {
			return err
		}
		if wait {
			waits = append(waits, p)
		}
	}
	return s.waitAll(waits)
}

func (s *Session) waitAll(ps []*pending) error {
	var first error
	for _, p := range ps {
		if err := s.wait(p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Synchronize waits for the stream's work and reports its failures.
func (st *Stream) Synchronize() error {
	if err := st.notCapturing(); err != nil {
		return err
	}
	return st.d.s.syncCall(&api.StreamSynchronize{Stream: st.h}, nil)
}

// Query reports whether the stream's work is done.
func (st *Stream) Query() (bool, error) {
	if err := st.notCapturing(); err != nil {
		return false, err
	}
	err := st.d.s.syncCall(&api.StreamQuery{Stream: st.h}, nil)
	if err == api.ErrNotReady {
		return false, nil
	}
	return err == nil, err
}

// WaitEvent makes later work on the stream wait for ev's latest record.
// An event of another server's device, which st's server cannot see, is
// waited for here: the call returns when it has completed, so work queued
// on st after it follows it.
func (st *Stream) WaitEvent(ev *Event) error {
	if done, err := st.captureWait(ev); done {
		return err
	}
	if ev.d.s != st.d.s {
		return ev.Synchronize()
	}
	return st.d.s.send(&api.StreamWaitEvent{Stream: st.h, Event: ev.h}, nil)
}

// Destroy destroys the stream once its work is done.
func (st *Stream) Destroy() error {
	return st.d.s.send(&api.StreamDestroy{Stream: st.h}, nil)
}

// Event is a device event.
type Event struct {
	d *Device
	h api.Handle
	// captured is where in a capture the event was last recorded, if it
	// was recorded in one: see captureWait.
	captured atomic.Pointer[captureMark]
}

// Record records the event on st.
func (ev *Event) Record(st *Stream) error {
	if done, err := st.captureRecord(ev); done {
		return err
	}
	return ev.d.s.send(&api.EventRecord{Event: ev.h, Stream: st.h}, nil)
}

// Synchronize waits for the event's latest record.
func (ev *Event) Synchronize() error {
	return ev.d.s.syncCall(&api.EventSynchronize{Event: ev.h}, nil)
}

// Query reports whether the event's latest record has completed.
func (ev *Event) Query() (bool, error) {
	err := ev.d.s.syncCall(&api.EventQuery{Event: ev.h}, nil)
	if err == api.ErrNotReady {
		return false, nil
	}
	return err == nil, err
}

// Destroy destroys the event.
func (ev *Event) Destroy() error { return ev.d.s.send(&api.EventDestroy{Event: ev.h}, nil) }

// ElapsedTime is the time from start's to end's latest record, in
// milliseconds, as cuEventElapsedTime gives it.
func ElapsedTime(start, end *Event) (float32, error) {
	if start.d.s != end.d.s {
		// Two servers' clocks: no time between them means anything.
		return 0, api.Errorf(api.ErrInvalidHandle, "events of two servers' devices: no elapsed time between them")
	}
	var r api.ElapsedTime
	err := start.d.s.call(&api.EventElapsedTime{Start: start.h, End: end.h}, &r, nil, nil)
	return r.Milliseconds, err
}

// Module is a loaded module.
type Module struct {
	d *Device
	h api.Handle
}

// Function looks up a kernel and its parameter layout.
func (m *Module) Function(name string) (*Function, error) {
	f := &Function{m: m, h: m.d.s.newHandle(), name: name}
	var r api.FunctionInfo
	if err := m.d.s.call(&api.ModuleGetFunction{Module: m.h, Function: f.h, Name: name}, &r, nil, nil); err != nil {
		return nil, err
	}
	f.params = r.Params
	return f, nil
}

// Global returns the address and size of a module global.
func (m *Module) Global(name string) (DevicePtr, uint64, error) {
	var r api.GlobalInfo
	err := m.d.s.call(&api.ModuleGetGlobal{Module: m.h, Name: name}, &r, nil, nil)
	return DevicePtr(r.Ptr), r.Size, err
}

// Unload unloads the module once launches already queued have run.
func (m *Module) Unload() error { return m.d.s.send(&api.ModuleUnload{Module: m.h}, nil) }

// Function is a kernel.
type Function struct {
	m      *Module
	h      api.Handle
	name   string
	params []api.Param
}

// Params is the kernel's parameter layout.
func (f *Function) Params() []api.Param { return f.params }

// Dim3 is a grid or block size.
type Dim3 [3]uint32

// D1 is a one-dimensional Dim3.
func D1(x uint32) Dim3 { return Dim3{x, 1, 1} }

// Launch queues the kernel on st. Each argument is packed by the kernel's
// parameter layout; its Go type must have the parameter's size: DevicePtr,
// uint64, int64, float64 (8 bytes), uint32, int32, float32 (4), or []byte
// for anything else.
func (f *Function) Launch(st *Stream, grid, block Dim3, sharedMem uint32, args ...any) error {
	params, err := packParams(f.name, f.params, args)
	if err != nil {
		return err
	}
	return f.LaunchPacked(st, grid, block, sharedMem, params)
}

// LaunchPacked queues the kernel with an already packed parameter buffer.
func (f *Function) LaunchPacked(st *Stream, grid, block Dim3, sharedMem uint32, params []byte) error {
	if c := st.capture.Load(); c != nil {
		return c.add(st, api.GraphNode{Kind: api.NodeLaunch, Function: f.h, Grid: grid, Block: block, SharedMem: sharedMem, Params: params})
	}
	m := launchMsgs.Get().(*api.LaunchKernel)
	*m = api.LaunchKernel{Function: f.h, Stream: st.h, Grid: grid, Block: block, SharedMem: sharedMem, Params: params}
	err := st.d.s.send(m, nil) // encoded and sent: nothing keeps m
	*m = api.LaunchKernel{}
	launchMsgs.Put(m)
	return err
}

// launchMsgs recycles launch requests, which escape through the Message
// interface: launches are the calls applications make most.
var launchMsgs = sync.Pool{New: func() any { return new(api.LaunchKernel) }}

func packParams(name string, layout []api.Param, args []any) ([]byte, error) {
	if len(args) != len(layout) {
		return nil, api.Errorf(api.ErrInvalidValue, "%s takes %d arguments, %d given", name, len(layout), len(args))
	}
	var size uint32
	if n := len(layout); n > 0 {
		size = layout[n-1].Offset + layout[n-1].Size
	}
	buf := make([]byte, size)
	le := binary.LittleEndian
	for i, a := range args {
		p := layout[i]
		var n uint32
		switch v := a.(type) {
		case DevicePtr, uint64, int64, float64:
			n = 8
		case uint32, int32, float32:
			n = 4
		case []byte:
			n = uint32(len(v))
		default:
			return nil, api.Errorf(api.ErrInvalidValue, "%s argument %d: unsupported type %T", name, i, a)
		}
		if n != p.Size {
			return nil, api.Errorf(api.ErrInvalidValue, "%s argument %d is %d bytes (%T); the parameter is %d", name, i, n, a, p.Size)
		}
		b := buf[p.Offset : p.Offset+n]
		switch v := a.(type) {
		case DevicePtr:
			le.PutUint64(b, uint64(v))
		case uint64:
			le.PutUint64(b, v)
		case int64:
			le.PutUint64(b, uint64(v))
		case float64:
			le.PutUint64(b, math.Float64bits(v))
		case uint32:
			le.PutUint32(b, v)
		case int32:
			le.PutUint32(b, uint32(v))
		case float32:
			le.PutUint32(b, math.Float32bits(v))
		case []byte:
			copy(b, v)
		}
	}
	return buf, nil
}
