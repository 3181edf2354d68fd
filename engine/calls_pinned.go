package engine

import (
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/transport"
)

// Pinned host memory the server reads in place. A client on the same host
// allocates its page-locked memory in files it passes over the shared-memory
// connection's socket; PinnedMap maps one here, and the pinned copies name
// a range of it instead of carrying bytes, so a copy is this process's one
// copy between the mapping and device memory. The regions are the
// session's: their ids resolve in its own table only, so no session can
// name another's.
//
// Lifetime. A copy looks its region up on the reader and queues its work
// on a stream through the shard, as every copy does; PinnedUnmap takes the
// region out of use at once (no later call can name it) and unmaps it only
// after the work the session had queued on every device has run, as
// memFree waits before the device frees memory. Its answer therefore tells
// the client that the server no longer touches the memory. When the
// session ends, its regions are unmapped after its streams are quiet.

// regionTaker is a connection over which the client can pass host regions:
// the shared-memory transport's.
type regionTaker interface {
	TakeRegion(id uint32, size uint64, node int, wait time.Duration) ([]byte, func(), error)
	DropRegion(id uint32, wait time.Duration) error
}

// Limits on a session's pinned regions: the server allocates their pages,
// so they are bounded as staging is.
const (
	maxPinnedRegions = 4096
	maxPinnedBytes   = 64 << 30
	// regionWait bounds the wait for a region's file, which the client
	// passes before it sends PinnedMap, so it is normally there already.
	regionWait = 2 * time.Second
)

// pinnedRegion is a client's host region mapped here.
type pinnedRegion struct {
	id    uint32
	mem   []byte
	unmap func()

	// The reader's, under session.mu.
	closing bool // PinnedUnmap has begun: no call may name it

	mu         sync.Mutex
	registered map[*shard]bool // devices whose driver was asked to register mem, and whether it did
}

// pinnedTable is a session's pinned regions.
type pinnedTable struct {
	regions map[uint32]*pinnedRegion
	bytes   uint64
}

// regionConn is the session connection that can pass host regions: the
// call lane's, else the bulk lane's.
func (s *session) regionConn() regionTaker {
	for _, c := range []transport.Conn{s.conn, s.bulkConn()} {
		if rt, ok := c.(regionTaker); ok {
			return rt
		}
	}
	return nil
}

// pinnedMap maps a region the client passed. It runs on the reader: the
// file is there already, and mapping and placing it delays this session
// alone.
func (s *session) pinnedMap(h api.Header, m *api.PinnedMap) {
	rt := s.regionConn()
	if rt == nil {
		s.fail(h, api.Errorf(api.ErrNotSupported, "pinned host memory is shared over shared-memory connections only"))
		return
	}
	s.mu.Lock()
	_, dup := s.pinned.regions[m.Region]
	n, total := len(s.pinned.regions), s.pinned.bytes
	node := -1
	if len(s.devices) > 0 {
		node = s.devices[0].shard.node
	}
	s.mu.Unlock()
	var refuse error
	switch {
	case dup:
		refuse = api.Errorf(api.ErrInvalidValue, "region %d is mapped already", m.Region)
	case n >= maxPinnedRegions || m.Size > maxPinnedBytes-total:
		refuse = api.Errorf(api.ErrOutOfMemory, "pinned region of %d bytes: the session holds %d regions, %d bytes; the limits are %d and %d", m.Size, n, total, maxPinnedRegions, uint64(maxPinnedBytes))
	}
	if refuse != nil {
		// The client falls back to ordinary memory and may ask again and
		// again: its file must not stay held against its limit.
		rt.DropRegion(m.Region, regionWait)
		s.fail(h, refuse)
		return
	}
	mem, unmap, err := rt.TakeRegion(m.Region, m.Size, node, regionWait)
	if err != nil {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "map region %d: %v", m.Region, err))
		return
	}
	r := &pinnedRegion{id: m.Region, mem: mem, unmap: unmap, registered: map[*shard]bool{}}
	s.mu.Lock()
	if s.pinned.regions == nil {
		s.pinned.regions = map[uint32]*pinnedRegion{}
	}
	s.pinned.regions[m.Region] = r
	s.pinned.bytes += m.Size
	s.mu.Unlock()
	s.log.Debug("pinned region mapped", "region", m.Region, "bytes", m.Size, "node", node)
	s.replyOnReader(h, nil, nil, nil)
}

// pinnedRange returns the bytes [off, off+n) of the session's region id.
func (s *session) pinnedRange(id uint32, off, n uint64) (*pinnedRegion, []byte, error) {
	s.mu.Lock()
	r, ok := s.pinned.regions[id]
	ok = ok && !r.closing
	s.mu.Unlock()
	if !ok {
		return nil, nil, api.Errorf(api.ErrInvalidValue, "region %d is not mapped in this session", id)
	}
	if off > uint64(len(r.mem)) || n > uint64(len(r.mem))-off {
		return nil, nil, api.Errorf(api.ErrInvalidValue, "range %d+%d is outside region %d of %d bytes", off, n, id, len(r.mem))
	}
	return r, r.mem[off : off+n : off+n], nil
}

// registeredOn registers the region with d's driver the first time a copy
// uses it there, and reports whether the driver knows it. It runs on d's
// shard. A driver that refuses (a memlock limit) leaves the copies to the
// backend's staged path, with a log line.
func (r *pinnedRegion) registeredOn(s *session, d *sessionDevice) bool {
	hr, ok := d.shard.dev.(backend.HostRegistrar)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	done, tried := r.registered[d.shard]
	if tried {
		return done
	}
	err := hr.RegisterHost(r.mem)
	if err != nil {
		s.log.Warn("pinned region not registered with the driver; its copies are staged", "region", r.id, "device", d.shard.index, "err", err)
	}
	r.registered[d.shard] = err == nil
	return err == nil
}

// unregisterFrom undoes registeredOn on d. It runs on d's shard once no
// work that uses the region is queued there.
func (r *pinnedRegion) unregisterFrom(s *session, d *sessionDevice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.registered[d.shard] {
		if err := d.shard.dev.(backend.HostRegistrar).UnregisterHost(r.mem); err != nil {
			s.log.Warn("pinned region unregister failed", "region", r.id, "device", d.shard.index, "err", err)
		}
	}
	delete(r.registered, d.shard)
}

// memcpyHtoDPinned queues a copy from a region to the device: the stream
// reads the region when it reaches the copy.
func (s *session) memcpyHtoDPinned(h api.Header, m *api.MemcpyHtoDPinned) {
	s.pinnedCopy(h, true, m.Dst, m.Region, m.Offset, m.Size, m.Stream)
}

// memcpyDtoHPinned queues a copy from the device into a region. Unlike
// MemcpyDtoH it carries no bytes back, so sent async it gets no reply: its
// failure is latched, and the bytes are there once the stream is
// synchronised.
func (s *session) memcpyDtoHPinned(h api.Header, m *api.MemcpyDtoHPinned) {
	s.pinnedCopy(h, false, m.Src, m.Region, m.Offset, m.Size, m.Stream)
}

// pinnedCopy copies n bytes between [off, off+n) of a region and device
// address ptr, toward the device or from it, in order on stream. On the
// host backend, with the stream idle, the reader copies at once, which is
// the same point in the stream's order (see directTarget), sparing the
// trip through shard and stream worker: under load each hand-off waits for
// a processor.
func (s *session) pinnedCopy(h api.Header, toDevice bool, ptr uint64, region uint32, off, n uint64, stream api.Handle) {
	r, host, err := s.pinnedRange(region, off, n)
	if err != nil {
		s.fail(h, err)
		return
	}
	if n == 0 {
		s.reply0(h)
		return
	}
	what := "source"
	if toDevice {
		what = "destination"
	}
	if dev := s.direct(stream, what, ptr, n); dev != nil {
		dst, src := host, dev
		if toDevice {
			dst, src = dev, host
		}
		s.copyThenReply(h, dst, src)
		return
	}
	d, err := s.deviceOf(ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	s.onStreamCost(h, stream, costOf(int(min(n, maxCopy))), func(st *streamObj) error {
		if err := sameDevice(st, d); err != nil {
			return err
		}
		if err := inRange(d, what, ptr, n); err != nil {
			return err
		}
		rc, dma := st.bs.(backend.RegisteredCopier)
		dma = dma && r.registeredOn(s, d)
		switch {
		case toDevice && dma:
			return rc.CopyHtoDRegistered(ptr, host)
		case toDevice:
			return st.bs.CopyHtoD(ptr, host, func() {})
		case dma:
			return rc.CopyDtoHRegistered(host, ptr)
		}
		return st.bs.CopyDtoH(ptr, n, func(off uint64, b []byte) error {
			copy(host[off:], b)
			return nil
		})
	})
}

// announcer is a connection that can wake its peer ahead of a record, so
// that the peer is awake when it lands: the shared-memory transport's
// (see shm.Conn.Soon).
type announcer interface {
	Soon()
}

// soonLead is how much of a copy is left when a client waiting for its
// reply is woken: at 4-8 GB/s, 130-260 µs of copying, about what a thread
// whose vCPU has gone idle takes to wake on a VM (35-200 µs, measured),
// and less than the client then polls (shm's soonWindow, 1 ms).
const soonLead = 1 << 20

// copyThenReply copies src into dst on the reader and replies. When the
// client waits for the reply over a connection that can be told, it is
// woken a little before the copy ends, so that it polls as the reply
// lands instead of being woken after it: one wake-up of an idle vCPU per
// call less.
func (s *session) copyThenReply(h api.Header, dst, src []byte) {
	a, ok := s.conn.(announcer)
	if n := len(dst); ok && h.Flags&api.FlagAsync == 0 && n >= 2*soonLead {
		copy(dst[:n-soonLead], src)
		a.Soon()
		copy(dst[n-soonLead:], src[n-soonLead:])
	} else {
		copy(dst, src)
	}
	s.reply0(h)
}

// pinnedUnmap takes the region out of use at once, and unmaps it and
// answers once the work queued before it, on every device, has run.
func (s *session) pinnedUnmap(h api.Header, m *api.PinnedUnmap) {
	s.mu.Lock()
	r, ok := s.pinned.regions[m.Region]
	if ok && r.closing {
		ok = false
	}
	if ok {
		r.closing = true
	}
	devices := append([]*sessionDevice(nil), s.devices...)
	s.mu.Unlock()
	if !ok {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "region %d is not mapped in this session", m.Region))
		return
	}
	finish := func() {
		s.mu.Lock()
		if s.pinned.regions[m.Region] == r {
			delete(s.pinned.regions, m.Region)
			s.pinned.bytes -= uint64(len(r.mem))
		}
		s.mu.Unlock()
		r.unmap()
		s.reply0(h)
	}
	if len(devices) == 0 {
		finish()
		return
	}
	var left sync.WaitGroup
	left.Add(len(devices))
	for _, d := range devices {
		s.afterStreams(d, func() {
			d.submit(func() {
				r.unregisterFrom(s, d)
				left.Done()
			})
		})
	}
	go func() {
		left.Wait()
		finish()
	}()
}

// unpinFrom unregisters every region of the session from d. It runs on
// d's shard when the session ends, after its streams there are quiet.
func (s *session) unpinFrom(d *sessionDevice) {
	s.mu.Lock()
	regions := make([]*pinnedRegion, 0, len(s.pinned.regions))
	for _, r := range s.pinned.regions {
		regions = append(regions, r)
	}
	s.mu.Unlock()
	for _, r := range regions {
		r.unregisterFrom(s, d)
	}
}

// unmapPinned unmaps every region of an ended session, once nothing of its
// runs on any device.
func (s *session) unmapPinned() {
	s.mu.Lock()
	regions := s.pinned.regions
	s.pinned = pinnedTable{}
	s.mu.Unlock()
	for _, r := range regions {
		r.unmap()
	}
}
