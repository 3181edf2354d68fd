package engine

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// The execution calls: graphs, stream memory operations, host functions
// and JIT linking (see api/exec.go).

// execState is a session's graphs and the streams it holds for host
// functions. Guarded by session.mu.
type execState struct {
	graphs map[api.Handle]*graphObj
	// graphBytes is what the session's graphs hold of the server's
	// memory, bounded by maxGraphBytes.
	graphBytes int64
	// holds are the releases of streams held at a host function, by the
	// client's marker: HostFuncDone closes one.
	holds map[uint32]chan struct{}
}

// maxGraphs bounds the graphs one session holds, and maxGraphBytes the
// server memory they take (their nodes and parameters): a graph is kept
// for the session's life, and each may be a megabyte.
const (
	maxGraphs     = 4096
	maxGraphBytes = 64 << 20
)

// graphNodeBytes is what the server keeps per node besides its parameters:
// the size of a graphNode on 64-bit platforms.
const graphNodeBytes = 128

// graphObj is an executable graph: its nodes, in order, with the functions
// their launches name resolved when the graph was made.
type graphObj struct {
	dev   *sessionDevice
	bytes int64 // of the session's maxGraphBytes
	nodes []graphNode
	err   error // why making it failed; reported by every launch
	made  bool
}

type graphNode struct {
	api.GraphNode
	f *functionObj
}

// graphDestroy forgets a graph; its instantiated image is the server's.
func (s *session) graphDestroy(h api.Header, m *api.GraphDestroy) {
	s.mu.Lock()
	g := s.exec.graphs[m.Graph]
	if g != nil {
		delete(s.exec.graphs, m.Graph)
		s.exec.graphBytes -= g.bytes
	}
	s.mu.Unlock()
	if g == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "graph %#x", m.Graph))
		return
	}
	s.reply0(h)
}

// hostFuncDone releases the stream held at a host function the client has
// run.
func (s *session) hostFuncDone(h api.Header, m *api.HostFuncDone) {
	s.mu.Lock()
	release := s.exec.holds[m.Marker]
	delete(s.exec.holds, m.Marker)
	s.mu.Unlock()
	if release == nil {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "no stream is held at host function %d", m.Marker))
		return
	}
	if release != notQueued {
		close(release)
	}
	s.reply0(h)
}

func (s *session) graphCreate(h api.Header, m *api.GraphCreate) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	g := &graphObj{dev: d, nodes: make([]graphNode, len(m.Nodes))}
	s.mu.Lock()
	for i, n := range m.Nodes {
		g.nodes[i].GraphNode = n
		// The decoded params alias the connection's buffer.
		g.nodes[i].Params = append([]byte(nil), n.Params...)
		if n.Kind == api.NodeLaunch {
			g.nodes[i].f = s.functions[n.Function]
			if g.nodes[i].f == nil && err == nil {
				err = api.Errorf(api.ErrInvalidHandle, "graph node %d: function %#x", i, n.Function)
			}
		}
	}
	if s.exec.graphs == nil {
		s.exec.graphs = map[api.Handle]*graphObj{}
	}
	g.bytes = int64(len(g.nodes)) * graphNodeBytes
	for _, n := range g.nodes {
		g.bytes += int64(len(n.Params))
	}
	if err == nil && s.exec.graphBytes+g.bytes > maxGraphBytes {
		err = api.Errorf(api.ErrOutOfMemory, "the session's graphs hold %d bytes; one more of %d would pass %d", s.exec.graphBytes, g.bytes, maxGraphBytes)
	}
	s.mu.Unlock()
	if err != nil {
		s.fail(h, err)
		return
	}
	regErr := register(s, s.exec.graphs, m.Graph, "graph", g, maxGraphs)
	if regErr == nil {
		s.mu.Lock()
		s.exec.graphBytes += g.bytes
		s.mu.Unlock()
	}
	s.make(h, d, regErr, func() error {
		g.err = g.check()
		g.made = true
		return g.err
	})
}

// check validates what a graph's nodes name that does not change: their
// functions (loaded, on the graph's device), geometry, sizes and flags. The
// memory they name is checked at each launch, against the allocations of
// that moment. It runs on the shard, after the functions' lookups.
func (g *graphObj) check() error {
	for i, n := range g.nodes {
		var err error
		switch n.Kind {
		case api.NodeLaunch:
			switch {
			case n.f.mod.dev != g.dev: // first: the function's fields are its shard's
				err = api.Errorf(api.ErrInvalidValue, "function of another device")
			case n.f.err != nil:
				err = n.f.err
			case n.f.bf == nil:
				err = api.Errorf(api.ErrInvalidHandle, "function of an unloaded module")
			case zeroDim(n.Grid) || zeroDim(n.Block):
				err = api.Errorf(api.ErrInvalidValue, "launch of grid %v, block %v", n.Grid, n.Block)
			}
		case api.NodeMemset:
			if n.ElemSize != 1 && n.ElemSize != 2 && n.ElemSize != 4 {
				err = api.Errorf(api.ErrInvalidValue, "memset element size %d", n.ElemSize)
			} else if n.Count*uint64(n.ElemSize)/uint64(n.ElemSize) != n.Count {
				err = api.Errorf(api.ErrInvalidValue, "memset of %d elements overflows", n.Count)
			}
		case api.NodeCopy:
		case api.NodeWrite, api.NodeWaitValue:
			if n.ElemSize != 4 && n.ElemSize != 8 {
				err = api.Errorf(api.ErrInvalidValue, "stream memory operation on %d bytes", n.ElemSize)
			}
		default:
			err = api.Errorf(api.ErrInvalidValue, "node kind %d", n.Kind)
		}
		if err != nil {
			return api.Errorf(api.ResultOf(err), "graph node %d: %v", i, err)
		}
	}
	return nil
}

func zeroDim(d [3]uint32) bool { return d[0] == 0 || d[1] == 0 || d[2] == 0 }

// span is the device range node n touches as a destination (and, for a
// copy, as a source), for the launch-time check against the session's
// allocations.
func (n *graphNode) spans() (dst, src, size uint64) {
	switch n.Kind {
	case api.NodeMemset:
		return n.Dst, 0, n.Count * uint64(n.ElemSize)
	case api.NodeCopy:
		return n.Dst, n.Src, n.Count
	case api.NodeWrite, api.NodeWaitValue:
		return n.Dst, 0, uint64(n.ElemSize)
	}
	return 0, 0, 0
}

// graphLaunch queues every node of the graph on the stream, in one task on
// the shard: a graph of a hundred kernels costs one message and one task.
// Every node is checked before any is queued, so a graph either runs whole
// or fails without touching the device.
func (s *session) graphLaunch(h api.Header, m *api.GraphLaunch) {
	s.mu.Lock()
	g := s.exec.graphs[m.Graph]
	s.mu.Unlock()
	if g == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "graph %#x", m.Graph))
		return
	}
	s.onStreamCost(h, m.Stream, max(1, len(g.nodes)), func(st *streamObj) error {
		// The device first: the graph's other fields are its shard's.
		if st.dev != g.dev {
			return api.Errorf(api.ErrInvalidValue, "graph and stream are on different devices")
		}
		if !g.made {
			return api.Errorf(api.ErrInvalidHandle, "graph %#x was not made", m.Graph)
		}
		if g.err != nil {
			return g.err
		}
		if err := s.checkNodes(st, g); err != nil {
			return err
		}
		for i := range g.nodes {
			if i > 0 {
				s.queuing(st) // onStreamCost counted the first
			}
			if err := queueNode(st, &g.nodes[i]); err != nil {
				return api.Errorf(api.ResultOf(err), "graph node %d: %v", i, err)
			}
		}
		return nil
	})
}

// checkNodes checks, on the shard, what may have changed since the graph
// was made: the memory its nodes name, its functions' modules, and the
// stream's capabilities.
func (s *session) checkNodes(st *streamObj, g *graphObj) error {
	_, values := st.bs.(backend.ValueStream)
	for i := range g.nodes {
		n := &g.nodes[i]
		if n.Kind == api.NodeLaunch {
			if !s.moduleLive(n.f.mod) {
				return api.Errorf(api.ErrInvalidHandle, "graph node %d: its function's module was unloaded", i)
			}
			continue
		}
		if (n.Kind == api.NodeWrite || n.Kind == api.NodeWaitValue) && !values {
			return api.Errorf(api.ErrNotSupported, "graph node %d: stream memory operations on this backend", i)
		}
		dst, src, size := n.spans()
		if err := inRange(st.dev, "destination", dst, size); err != nil {
			return api.Errorf(api.ErrInvalidValue, "graph node %d: %v", i, err)
		}
		if n.Kind == api.NodeCopy {
			if err := inRange(st.dev, "source", src, size); err != nil {
				return api.Errorf(api.ErrInvalidValue, "graph node %d: %v", i, err)
			}
		}
	}
	return nil
}

func (s *session) moduleLive(mod *moduleObj) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.modules {
		if m == mod {
			return true
		}
	}
	return false
}

// queueNode queues one checked node on st.
func queueNode(st *streamObj, n *graphNode) error {
	switch n.Kind {
	case api.NodeLaunch:
		cfg := backend.LaunchConfig{Grid: n.Grid, Block: n.Block, SharedMem: n.SharedMem}
		return st.bs.Launch(n.f.bf, cfg, n.Params, &st.dev.allocs)
	case api.NodeMemset:
		return st.bs.Memset(n.Dst, n.Value, int(n.ElemSize), n.Count)
	case api.NodeCopy:
		return st.bs.CopyDtoD(n.Dst, n.Src, n.Count)
	case api.NodeWrite:
		return st.bs.(backend.ValueStream).WriteValue(n.Dst, n.Value64, int(n.ElemSize))
	case api.NodeWaitValue:
		return st.bs.(backend.ValueStream).WaitValue(n.Dst, n.Value64, int(n.ElemSize), n.Flags)
	}
	return api.Errorf(api.ErrInvalidValue, "node kind %d", n.Kind)
}

// valueOp queues a stream memory operation on a stream that serves them,
// on a word of the session's own memory.
func (s *session) valueOp(h api.Header, stream api.Handle, ptr uint64, size uint8, fn func(backend.ValueStream) error) {
	s.onStream(h, stream, func(st *streamObj) error {
		vs, ok := st.bs.(backend.ValueStream)
		if !ok {
			return api.Errorf(api.ErrNotSupported, "stream memory operations on this backend")
		}
		if err := inRange(st.dev, "address", ptr, uint64(size)); err != nil {
			return err
		}
		return fn(vs)
	})
}

// hostFunc answers h when the stream reaches this point and holds the
// stream's later work until the client's HostFuncDone: the client runs the
// function in between. The answer carries the stream's failure before that
// point, which it thereby reports (the client latches it), so it is not
// reported twice.
func (s *session) hostFunc(h api.Header, m *api.HostFunc) {
	h.Flags &^= api.FlagAsync // the answer is the point of the call
	release := make(chan struct{})
	s.mu.Lock()
	if s.exec.holds == nil {
		s.exec.holds = map[uint32]chan struct{}{}
	}
	if s.exec.holds[m.Marker] != nil {
		s.mu.Unlock()
		s.fail(h, api.Errorf(api.ErrInvalidValue, "host function %d is pending already", m.Marker))
		return
	}
	s.exec.holds[m.Marker] = release
	s.mu.Unlock()
	// A host function that could not be queued holds nothing, but its
	// client runs it all the same (with the failure) and says so.
	forget := func() {
		s.mu.Lock()
		if s.exec.holds[m.Marker] == release {
			s.exec.holds[m.Marker] = notQueued
		}
		s.mu.Unlock()
	}
	st, err := s.stream(m.Stream)
	if err != nil {
		forget()
		s.fail(h, err)
		return
	}
	st.dev.submit(func() {
		err := st.ready()
		holder, ok := st.bs.(backend.Holder)
		if err == nil && !ok {
			err = api.Errorf(api.ErrNotSupported, "host functions on this backend")
		}
		if err == nil {
			s.queuing(st)
			err = st.bs.Notify(func(err error) { s.reply(h, err, nil, nil) })
		}
		if err != nil {
			forget()
			s.fail(h, err)
			return
		}
		// Answered by the Notify: a Hold that fails (the stream went in
		// between) is the session's failure, reported at its next sync.
		if err := holder.Hold(release); err != nil {
			forget()
			s.latched.Set(err)
		}
	})
}

// notQueued marks the marker of a host function that was not queued: its
// HostFuncDone has nothing to release. It is never closed.
var notQueued = make(chan struct{})

// releaseHolds lets go of every stream the session holds at a host
// function: the session is ending, and its client will not say it is done.
func (s *session) releaseHolds() {
	s.mu.Lock()
	holds := s.exec.holds
	s.exec.holds = nil
	s.exec.graphs, s.exec.graphBytes = nil, 0
	s.mu.Unlock()
	for _, release := range holds {
		if release != notQueued {
			close(release)
		}
	}
}

// link reads a JIT link's inputs (the payload) under the session's
// staging budget, as a module image, links them on the reader (off the
// shard: linking is the session's own work, as parsing a module is) and
// answers with the linked image.
func (s *session) link(h api.Header, m *api.Link, pl payload) error {
	h.Flags &^= api.FlagAsync // the answer carries the image
	var total uint64
	for _, in := range m.Inputs {
		total += in.Size
		if total < in.Size {
			total = ^uint64(0)
		}
	}
	switch {
	case total != uint64(pl.n):
		s.fail(h, api.Errorf(api.ErrInvalidValue, "link inputs of %d bytes in a payload of %d", total, pl.n))
		return nil // the payload, unread, is skipped by the next Recv
	case int64(pl.n) > s.srv.cfg.MaxModuleImage:
		s.fail(h, api.Errorf(api.ErrInvalidImage, "link inputs of %d bytes; the limit is %d", pl.n, s.srv.cfg.MaxModuleImage))
		return nil
	}
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return nil
	}
	linker, ok := d.shard.dev.(backend.Linker)
	if !ok {
		s.fail(h, api.Errorf(api.ErrNotSupported, "JIT linking on this backend"))
		return nil
	}
	weight := min(int64(pl.n), s.srv.cfg.MaxStaging)
	if err := s.stage(weight); err != nil {
		return err
	}
	defer s.unstage(weight)
	buf := getStaging(pl.n)
	defer putStaging(buf)
	if err := pl.read(buf); err != nil {
		return err
	}
	inputs := make([]backend.LinkInput, len(m.Inputs))
	off := uint64(0)
	for i, in := range m.Inputs {
		inputs[i] = backend.LinkInput{Type: in.Type, Name: in.Name, Data: buf[off : off+in.Size]}
		off += in.Size
	}
	image, err := linker.Link(inputs)
	if err != nil {
		s.fail(h, err)
		return nil
	}
	if int64(len(image)) > s.srv.cfg.MaxModuleImage {
		s.fail(h, api.Errorf(api.ErrInvalidImage, "the linked image is %d bytes; the limit is %d", len(image), s.srv.cfg.MaxModuleImage))
		return nil
	}
	s.replyOnReader(h, nil, nil, image)
	return nil
}

// funcAttributes answers what the device says of a function's resources,
// on the function's shard, where its lookup was made.
func (s *session) funcAttributes(h api.Header, m *api.FuncAttributes) {
	h.Flags &^= api.FlagAsync // the answer is the point of the call
	s.mu.Lock()
	f := s.functions[m.Function]
	s.mu.Unlock()
	if f == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "function %#x", m.Function))
		return
	}
	f.mod.dev.submit(func() {
		switch {
		case f.err != nil:
			s.fail(h, f.err)
			return
		case f.bf == nil:
			s.fail(h, api.Errorf(api.ErrInvalidHandle, "function of an unloaded module"))
			return
		}
		fa, ok := f.bf.(backend.FunctionAttributer)
		if !ok {
			s.fail(h, api.Errorf(api.ErrNotSupported, "this backend does not report a function's resources"))
			return
		}
		values, err := fa.Attributes()
		if err != nil {
			s.fail(h, err)
			return
		}
		s.reply(h, nil, &api.FuncAttributeValues{Values: values[:min(len(values), api.FuncAttrCount)]}, nil)
	})
}
