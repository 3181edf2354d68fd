package interpose

import (
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
)

// ---- stream capture and graphs ----

// capture is what a capturing stream records instead of sending: the nodes
// of the graph EndCapture returns. A capture that met an operation it
// cannot record is invalidated: it records nothing more, and EndCapture
// fails with CUDA_ERROR_STREAM_CAPTURE_INVALIDATED.
//
// A capture may span streams, as the driver's does: an event recorded in
// it and waited for by another stream brings that stream into it (a fork),
// and the origin waiting for an event recorded on a joined stream joins
// it back. The nodes of every stream are kept in one sequence, in the
// order the calls came: that order respects every dependency the events
// express, so replaying the sequence is one of the schedules the graph
// allows.
type capture struct {
	id     uint64
	origin *Stream

	mu          sync.Mutex
	nodes       []api.GraphNode
	streams     []*Stream // joined by a wait on an event recorded in the capture
	invalidated bool
	ended       bool
	// work counts each stream's nodes; unjoined holds the forked streams
	// whose work the origin does not yet wait for, which the driver
	// refuses to end a capture with.
	work     map[*Stream]int
	unjoined map[*Stream]bool
}

// captureMark is an event's record in a capture: on which stream, after
// how many of its nodes.
type captureMark struct {
	c    *capture
	from *Stream
	at   int
}

var captureIDs atomic.Uint64

func (c *capture) add(st *Stream, n api.GraphNode) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.invalidated {
		return api.Errorf(api.ErrStreamCaptureInvalidated, "the stream's capture was invalidated")
	}
	if len(c.nodes) >= api.MaxGraphNodes {
		c.invalidated = true
		return api.Errorf(api.ErrStreamCaptureUnsupp, "a graph of more than %d nodes", api.MaxGraphNodes)
	}
	n.Params = append([]byte(nil), n.Params...) // the caller's buffer is recycled
	c.nodes = append(c.nodes, n)
	c.work[st]++
	if st != c.origin {
		c.unjoined[st] = true
	}
	return nil
}

// notCapturing is the check of an operation that a capture cannot record
// (a copy with host memory, a synchronisation, an event): on a capturing
// stream it invalidates the capture and fails, as the driver does.
func (st *Stream) notCapturing() error {
	c := st.capture.Load()
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.invalidated = true
	c.mu.Unlock()
	return api.Errorf(api.ErrStreamCaptureUnsupp, "the operation is not permitted on a capturing stream")
}

// BeginCapture makes the stream record its kernel launches, memsets,
// device-to-device copies and stream memory operations into a graph
// instead of running them, until EndCapture. The default stream cannot be
// captured.
func (st *Stream) BeginCapture() error {
	if st.h >= api.DefaultStreamBase {
		return api.Errorf(api.ErrStreamCaptureUnsupp, "the default stream cannot be captured")
	}
	c := &capture{id: captureIDs.Add(1), origin: st, work: map[*Stream]int{}, unjoined: map[*Stream]bool{}}
	if !st.capture.CompareAndSwap(nil, c) {
		return api.Errorf(api.ErrIllegalState, "the stream is capturing already")
	}
	return nil
}

// Capturing reports the stream's capture: its id, and whether it is
// active (or was invalidated).
func (st *Stream) Capturing() (id uint64, active, invalidated bool) {
	c := st.capture.Load()
	if c == nil {
		return 0, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id, !c.invalidated, c.invalidated
}

// EndCapture ends the stream's capture and returns the graph it recorded;
// only the stream that began it may end it, and that ends it on every
// stream that joined it.
func (st *Stream) EndCapture() (*Graph, error) {
	c := st.capture.Load()
	if c == nil {
		return nil, api.Errorf(api.ErrIllegalState, "the stream is not capturing")
	}
	if c.origin != st {
		return nil, api.Errorf(api.ErrStreamCaptureUnmatched, "the capture was begun on another stream")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	st.capture.Store(nil)
	for _, j := range c.streams {
		j.capture.CompareAndSwap(c, nil)
	}
	if c.invalidated {
		return nil, api.Errorf(api.ErrStreamCaptureInvalidated, "the capture was invalidated by an operation it cannot record")
	}
	if len(c.unjoined) > 0 {
		return nil, api.Errorf(api.ErrStreamCaptureUnjoined, "%d forked streams have work the capturing stream does not wait for", len(c.unjoined))
	}
	return &Graph{d: st.d, nodes: c.nodes}, nil
}

// captureRecord records ev in st's capture, if st is capturing: the
// record is a point in the capture's sequence, not a call. It reports
// whether it handled the record.
func (st *Stream) captureRecord(ev *Event) (bool, error) {
	c := st.capture.Load()
	if c == nil {
		ev.captured.Store(nil)
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.invalidated {
		return true, api.Errorf(api.ErrStreamCaptureInvalidated, "the stream's capture was invalidated")
	}
	ev.captured.Store(&captureMark{c: c, from: st, at: c.work[st]})
	return true, nil
}

// captureWait handles a wait on ev where a capture is involved: within
// one capture the sequence already orders it; a stream outside any
// capture joins the capture ev was recorded in; a capturing stream may
// not wait on work outside its capture. It reports whether it handled
// the wait.
func (st *Stream) captureWait(ev *Event) (bool, error) {
	sc := st.capture.Load()
	var ec *capture
	m := ev.captured.Load()
	if m != nil {
		ec = m.c
	}
	switch {
	case sc != nil && sc == ec:
		// The sequence orders it; what it says is who waits for whom: the
		// recording stream's work up to the record is joined to st.
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if sc.work[m.from] == m.at && sc.unjoined[m.from] {
			delete(sc.unjoined, m.from)
			if st != sc.origin {
				sc.unjoined[st] = true
			}
		}
		return true, nil
	case sc != nil:
		sc.mu.Lock()
		sc.invalidated = true
		sc.mu.Unlock()
		return true, api.Errorf(api.ErrStreamCaptureIsolation, "a capturing stream waits for an event recorded outside its capture")
	case ec != nil:
		ec.mu.Lock()
		defer ec.mu.Unlock()
		if ec.ended {
			return false, nil // recorded in a capture now over: the event's last real record stands
		}
		if st.h >= api.DefaultStreamBase {
			ec.invalidated = true
			return true, api.Errorf(api.ErrStreamCaptureImplicit, "the default stream cannot join a capture")
		}
		if !st.capture.CompareAndSwap(nil, ec) {
			return true, api.Errorf(api.ErrIllegalState, "the stream is capturing already")
		}
		ec.streams = append(ec.streams, st)
		return true, nil
	}
	return false, nil
}

// Graph is a captured graph: a sequence of operations, held by the client
// until it is instantiated.
type Graph struct {
	d     *Device
	nodes []api.GraphNode
}

// Nodes is the number of operations the graph holds.
func (g *Graph) Nodes() int { return len(g.nodes) }

// Instantiate sends the graph to the server, once, and waits for its
// verdict on it: every function it names must be loaded on its device.
func (g *Graph) Instantiate() (*GraphExec, error) {
	ge := &GraphExec{d: g.d, h: g.d.s.newHandle(), nodes: len(g.nodes)}
	if err := g.d.s.call(&api.GraphCreate{Graph: ge.h, Ordinal: g.d.ordinal, Nodes: g.nodes}, nil, nil, nil); err != nil {
		return nil, err
	}
	return ge, nil
}

// GraphExec is an instantiated graph, held by the server.
type GraphExec struct {
	d     *Device
	h     api.Handle
	nodes int
}

// Launch queues the whole graph on st in one message, without waiting.
func (ge *GraphExec) Launch(st *Stream) error {
	if err := st.notCapturing(); err != nil {
		return err
	}
	return ge.d.s.send(&api.GraphLaunch{Graph: ge.h, Stream: st.h}, nil)
}

// Destroy releases the graph on the server; launches queued still run.
func (ge *GraphExec) Destroy() error {
	return ge.d.s.send(&api.GraphDestroy{Graph: ge.h}, nil)
}

// ---- stream memory operations ----

// WaitValue makes later work on st wait until the size-byte (4 or 8) word
// at ptr compares with value as flags (api.Wait*) say.
func (st *Stream) WaitValue(ptr DevicePtr, value uint64, size int, flags uint32) error {
	if size != 4 && size != 8 || flags&^api.WaitFlush > api.WaitNOR {
		return api.Errorf(api.ErrInvalidValue, "stream wait of %d bytes with flags %#x", size, flags)
	}
	if c := st.capture.Load(); c != nil {
		return c.add(st, api.GraphNode{Kind: api.NodeWaitValue, Dst: uint64(ptr), Value64: value, ElemSize: uint8(size), Flags: flags})
	}
	return st.d.s.send(&api.StreamWaitValue{Stream: st.h, Ptr: uint64(ptr), Value: value, Size: uint8(size), Flags: flags}, nil)
}

// WriteValue writes the size-byte (4 or 8) value at ptr when st reaches it.
func (st *Stream) WriteValue(ptr DevicePtr, value uint64, size int) error {
	if size != 4 && size != 8 {
		return api.Errorf(api.ErrInvalidValue, "stream write of %d bytes", size)
	}
	if c := st.capture.Load(); c != nil {
		return c.add(st, api.GraphNode{Kind: api.NodeWrite, Dst: uint64(ptr), Value64: value, ElemSize: uint8(size)})
	}
	return st.d.s.send(&api.StreamWriteValue{Stream: st.h, Ptr: uint64(ptr), Value: value, Size: uint8(size)}, nil)
}

// ---- host functions ----

// LaunchHostFunc queues fn on st: fn runs in this process, on the
// session's callback goroutine, once the server says st has reached it,
// with the failure of the stream's earlier work (nil when it had none);
// st's later work waits until fn has returned. Callbacks run one at a
// time, in the order their streams reach them. fn must not wait for work
// of the session, as a CUDA host function must not call CUDA.
func (st *Stream) LaunchHostFunc(fn func(error)) error {
	if err := st.notCapturing(); err != nil {
		return err
	}
	s := st.d.s
	marker := s.markers.Add(1)
	p := &pending{async: true, then: func(err error) {
		fn(err)
		// Sent even when the session is going: nothing is waiting on it then.
		_ = s.send(&api.HostFuncDone{Marker: marker}, nil)
	}}
	_, err := s.start(&api.HostFunc{Stream: st.h, Marker: marker}, p, nil)
	return err
}

// hostCalls runs host functions, in order, on a goroutine of their own:
// never on the goroutine that read the server's answer, which may be an
// application thread waiting for a call of its own.
type hostCalls struct {
	mu      sync.Mutex
	queue   []func()
	running bool
}

func (h *hostCalls) push(fn func()) {
	h.mu.Lock()
	h.queue = append(h.queue, fn)
	start := !h.running
	h.running = true
	h.mu.Unlock()
	if start {
		go h.run()
	}
}

func (h *hostCalls) run() {
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		fn := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()
		fn()
	}
}

// ---- JIT linking ----

// LinkInput is one input of Device.Link: its CUjitInputType (api.Link*),
// a name for the linker's messages, and its bytes.
type LinkInput struct {
	Type uint8
	Name string
	Data []byte
}

// Link has the server's device link the inputs into one module image, as
// cuLinkComplete does, and returns it: LoadModule loads it. The inputs
// travel once, in one call.
func (d *Device) Link(inputs []LinkInput) ([]byte, error) {
	req := &api.Link{Ordinal: d.ordinal, Inputs: make([]api.LinkInput, len(inputs))}
	var payload []byte
	for i, in := range inputs {
		req.Inputs[i] = api.LinkInput{Type: in.Type, Name: in.Name, Size: uint64(len(in.Data))}
		payload = append(payload, in.Data...)
	}
	p, err := d.s.start(req, &pending{grow: true}, payload)
	if err != nil {
		return nil, err
	}
	if err := d.s.wait(p); err != nil {
		return nil, err
	}
	return p.into, nil
}

// ---- function attributes ----

// Attributes asks the device what it says of the function's resources:
// its CUfunction_attribute values, -1 for any it cannot give. A backend
// that cannot say at all answers CUDA_ERROR_NOT_SUPPORTED.
func (f *Function) Attributes() ([]int32, error) {
	var r api.FuncAttributeValues
	if err := f.m.d.s.call(&api.FuncAttributes{Function: f.h}, &r, nil, nil); err != nil {
		return nil, err
	}
	return r.Values, nil
}
