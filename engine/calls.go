package engine

import (
	"errors"
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/transport"
)

// dispatch handles one decoded request on the reader goroutine. It returns
// an error only when the connection must close.
func (s *session) dispatch(h api.Header, m api.Message, pl payload) error {
	if pl.n > 0 {
		switch m.(type) {
		case *api.MemcpyHtoD, *api.ModuleLoad, *api.Echo, *api.Link, *api.Memcpy3D:
		default:
			// The payload, unread, is skipped by the next Recv.
			s.fail(h, api.Errorf(api.ErrInvalidValue, "%v carries no payload", h.Op))
			return nil
		}
	}
	switch m := m.(type) {
	case *api.Hello:
		s.fail(h, api.Errorf(api.ErrIllegalState, "second Hello"))
	case *api.Ping:
		s.replyOnReader(h, nil, nil, nil)
	case *api.Echo:
		return s.echo(h, pl)
	case *api.Describe:
		s.mu.Lock()
		s.selection = m.Selection
		s.mu.Unlock()
		s.log.Info("transport selected", "selection", m.Selection)
		s.reply0(h)
	case *api.ServerStatus:
		s.reply(h, nil, nil, statusJSON(s.srv.Status()))
	case *api.Attach:
		s.attach(h, m)
	case *api.DeviceGet:
		s.deviceGet(h, m)
	case *api.MemGetInfo:
		s.onDevice(h, m.Ordinal, func(d *sessionDevice) {
			free, _ := d.shard.memInfo()
			used, _ := d.allocs.usage()
			s.reply(h, nil, &api.MemInfo{Free: min(d.quota-used, free), Total: d.quota}, nil)
		})
	case *api.CtxSynchronize:
		d, err := s.device(m.Ordinal)
		if err != nil {
			s.fail(h, err)
			break
		}
		if s.idle(d) {
			s.replyOnReader(h, s.latched.Take(), nil, nil) // nothing to wait for: no trip through shard and streams
			break
		}
		s.afterStreamsFor(h, d, func() { s.syncReply(h, nil, nil) })
	case *api.MemAlloc:
		s.onDevice(h, m.Ordinal, func(d *sessionDevice) { s.memAlloc(h, d, m.Size, false) })
	case *api.MemFree:
		s.memFree(h, m.Ptr)
	case *api.MemcpyHtoD:
		return s.memcpyHtoD(h, m, pl)
	case *api.MemcpyDtoH:
		s.memcpyDtoH(h, m)
	case *api.MemcpyDtoD:
		s.onStream(h, m.Stream, func(st *streamObj) error {
			d := st.dev
			if err := inRange(d, "destination", m.Dst, m.Size); err != nil {
				return err
			}
			if err := inRange(d, "source", m.Src, m.Size); err != nil {
				return err
			}
			return st.bs.CopyDtoD(m.Dst, m.Src, m.Size)
		})
	case *api.Memset:
		s.onStream(h, m.Stream, func(st *streamObj) error {
			switch m.ElemSize {
			case 1, 2, 4:
			default:
				return api.Errorf(api.ErrInvalidValue, "memset element size %d", m.ElemSize)
			}
			n := m.Count * uint64(m.ElemSize)
			if n/uint64(m.ElemSize) != m.Count {
				return api.Errorf(api.ErrInvalidValue, "memset of %d elements overflows", m.Count)
			}
			if err := inRange(st.dev, "destination", m.Dst, n); err != nil {
				return err
			}
			return st.bs.Memset(m.Dst, m.Value, int(m.ElemSize), m.Count)
		})
	case *api.ModuleLoad:
		return s.moduleLoad(h, m, pl)
	case *api.ModuleUnload:
		s.moduleUnload(h, m)
	case *api.ModuleGetFunction:
		s.moduleGetFunction(h, m)
	case *api.ModuleGetGlobal:
		s.moduleGetGlobal(h, m)
	case *api.LaunchKernel:
		s.launch(h, m)
	case *api.StreamCreate:
		s.streamCreate(h, m)
	case *api.StreamDestroy:
		s.streamDestroy(h, m)
	case *api.StreamSynchronize:
		if st, err := s.stream(m.Stream); err == nil && s.idle(st.dev, st) {
			s.replyOnReader(h, s.latched.Take(), nil, nil)
			break
		}
		s.withStream(h, m.Stream, func(st *streamObj) error {
			return st.bs.Notify(func(err error) { s.syncReply(h, err, nil) })
		})
	case *api.StreamQuery:
		s.withStream(h, m.Stream, func(st *streamObj) error {
			s.syncReply(h, st.bs.Query(), nil)
			return nil
		})
	case *api.StreamWaitEvent:
		s.eventOnStream(h, m.Stream, m.Event, backend.Stream.Wait)
	case *api.EventCreate:
		s.eventCreate(h, m)
	case *api.EventRecord:
		s.eventOnStream(h, m.Stream, m.Event, backend.Stream.Record)
	case *api.EventSynchronize:
		s.withEvent(h, m.Event, func(ev *eventObj) error {
			return ev.be.Notify(func(err error) { s.syncReply(h, err, nil) })
		})
	case *api.EventQuery:
		s.withEvent(h, m.Event, func(ev *eventObj) error {
			s.syncReply(h, ev.be.Query(), nil)
			return nil
		})
	case *api.EventElapsedTime:
		s.eventElapsed(h, m)
	case *api.EventDestroy:
		s.eventDestroy(h, m)
	case *api.NVMLQuery:
		s.nvmlQuery(h, m)
	case *api.Memcpy3D: // calls_memory.go
		return s.memcpy3D(h, m, pl)
	case *api.Memset2D:
		s.memset2D(h, m)
	case *api.MemAddressReserve: // calls_vmm.go
		s.memAddressReserve(h, m)
	case *api.MemAddressFree:
		s.memAddressFree(h, m)
	case *api.MemCreate:
		s.memCreate(h, m)
	case *api.MemRelease:
		s.memRelease(h, m)
	case *api.MemMap:
		s.memMap(h, m)
	case *api.MemUnmap:
		s.memUnmap(h, m)
	case *api.MemcpyPeer: // calls_peer.go
		s.memcpyPeer(h, m)
	case *api.IpcGetMemHandle: // calls_ipc.go
		s.ipcGetMemHandle(h, m)
	case *api.IpcOpenMemHandle:
		s.ipcOpenMemHandle(h, m)
	case *api.IpcCloseMemHandle:
		s.ipcCloseMemHandle(h, m)
	case *api.IpcGetEventHandle:
		s.ipcGetEventHandle(h, m)
	case *api.IpcOpenEventHandle:
		s.ipcOpenEventHandle(h, m)
	case *api.PinnedMap:
		s.pinnedMap(h, m)
	case *api.PinnedUnmap:
		s.pinnedUnmap(h, m)
	case *api.MemcpyHtoDPinned:
		s.memcpyHtoDPinned(h, m)
	case *api.MemcpyDtoHPinned:
		s.memcpyDtoHPinned(h, m)
	case *api.Link: // calls_exec.go
		return s.link(h, m, pl)
	case *api.GraphCreate:
		s.graphCreate(h, m)
	case *api.GraphLaunch:
		s.graphLaunch(h, m)
	case *api.GraphDestroy:
		s.graphDestroy(h, m)
	case *api.StreamWaitValue:
		s.valueOp(h, m.Stream, m.Ptr, m.Size, func(vs backend.ValueStream) error {
			return vs.WaitValue(m.Ptr, m.Value, int(m.Size), m.Flags)
		})
	case *api.StreamWriteValue:
		s.valueOp(h, m.Stream, m.Ptr, m.Size, func(vs backend.ValueStream) error {
			return vs.WriteValue(m.Ptr, m.Value, int(m.Size))
		})
	case *api.FuncAttributes:
		s.funcAttributes(h, m)
	case *api.HostFunc:
		s.hostFunc(h, m)
	case *api.HostFuncDone:
		s.hostFuncDone(h, m)
	default:
		s.fail(h, api.Errorf(api.ErrNotSupported, "%v", h.Op))
	}
	return nil
}

func (s *session) echo(h api.Header, pl payload) error {
	if pl.n > api.MaxEcho {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "echo of %d bytes; the limit is %d", pl.n, api.MaxEcho))
		return nil // the payload, unread, is skipped by the next Recv
	}
	buf := getStaging(pl.n)
	defer putStaging(buf)
	if err := pl.read(buf); err != nil {
		return err
	}
	s.replyOnReader(h, nil, nil, buf)
	return nil
}

// onDevice runs fn on the shard of session device ordinal.
func (s *session) onDevice(h api.Header, ordinal uint32, fn func(*sessionDevice)) {
	d, err := s.device(ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	d.submitRunner(s.newCall(h, func() { fn(d) }))
}

// withStream runs fn on the stream's shard, once the stream exists there.
// fn answers h itself; an error it returns is answered for it.
func (s *session) withStream(h api.Header, handle api.Handle, fn func(*streamObj) error) {
	st, err := s.stream(handle)
	onShard(s, h, st, err, fn)
}

// withEvent is withStream for events.
func (s *session) withEvent(h api.Header, handle api.Handle, fn func(*eventObj) error) {
	ev, err := s.event(handle)
	onShard(s, h, ev, err, fn)
}

// deviceObj is a stream or an event: made on its device by a task, ready
// once that task has run and succeeded.
type deviceObj interface {
	ready() error
	device() *sessionDevice
}

func (st *streamObj) device() *sessionDevice { return st.dev }
func (ev *eventObj) device() *sessionDevice  { return ev.dev }

// onShard runs fn on obj's shard once obj is ready, failing h otherwise;
// lookupErr is the error of finding obj.
func onShard[T deviceObj](s *session, h api.Header, obj T, lookupErr error, fn func(T) error) {
	if lookupErr != nil {
		s.fail(h, lookupErr)
		return
	}
	obj.device().submitRunner(s.newCall(h, func() {
		err := obj.ready()
		if err == nil {
			err = fn(obj)
		}
		if err != nil {
			s.fail(h, err)
		}
	}))
}

// onStream queues work on a stream: fn checks and queues it on the shard;
// a synchronous call is answered when the work has run.
func (s *session) onStream(h api.Header, handle api.Handle, fn func(*streamObj) error) {
	s.onStreamCost(h, handle, 1, fn)
}

// onStreamCost is onStream for work that weighs cost in the fair queue.
func (s *session) onStreamCost(h api.Header, handle api.Handle, cost int, fn func(*streamObj) error) {
	st, err := s.stream(handle)
	if err != nil {
		s.fail(h, err)
		return
	}
	st.dev.submitCost(s.newCall(h, func() {
		err := st.ready()
		if err == nil {
			s.queuing(st)
			err = fn(st)
		}
		s.done(h, st, err)
	}), cost)
}

func (s *session) attach(h api.Header, m *api.Attach) {
	s.mu.Lock()
	n := len(s.devices)
	s.mu.Unlock()
	if n >= len(s.srv.shards) {
		s.fail(h, api.Errorf(api.ErrInvalidDevice, "the session holds every device already"))
		return
	}
	grant, ok := s.authorize(h, m)
	if !ok {
		return
	}
	if s.srv.cfg.Authorize != nil {
		m.Device = int32(grant.Device) // the device the grant backs
	}
	var sh *shard
	switch {
	case m.Device == -1:
		// The device with the most unreserved memory that this session
		// does not hold yet.
		best := uint64(0)
		for _, c := range s.srv.shards {
			if s.holds(c) {
				continue
			}
			if u := c.ledger.unreserved(); sh == nil || u > best {
				sh, best = c, u
			}
		}
	case m.Device >= 0 && int(m.Device) < len(s.srv.shards):
		sh = s.srv.shards[m.Device]
		if s.holds(sh) {
			s.releaseGrant(grant)
			s.fail(h, api.Errorf(api.ErrInvalidDevice, "the session holds device %d already", m.Device))
			return
		}
	default:
		s.fail(h, api.Errorf(api.ErrInvalidDevice, "device %d; the server has %d", m.Device, len(s.srv.shards)))
		return
	}
	quota, millionths, err := shareBytes(m, sh.info.TotalMem, s.srv.cfg.MinShare)
	if err == nil && grant.Bytes > 0 && quota > grant.Bytes {
		err = api.Errorf(api.ErrNotPermitted, "attach refused: the share asks %d bytes of device %d; the credential backs %d", quota, sh.index, grant.Bytes)
	}
	if err != nil {
		s.releaseGrant(grant)
		s.fail(h, err)
		return
	}
	if left, ok := sh.ledger.reserve(quota); !ok {
		s.releaseGrant(grant)
		s.fail(h, api.Errorf(api.ErrOutOfMemory, "device %d has %d bytes not yet shared out; the share asks %d", sh.index, left, quota))
		return
	}
	s.mu.Lock()
	d := &sessionDevice{session: s.id, ordinal: uint32(len(s.devices)), shard: sh, quota: quota, quantum: quantumOf(millionths), grant: grant.Key, unGrant: grant.Release}
	s.devices = append(s.devices, d)
	def := &streamObj{dev: d}
	s.streams[api.DefaultStream(d.ordinal)] = def
	s.mu.Unlock()
	d.submit(func() {
		if bs, err := sh.dev.NewStream(0, 0); err != nil {
			def.err = err
		} else {
			def.bs = bs
		}
	})
	s.log.Info("device attached", "device", sh.index, "ordinal", d.ordinal, "quota_bytes", quota)
	s.reply(h, nil, &api.AttachReply{Ordinal: d.ordinal, Device: uint32(sh.index), QuotaBytes: quota}, nil)
	if d.ordinal == 0 && sh.node >= 0 {
		for _, c := range []transport.Conn{s.conn, s.bulkConn()} {
			if p, ok := c.(nodePlacer); ok {
				s.placeConn(p, sh.node)
			}
		}
	}
}

// nodePlacer is a connection whose buffers can move to a NUMA node: the
// shared-memory transport's region.
type nodePlacer interface {
	PlaceOnNode(node int) error
}

// placeConn moves the buffers of one of the session's connections (its own,
// its bulk lane's) to node. It runs once per session, after the attach is
// answered: moving tens of megabytes of
// pages takes a few milliseconds, and the pages stay valid while they move.
func (s *session) placeConn(p nodePlacer, node int) {
	if err := p.PlaceOnNode(node); err != nil {
		s.log.Warn("connection buffers stay where they are", "node", node, "err", err)
		return
	}
	s.log.Debug("connection buffers moved", "node", node)
}

func (s *session) holds(sh *shard) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.shard == sh {
			return true
		}
	}
	return false
}

func (s *session) deviceGet(h api.Header, m *api.DeviceGet) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	info := d.shard.info
	s.replyOnReader(h, nil, &api.DeviceInfo{
		Name: info.Name, UUID: info.UUID, TotalMem: d.quota,
		DriverVersion: info.DriverVersion, Attrs: info.Attrs,
		AddrLow: info.AddrLow, AddrHigh: info.AddrHigh,
	}, nil)
}

// memAlloc runs on the shard.
func (s *session) memAlloc(h api.Header, d *sessionDevice, size uint64, retried bool) {
	if size == 0 {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "allocation of 0 bytes"))
		return
	}
	n := accounted(size)
	if n < size || !d.allocs.charge(n, d.quota) {
		used, _ := d.allocs.usage()
		s.fail(h, api.Errorf(api.ErrOutOfMemory, "allocation of %d bytes would pass the session's share: %d of %d bytes in use", size, used, d.quota))
		return
	}
	ptr, err := d.shard.dev.Alloc(size)
	if errors.Is(err, api.ErrOutOfMemory) && d.freeing.Load() > 0 && !retried {
		// The device is full of memory this session has freed but whose
		// frees wait for its queued work: wait for them, as cuMemAlloc's
		// caller expects memory it freed to be there, and try once more.
		d.allocs.uncharge(n)
		s.afterStreams(d, func() {
			d.submit(func() { s.memAlloc(h, d, size, true) })
		})
		return
	}
	if err != nil {
		d.allocs.uncharge(n)
		s.fail(h, err)
		return
	}
	d.allocs.insert(ptr, n)
	s.reply(h, nil, &api.MemAllocReply{Ptr: ptr}, nil)
}

// memFree takes the allocation out of the session's table at once, so no
// later call can name it, and returns its bytes to the session's share at
// once, so that an allocation right after a free succeeds as it does with
// CUDA's synchronous cuMemFree. The device frees it once the work already
// queued on the session's streams, which may use it, has run.
func (s *session) memFree(h api.Header, ptr uint64) {
	d, err := s.deviceOf(ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	d.submit(func() {
		a, ok := d.allocs.remove(ptr)
		if !ok || a.global {
			if ok { // a module global belongs to its module: put it back
				d.allocs.insertGlobal(a.base, a.size)
			}
			s.fail(h, api.Errorf(api.ErrInvalidValue, "%#x is not the base of an allocation of this session", ptr))
			return
		}
		d.allocs.uncharge(a.size)
		d.freeing.Add(1)
		s.afterWork(d, func() { // calls_peer.go
			d.submit(func() {
				err := s.freeDevice(d, ptr) // calls_ipc.go
				d.freeing.Add(-1)
				if err != nil {
					s.fail(h, err)
					return
				}
				s.reply0(h)
			})
		})
	})
}

// memcpyHtoD reads the payload into a staging buffer (bounded per session,
// so a client cannot make the server buffer without limit) and queues the
// copy.
func (s *session) memcpyHtoD(h api.Header, m *api.MemcpyHtoD, pl payload) error {
	n := pl.n
	if dst := s.directTarget(m, n); dst != nil {
		if err := pl.read(dst); err != nil {
			return err
		}
		s.reply0(h)
		return nil
	}
	buf, release, err := s.readStaged(pl)
	if err != nil {
		return err
	}
	if n == 0 {
		release()
		s.reply0(h)
		return nil
	}
	d, err := s.deviceOf(m.Dst)
	if err != nil {
		release()
		s.fail(h, err)
		return nil
	}
	s.onStreamCost(h, m.Stream, costOf(n), func(st *streamObj) error {
		err := sameDevice(st, d)
		if err == nil {
			err = inRange(d, "destination", m.Dst, uint64(n))
		}
		if err == nil {
			err = st.bs.CopyHtoD(m.Dst, buf, release)
		}
		if err != nil {
			release()
		}
		return err
	})
	return nil
}

// idle reports, from the reader, whether the session has nothing queued on
// d's shard and nothing queued, running or unreported on the given streams
// (all of its streams on d when none are given). Only backends whose
// streams can tell (backend.Idler) are ever idle.
func (s *session) idle(d *sessionDevice, streams ...*streamObj) bool {
	if d.outstanding.Load() != 0 {
		return false
	}
	// With no task outstanding, the tasks that created the streams have run.
	if len(streams) == 0 {
		s.mu.Lock()
		for _, st := range s.streams {
			if st.dev == d {
				streams = append(streams, st)
			}
		}
		s.mu.Unlock()
	}
	for _, st := range streams {
		if st.bs == nil {
			return false
		}
		idler, ok := st.bs.(backend.Idler)
		if !ok || !idler.Idle() {
			return false
		}
	}
	return true
}

// directTarget returns the device memory a host-to-device payload may be
// read into directly, or nil. That is safe when the device's memory is host
// memory, the stream has nothing queued or running, and the session has no
// task waiting on the shard: then the copy, done now, lands exactly where
// in the stream's order it would have.
func (s *session) directTarget(m *api.MemcpyHtoD, n int) []byte {
	if n == 0 {
		return nil
	}
	return s.direct(m.Stream, "destination", m.Dst, uint64(n))
}

// directSource is directTarget's twin for device-to-host copies: the device
// memory the reply may be written from directly, or nil.
func (s *session) directSource(m *api.MemcpyDtoH) []byte {
	return s.direct(m.Stream, "source", m.Src, m.Size)
}

// direct returns the host view of the device range [ptr, ptr+n) when a
// copy on stream may touch it now, from the reader (see directTarget), or
// nil.
func (s *session) direct(stream api.Handle, what string, ptr, n uint64) []byte {
	st, err := s.stream(stream)
	if err != nil {
		return nil
	}
	d := st.dev
	hm, ok := d.shard.dev.(backend.HostMemory)
	if !ok || !s.idle(d, st) || inRange(d, what, ptr, n) != nil {
		return nil
	}
	b, err := hm.HostBytes(ptr, n)
	if err != nil {
		return nil
	}
	return b
}

// reply0 answers a call that had nothing to do.
func (s *session) reply0(h api.Header) {
	if h.Flags&api.FlagAsync == 0 {
		s.reply(h, nil, nil, nil)
	}
}

// memcpyDtoH always replies, async or not: the reply carries the bytes.
func (s *session) memcpyDtoH(h api.Header, m *api.MemcpyDtoH) {
	h.Flags &^= api.FlagAsync
	if m.Size == 0 {
		s.reply(h, nil, nil, nil)
		return
	}
	if m.Size > maxCopy {
		s.reply(h, api.Errorf(api.ErrInvalidValue, "copy of %d bytes in one call; the limit is %d", m.Size, maxCopy), nil, nil)
		return
	}
	d, err := s.deviceOf(m.Src)
	if err != nil {
		s.reply(h, err, nil, nil)
		return
	}
	if src := s.directSource(m); src != nil {
		s.reply(h, nil, nil, src)
		return
	}
	s.withStream(h, m.Stream, func(st *streamObj) error {
		if err := sameDevice(st, d); err != nil {
			return err
		}
		if err := inRange(d, "source", m.Src, m.Size); err != nil {
			return err
		}
		var staged []byte // only when the backend hands the bytes over in pieces
		return st.bs.CopyDtoH(m.Src, m.Size, func(off uint64, b []byte) error {
			if off == 0 && uint64(len(b)) == m.Size {
				s.reply(h, nil, nil, b)
				return nil
			}
			if staged == nil {
				staged = getStaging(int(m.Size))
			}
			copy(staged[off:], b)
			if off+uint64(len(b)) == m.Size {
				s.reply(h, nil, nil, staged)
				putStaging(staged)
			}
			return nil
		})
	})
}

// maxCopy bounds one device-to-host copy call: the reply's payload must fit
// a frame. Clients split larger copies.
const maxCopy = 256 << 20

// moduleLoad reads a module image under the same per-session staging
// budget as copies, parses it on the reader (off the shard: a large image
// takes long to parse, and only its own session should wait), and loads it
// on the shard. The memory its globals take is charged to the session's
// share.
func (s *session) moduleLoad(h api.Header, m *api.ModuleLoad, pl payload) error {
	switch {
	case pl.n == 0:
		s.fail(h, api.Errorf(api.ErrInvalidImage, "empty module image"))
		return nil
	case int64(pl.n) > s.srv.cfg.MaxModuleImage:
		s.fail(h, api.Errorf(api.ErrInvalidImage, "module image of %d bytes; the limit is %d", pl.n, s.srv.cfg.MaxModuleImage))
		return nil // the payload, unread, is skipped by the next Recv
	}
	weight := min(int64(pl.n), s.srv.cfg.MaxStaging)
	if err := s.stage(weight); err != nil {
		return err
	}
	image := getStaging(pl.n)
	release := func() {
		putStaging(image)
		s.unstage(weight)
	}
	if err := pl.read(image); err != nil {
		release()
		return err
	}
	d, err := s.device(m.Ordinal)
	if err != nil {
		release()
		s.fail(h, err)
		return nil
	}
	var prepared backend.PreparedModule
	prep, canPrepare := d.shard.dev.(backend.ModulePreparer)
	if canPrepare {
		if prepared, err = prep.PrepareModule(image); err != nil {
			release()
			s.fail(h, err)
			return nil
		}
	}
	mod := &moduleObj{dev: d, globals: map[string]allocation{}}
	regErr := register(s, s.modules, m.Module, "module", mod, s.srv.cfg.MaxModules)
	if regErr != nil {
		release()
	}
	s.makeCost(h, d, regErr, costOf(pl.n), func() error {
		// The image is the prepared module's until the load is done.
		defer release()
		if canPrepare {
			if n, known := prepared.GlobalBytes(); known {
				if err := s.chargeGlobals(d, mod, n); err != nil {
					mod.err = err
					return err
				}
			}
		}
		var bm backend.Module
		var err error
		if canPrepare {
			bm, err = prep.LoadPrepared(prepared)
		} else {
			bm, err = d.shard.dev.LoadModule(image)
		}
		if err != nil {
			d.allocs.uncharge(mod.charged)
			mod.charged, mod.err = 0, err
			return err
		}
		mod.bm = bm
		return nil
	})
	return nil
}

// chargeGlobals charges the n bytes of a module's globals to the session's
// share on d, or fails with CUDA_ERROR_OUT_OF_MEMORY when they do not fit:
// a module's variables are the session's memory like any other. (The cuda
// backend cannot tell before the driver has loaded the image, and there
// they go uncharged.)
func (s *session) chargeGlobals(d *sessionDevice, mod *moduleObj, n uint64) error {
	c := accounted(n)
	if c < n || !d.allocs.charge(c, d.quota) {
		used, _ := d.allocs.usage()
		return api.Errorf(api.ErrOutOfMemory, "the module's globals take %d bytes, past the session's share: %d of %d bytes in use", n, used, d.quota)
	}
	mod.charged = c
	return nil
}

func (s *session) moduleUnload(h api.Header, m *api.ModuleUnload) {
	s.mu.Lock()
	mod := s.modules[m.Module]
	if mod != nil {
		delete(s.modules, m.Module)
		for fh, f := range s.functions {
			if f.mod == mod {
				delete(s.functions, fh)
			}
		}
	}
	s.mu.Unlock()
	if mod == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "module %#x", m.Module))
		return
	}
	d := mod.dev
	// Launches already queued may still run this module's code.
	s.afterWork(d, func() {
		d.submit(func() {
			for _, g := range mod.globals {
				d.allocs.remove(g.base)
			}
			if mod.bm != nil {
				err := mod.bm.Unload()
				d.allocs.uncharge(mod.charged)
				if err != nil {
					s.fail(h, err)
					return
				}
			}
			s.reply0(h)
		})
	})
}

func (s *session) moduleGetFunction(h api.Header, m *api.ModuleGetFunction) {
	s.mu.Lock()
	mod := s.modules[m.Module]
	s.mu.Unlock()
	if mod == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "module %#x", m.Module))
		return
	}
	f := &functionObj{mod: mod}
	if err := register(s, s.functions, m.Function, "function", f, maxFunctions); err != nil {
		s.fail(h, err)
		return
	}
	mod.dev.submit(func() {
		if mod.err != nil {
			f.err = mod.err
		} else if mod.bm == nil {
			f.err = api.Errorf(api.ErrInvalidHandle, "module was unloaded")
		} else if bf, err := mod.bm.Function(m.Name); err != nil {
			f.err = err
		} else {
			f.bf, f.params = bf, bf.Params()
		}
		if f.err != nil {
			s.fail(h, f.err)
			return
		}
		if h.Flags&api.FlagAsync == 0 {
			s.reply(h, nil, &api.FunctionInfo{Params: f.params}, nil)
		}
	})
}

func (s *session) moduleGetGlobal(h api.Header, m *api.ModuleGetGlobal) {
	s.mu.Lock()
	mod := s.modules[m.Module]
	s.mu.Unlock()
	if mod == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "module %#x", m.Module))
		return
	}
	d := mod.dev
	d.submit(func() {
		if mod.err != nil {
			s.fail(h, mod.err)
			return
		}
		ptr, size, err := mod.bm.Global(m.Name)
		if err != nil {
			s.fail(h, err)
			return
		}
		if _, ok := mod.globals[m.Name]; !ok && size > 0 {
			// The session may copy to and from its module's globals. They
			// are charged to nobody (the module owns them) and cannot be
			// freed by MemFree.
			mod.globals[m.Name] = allocation{base: ptr, size: size, global: true}
			d.allocs.insertGlobal(ptr, size)
		}
		s.reply(h, nil, &api.GlobalInfo{Ptr: ptr, Size: size}, nil)
	})
}

func (s *session) launch(h api.Header, m *api.LaunchKernel) {
	s.mu.Lock()
	f := s.functions[m.Function]
	st := s.streams[m.Stream]
	s.mu.Unlock()
	switch {
	case f == nil:
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "function %#x", m.Function))
		return
	case st == nil:
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "stream %#x", m.Stream))
		return
	case st.dev != f.mod.dev:
		s.fail(h, api.Errorf(api.ErrInvalidValue, "function and stream are on different devices"))
		return
	}
	// Nothing of m is kept: the reader decodes the next launch into it.
	t := launchTasks.Get().(*launchTask)
	t.s, t.h, t.st, t.f = s, h, st, f
	t.cfg = backend.LaunchConfig{Grid: m.Grid, Block: m.Block, SharedMem: m.SharedMem}
	t.params = append(t.params[:0], m.Params...) // m.Params aliases the connection's buffer
	st.dev.submitRunner(t)
}

// launchTask is a launch on its way to the shard. Launches are the calls
// applications make most, many per synchronous call, so their tasks are
// recycled, parameter buffer and all: the backend copies what it keeps.
type launchTask struct {
	s      *session
	h      api.Header
	st     *streamObj
	f      *functionObj
	cfg    backend.LaunchConfig
	params []byte
}

var launchTasks = sync.Pool{New: func() any { return new(launchTask) }}

func (t *launchTask) abort(err error) {
	t.s.done(t.h, t.st, err)
	*t = launchTask{params: t.params[:0]}
	launchTasks.Put(t)
}

func (t *launchTask) run() {
	err := t.st.ready()
	if err == nil && t.f.err != nil {
		err = t.f.err
	}
	if err == nil {
		t.s.queuing(t.st)
		err = t.st.bs.Launch(t.f.bf, t.cfg, t.params, &t.st.dev.allocs)
	}
	t.s.done(t.h, t.st, err)
	*t = launchTask{params: t.params[:0]}
	launchTasks.Put(t)
}

func (s *session) streamCreate(h api.Header, m *api.StreamCreate) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	st := &streamObj{dev: d}
	s.make(h, d, register(s, s.streams, m.Stream, "stream", st, s.srv.cfg.MaxStreams), func() error {
		bs, err := d.shard.dev.NewStream(m.Flags, m.Priority)
		if err != nil {
			st.err = err // not bs: it may be a typed nil
		} else {
			st.bs = bs
		}
		return err
	})
}

// make finishes the creation of an object with a client-chosen handle:
// unless registering it failed (regErr), mk makes it on d's shard, and a
// synchronous call is answered with mk's verdict.
func (s *session) make(h api.Header, d *sessionDevice, regErr error, mk func() error) {
	s.makeCost(h, d, regErr, 1, mk)
}

// makeCost is make for an object whose creation weighs cost in the fair queue.
func (s *session) makeCost(h api.Header, d *sessionDevice, regErr error, cost int, mk func() error) {
	if regErr != nil {
		s.fail(h, regErr)
		return
	}
	d.submitCost(s.newCall(h, func() {
		if err := mk(); err != nil {
			s.fail(h, err)
			return
		}
		s.reply0(h)
	}), cost)
}

func (s *session) streamDestroy(h api.Header, m *api.StreamDestroy) {
	if m.Stream >= api.DefaultStreamBase {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "the default stream cannot be destroyed"))
		return
	}
	s.mu.Lock()
	st := s.streams[m.Stream]
	delete(s.streams, m.Stream)
	s.mu.Unlock()
	if st == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "stream %#x", m.Stream))
		return
	}
	st.dev.submit(func() {
		if st.bs == nil {
			s.reply0(h)
			return
		}
		// Work still queued runs to the end, as with cuStreamDestroy; its
		// errors are the session's.
		bs := st.bs
		st.bs = nil
		n := st.unmarked
		st.unmarked = 0
		s.settle(bs, n)
		if err := bs.Destroy(); err != nil {
			s.fail(h, err)
			return
		}
		s.reply0(h)
	})
}

// eventOnStream queues fn on a stream with an event of the same device:
// a stream's wait on an event, or an event's record on a stream.
func (s *session) eventOnStream(h api.Header, stream, event api.Handle, fn func(backend.Stream, backend.Event) error) {
	ev, err := s.event(event)
	if err != nil {
		s.fail(h, err)
		return
	}
	s.onStream(h, stream, func(st *streamObj) error {
		if ev.dev != st.dev {
			return api.Errorf(api.ErrNotSupported, "an event and a stream of different devices")
		}
		if err := ev.ready(); err != nil {
			return err
		}
		return fn(st.bs, ev.be)
	})
}

func (s *session) eventCreate(h api.Header, m *api.EventCreate) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	ev := &eventObj{dev: d}
	s.make(h, d, register(s, s.events, m.Event, "event", ev, s.srv.cfg.MaxEvents), func() error {
		be, err := d.shard.dev.NewEvent(m.Flags)
		if err != nil {
			ev.err = err
		} else {
			ev.be = be
		}
		return err
	})
}

func (s *session) eventElapsed(h api.Header, m *api.EventElapsedTime) {
	start, err := s.event(m.Start)
	if err != nil {
		s.fail(h, err)
		return
	}
	end, err := s.event(m.End)
	if err != nil {
		s.fail(h, err)
		return
	}
	if start.dev != end.dev {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "events of different devices"))
		return
	}
	s.withEvent(h, m.Start, func(*eventObj) error {
		if err := end.ready(); err != nil {
			return err
		}
		d, err := start.dev.shard.dev.ElapsedTime(start.be, end.be)
		if err != nil {
			return err
		}
		s.reply(h, nil, &api.ElapsedTime{Milliseconds: float32(d.Seconds() * 1e3)}, nil)
		return nil
	})
}

func (s *session) eventDestroy(h api.Header, m *api.EventDestroy) {
	s.mu.Lock()
	ev := s.events[m.Event]
	delete(s.events, m.Event)
	s.mu.Unlock()
	if ev == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "event %#x", m.Event))
		return
	}
	ev.dev.submit(func() {
		if ev.be != nil {
			s.destroyEvent(ev.be) // calls_ipc.go
			ev.be = nil
		}
		s.reply0(h)
	})
}
