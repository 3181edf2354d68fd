package interpose

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport/shm"
)

// HostMem is page-locked host memory (cuMemAllocHost, cuMemHostAlloc).
//
// Over a shared-memory connection it lives in a file the server maps too
// (see transport/shm's host regions), so a copy between it and the device
// carries no bytes: the call names the range, and the server's one copy
// goes between its mapping and device memory. An asynchronous copy from it
// reads the memory when the stream reaches the copy, as the driver's DMA
// from page-locked memory does, so the application must not change the
// range until the stream has passed the copy (cuStreamSynchronize, an
// event); an asynchronous copy into it writes the memory then, so the
// application reads it after synchronising.
//
// Over TCP, and wherever the server cannot map it, it is ordinary host
// memory (an anonymous mapping) and its copies travel as any host memory's
// do.
//
// Shared memory is a shared mapping: a child forked after the allocation
// sees the same pages, and what it writes there the parent (and the
// server) sees too, where ordinary memory would be copied on write. CUDA
// programs do not use the driver in a forked child; a child that writes
// into its parent's pinned buffers is the case to know about.
type HostMem struct {
	s      *Session
	id     uint32          // the region's id in the session; 0 when not shared
	region *shm.HostRegion // nil when not shared
	b      []byte
	base   uintptr
	freed  atomic.Bool
}

// Bytes is the memory. It is valid until Free.
func (h *HostMem) Bytes() []byte { return h.b }

// Shared reports whether the server maps the memory, so that copies
// between it and the device carry no bytes.
func (h *HostMem) Shared() bool { return h.region != nil }

// HugeTLB reports whether the memory is shared and in the host's reserved
// huge pages (see shm.NewHostRegion).
func (h *HostMem) HugeTLB() bool { return h.region != nil && h.region.HugeTLB() }

// regionSharer is a connection that can pass host regions to the server:
// the shared-memory transport's.
type regionSharer interface {
	ShareRegion(id uint32, h *shm.HostRegion) error
}

// hostMems is a session's shared host memory, by address, so that a copy
// given a slice finds the region it lies in.
type hostMems struct {
	n    atomic.Int32 // len(list): copies skip the lookup while it is 0
	ids  atomic.Uint32
	mu   sync.RWMutex
	list []*HostMem // sorted by base
}

// AllocHost allocates size bytes of page-locked host memory: shared with
// the server when the session has a shared-memory connection, ordinary
// otherwise (see HostMem).
func (s *Session) AllocHost(size int) (*HostMem, error) {
	if size <= 0 {
		return nil, api.Errorf(api.ErrInvalidValue, "host allocation of %d bytes", size)
	}
	if sh := s.regionSharer(); sh != nil {
		h, err := s.allocShared(sh, size)
		if err == nil {
			return h, nil
		}
		if errors.Is(err, api.ErrDeinitialized) {
			return nil, err
		}
		// The server could not map it (a limit, an old server): the
		// memory still works as ordinary memory.
	}
	b, err := anonMap(size)
	if err != nil {
		return nil, api.Errorf(api.ErrOutOfMemory, "host allocation of %d bytes: %v", size, err)
	}
	// Over RDMA the memory is registered once, here, rather than per copy;
	// where it cannot be (a locked-memory limit), copies go through the
	// connection's registered bounce buffer instead.
	s.PinHost(b)
	return &HostMem{s: s, b: b, base: addr(b)}, nil
}

// regionSharer is the session's connection that can pass host regions: the
// call lane's, else the bulk lane's. The server looks in the same order.
func (s *Session) regionSharer() regionSharer {
	if sh, ok := s.conn.(regionSharer); ok {
		return sh
	}
	if sh, ok := s.bulk.(regionSharer); ok {
		return sh
	}
	return nil
}

func (s *Session) allocShared(sh regionSharer, size int) (*HostMem, error) {
	r, err := shm.NewHostRegion(size)
	if err != nil {
		return nil, err
	}
	id := s.hostMem.ids.Add(1)
	if id == 0 {
		id = s.hostMem.ids.Add(1)
	}
	if err := sh.ShareRegion(id, r); err != nil {
		r.Close()
		return nil, err
	}
	if err := s.call(&api.PinnedMap{Region: id, Size: uint64(r.Size())}, nil, nil, nil); err != nil {
		r.Close()
		return nil, err
	}
	mem, err := r.Map()
	if err != nil {
		s.call(&api.PinnedUnmap{Region: id}, nil, nil, nil)
		r.Close()
		return nil, err
	}
	h := &HostMem{s: s, id: id, region: r, b: mem[:size:size], base: addr(mem)}
	s.hostMem.add(h)
	return h, nil
}

// Free releases the memory. Shared memory is first unmapped by the server,
// which answers once the work queued before, which may read or write it,
// has run (cuMemFreeHost synchronises the same way); the memory is then
// released here even when the server could not answer.
func (h *HostMem) Free() error {
	if h.freed.Swap(true) {
		return api.Errorf(api.ErrInvalidValue, "host memory freed twice")
	}
	if h.region == nil {
		h.s.UnpinHost(h.b)
		return anonUnmap(h.b)
	}
	h.s.hostMem.remove(h)
	err := h.s.call(&api.PinnedUnmap{Region: h.id}, nil, nil, nil)
	h.region.Close()
	return err
}

func (m *hostMems) add(h *HostMem) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.list), func(i int) bool { return m.list[i].base >= h.base })
	m.list = append(m.list, nil)
	copy(m.list[i+1:], m.list[i:])
	m.list[i] = h
	m.n.Store(int32(len(m.list)))
}

func (m *hostMems) remove(h *HostMem) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, g := range m.list {
		if g == h {
			m.list = append(m.list[:i], m.list[i+1:]...)
			break
		}
	}
	m.n.Store(int32(len(m.list)))
}

// find returns the shared host memory that holds all of b, and b's offset
// in it.
func (m *hostMems) find(b []byte) (*HostMem, uint64, bool) {
	if m.n.Load() == 0 || len(b) == 0 {
		return nil, 0, false
	}
	p := addr(b)
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.list), func(i int) bool { return m.list[i].base > p }) - 1
	if i < 0 {
		return nil, 0, false
	}
	h := m.list[i]
	off := uint64(p - h.base)
	if off >= uint64(len(h.b)) || uint64(len(b)) > uint64(len(h.b))-off {
		return nil, 0, false
	}
	return h, off, true
}

// addr is the address of b's first byte. It is compared with the bases of
// mappings, never turned back into a pointer.
func addr(b []byte) uintptr { return reflect.ValueOf(b).Pointer() }

// copyHtoDPinned copies src, which lies at off in h, with one call that
// names the range.
func (st *Stream) copyHtoDPinned(dst DevicePtr, h *HostMem, off, n uint64, wait bool) error {
	req := &api.MemcpyHtoDPinned{Dst: uint64(dst), Region: h.id, Offset: off, Size: n, Stream: st.h}
	if !wait {
		return st.d.s.send(req, nil)
	}
	return st.d.s.pinnedCall(req, n)
}

// copyDtoHPinned is copyHtoDPinned's twin. Sent without waiting, it gets
// no reply: the bytes are in h once the stream is synchronised.
func (st *Stream) copyDtoHPinned(h *HostMem, off, n uint64, src DevicePtr, wait bool) error {
	req := &api.MemcpyDtoHPinned{Src: uint64(src), Region: h.id, Offset: off, Size: n, Stream: st.h}
	if !wait {
		return st.d.s.send(req, nil)
	}
	return st.d.s.pinnedCall(req, n)
}

// dueHinter is a connection that can be told when its next reply is due:
// the shared-memory transport's (see shm.Conn.ExpectIn).
type dueHinter interface {
	ExpectIn(d time.Duration)
}

// pinnedCall makes a synchronous pinned copy of n bytes. The server's
// copy takes a time proportional to n, so the reply's arrival is
// predictable from the rate of the copies before: the connection is told,
// so that it waits awake when the reply lands rather than be woken from
// sleep (see shm.Conn.ExpectIn), and the call's time feeds the rate.
func (s *Session) pinnedCall(req api.Message, n uint64) error {
	dh, ok := s.conn.(dueHinter)
	if !ok || n < dueMin {
		return s.call(req, nil, nil, nil)
	}
	if d := s.pinRate.expect(n); d > 0 {
		dh.ExpectIn(d)
	}
	start := time.Now()
	err := s.call(req, nil, nil, nil)
	if err == nil {
		s.pinRate.observe(n, time.Since(start))
	}
	return err
}

// dueMin is the smallest pinned copy whose reply is announced: a smaller
// one takes less than the transport's own polling lasts (some 100 µs).
const dueMin = 1 << 20

// copyRate estimates how long a pinned copy of n bytes takes, from the
// synchronous ones timed before. It leans toward the fastest: a reply
// expected late is slept past (and woken as without a hint), one expected
// early costs a short poll, so the estimate takes a faster copy at once
// and a slower one by an eighth of the difference.
type copyRate struct {
	psPerByte atomic.Int64 // picoseconds a byte; 0 until a copy is timed
}

// expect is how long a copy of n bytes should take; 0 when no copy has
// been timed.
func (r *copyRate) expect(n uint64) time.Duration {
	return time.Duration(uint64(r.psPerByte.Load()) * n / 1000)
}

// observe folds in a copy of n bytes that took d.
func (r *copyRate) observe(n uint64, d time.Duration) {
	if n == 0 || d <= 0 {
		return
	}
	obs := int64(uint64(d) * 1000 / n)
	for {
		old := r.psPerByte.Load()
		next := obs
		if old != 0 && obs > old {
			next = old + (obs-old)/8
		}
		if r.psPerByte.CompareAndSwap(old, next) {
			return
		}
	}
}

// String describes the memory for logs.
func (h *HostMem) String() string {
	if h.region == nil {
		return fmt.Sprintf("host memory, %d bytes, not shared", len(h.b))
	}
	return fmt.Sprintf("host memory, %d bytes, shared as region %d", len(h.b), h.id)
}
