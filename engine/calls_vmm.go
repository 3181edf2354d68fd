package engine

import (
	"slices"
	"sort"
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Virtual memory management (cuMemAddressReserve, cuMemCreate, cuMemMap and
// their inverses), for devices whose backend implements
// backend.VirtualMemory. Physical memory is charged to the session's share
// when it is created, like any allocation; reservations are addresses only
// and cost nothing. A mapped range becomes addressable by the session's
// copies and kernels as a module global is: in its allocation table,
// neither charged again nor freeable by MemFree. Adjacent mappings in one
// reservation are entered as one range, so a buffer that spans several
// physical allocations (PyTorch's expandable segments map a segment a
// piece at a time) is one range to copies and kernels.

// maxReservations bounds a session's reservations per device; physical
// handles are bounded like functions.
const maxReservations = 4096

// vmmState is a session's virtual memory. mu guards reservations and
// mappings; phys is guarded by session.mu, as the other handle tables.
type vmmState struct {
	mu           sync.Mutex
	reservations []*reservation
	phys         map[api.Handle]*physObj
	imports      map[uint64]*ipcExport // IPC memory the session opened, by address: calls_ipc.go
}

type reservation struct {
	dev        *sessionDevice
	base, size uint64
	maps       []mapping // sorted by base
	runs       []uint64  // bases of the ranges entered in dev.allocs
}

type mapping struct {
	base, size uint64
	p          *physObj
}

// physObj is physical memory. refs counts the client's handle and the
// mappings the session's tables hold: when none is left the share gets the
// memory back at once (as MemFree's does), so that a program that unmaps
// and releases sees the memory free. live counts the handle and the
// mappings on the device: when none is left the device frees the memory,
// which for mappings waits on the work queued before the unmap. refs is
// guarded by vmmState.mu and dropped on the shard; live, bp, err and
// charged belong to the shard.
type physObj struct {
	dev     *sessionDevice
	size    uint64
	charged uint64
	refs    int
	live    int
	bp      backend.Physical
	err     error
}

// dropRef drops a reference of the session's tables; vmm.mu held, on the
// shard.
func (p *physObj) dropRef() {
	p.refs--
	if p.refs == 0 && p.charged > 0 {
		p.dev.allocs.uncharge(p.charged)
		p.charged = 0
	}
}

// dropLive drops a reference of the device, on the shard; the last frees
// the memory.
func (p *physObj) dropLive() error {
	p.live--
	if p.live > 0 || p.bp == nil {
		return nil
	}
	err := p.bp.Release()
	p.bp = nil
	return err
}

func (s *session) virtual(d *sessionDevice) (backend.VirtualMemory, error) {
	vm, ok := d.shard.dev.(backend.VirtualMemory)
	if !ok {
		return nil, api.Errorf(api.ErrNotSupported, "virtual memory management on the %s backend", d.shard.info.Backend)
	}
	return vm, nil
}

func granular(what string, n uint64) error {
	if n == 0 || n%api.VMMGranularity != 0 {
		return api.Errorf(api.ErrInvalidValue, "%s of %d bytes: not a multiple of the granularity %d", what, n, api.VMMGranularity)
	}
	return nil
}

func (s *session) memAddressReserve(h api.Header, m *api.MemAddressReserve) {
	s.onDevice(h, m.Ordinal, func(d *sessionDevice) {
		vm, err := s.virtual(d)
		if err == nil {
			err = granular("reservation", m.Size)
		}
		if err == nil && m.Align&(m.Align-1) != 0 {
			err = api.Errorf(api.ErrInvalidValue, "alignment %d is not a power of two", m.Align)
		}
		if err != nil {
			s.fail(h, err)
			return
		}
		s.vmm.mu.Lock()
		n := 0
		for _, r := range s.vmm.reservations {
			if r.dev == d {
				n++
			}
		}
		s.vmm.mu.Unlock()
		if n >= maxReservations {
			s.fail(h, api.Errorf(api.ErrOutOfMemory, "the session holds %d reservations on the device, the most it may", n))
			return
		}
		ptr, err := vm.Reserve(m.Size, m.Align)
		if err != nil {
			s.fail(h, err)
			return
		}
		s.vmm.mu.Lock()
		s.vmm.reservations = append(s.vmm.reservations, &reservation{dev: d, base: ptr, size: m.Size})
		s.vmm.mu.Unlock()
		s.reply(h, nil, &api.MemAllocReply{Ptr: ptr}, nil)
	})
}

// reservationOf finds the session's reservation holding ptr.
func (s *session) reservationOf(ptr uint64) (*reservation, error) {
	s.vmm.mu.Lock()
	defer s.vmm.mu.Unlock()
	for _, r := range s.vmm.reservations {
		if ptr >= r.base && ptr-r.base < r.size {
			return r, nil
		}
	}
	return nil, api.Errorf(api.ErrInvalidValue, "%#x is not in a reservation of this session", ptr)
}

// memAddressFree frees a whole reservation with nothing mapped in it. The
// addresses go back to the device after the session's queued work, and so
// after the unmaps that work held back.
func (s *session) memAddressFree(h api.Header, m *api.MemAddressFree) {
	r, err := s.reservationOf(m.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	d := r.dev
	d.submit(func() {
		var err error
		s.vmm.mu.Lock()
		i := slices.Index(s.vmm.reservations, r)
		switch {
		case i < 0 || r.base != m.Ptr || r.size != m.Size:
			err = api.Errorf(api.ErrInvalidValue, "%#x+%d is not a whole reservation of this session", m.Ptr, m.Size)
		case len(r.maps) > 0:
			err = api.Errorf(api.ErrInvalidValue, "the reservation at %#x still has %d mappings", r.base, len(r.maps))
		default:
			s.vmm.reservations = slices.Delete(s.vmm.reservations, i, i+1)
		}
		s.vmm.mu.Unlock()
		if err != nil {
			s.fail(h, err)
			return
		}
		vm, _ := s.virtual(d)
		s.afterWork(d, func() {
			d.submit(func() {
				if err := vm.FreeReservation(r.base, r.size); err != nil {
					s.fail(h, err)
					return
				}
				s.reply0(h)
			})
		})
	})
}

func (s *session) memCreate(h api.Header, m *api.MemCreate) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	p := &physObj{dev: d, size: m.Size, refs: 1, live: 1}
	s.mu.Lock()
	if s.vmm.phys == nil {
		s.vmm.phys = map[api.Handle]*physObj{}
	}
	s.mu.Unlock()
	s.make(h, d, register(s, s.vmm.phys, m.Handle, "physical memory", p, maxFunctions), func() error {
		p.err = s.createPhysical(d, p)
		return p.err
	})
}

// createPhysical runs on the shard: the charge, then the memory.
func (s *session) createPhysical(d *sessionDevice, p *physObj) error {
	vm, err := s.virtual(d)
	if err == nil {
		err = granular("physical allocation", p.size)
	}
	if err != nil {
		return err
	}
	n := accounted(p.size)
	if !d.allocs.charge(n, d.quota) {
		used, _ := d.allocs.usage()
		return api.Errorf(api.ErrOutOfMemory, "physical allocation of %d bytes would pass the session's share: %d of %d bytes in use", p.size, used, d.quota)
	}
	bp, err := vm.CreatePhysical(p.size)
	if err != nil {
		d.allocs.uncharge(n)
		return err
	}
	p.bp, p.charged = bp, n
	return nil
}

func (s *session) memRelease(h api.Header, m *api.MemRelease) {
	s.mu.Lock()
	p := s.vmm.phys[m.Handle]
	delete(s.vmm.phys, m.Handle)
	s.mu.Unlock()
	if p == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "physical memory %#x", m.Handle))
		return
	}
	p.dev.submit(func() {
		s.vmm.mu.Lock()
		p.dropRef()
		s.vmm.mu.Unlock()
		if err := p.dropLive(); err != nil {
			s.fail(h, err)
			return
		}
		s.reply0(h)
	})
}

// memMap enters the mapping in the session's tables on the reader, so the
// very next call may name the memory (a copy sent right behind an
// asynchronous map), and maps it on the shard, where every later task of
// the session runs after it; a map that fails there is taken out again.
func (s *session) memMap(h api.Header, m *api.MemMap) {
	s.mu.Lock()
	p := s.vmm.phys[m.Handle]
	s.mu.Unlock()
	if p == nil {
		s.fail(h, api.Errorf(api.ErrInvalidHandle, "physical memory %#x", m.Handle))
		return
	}
	r, err := s.reservationOf(m.Ptr)
	if err == nil {
		err = s.enterMapping(r, p, m)
	}
	if err != nil {
		s.fail(h, err)
		return
	}
	d := r.dev
	d.submit(func() {
		err := p.err
		if err == nil && p.bp == nil {
			err = api.Errorf(api.ErrInvalidHandle, "physical memory was released")
		}
		if err == nil {
			var vm backend.VirtualMemory
			if vm, err = s.virtual(d); err == nil {
				err = vm.Map(m.Ptr, m.Size, p.bp, m.Offset)
			}
		}
		if err != nil {
			s.vmm.mu.Lock()
			if i := slices.IndexFunc(r.maps, func(g mapping) bool { return g.base == m.Ptr && g.p == p }); i >= 0 {
				r.maps = slices.Delete(r.maps, i, i+1)
				r.enterRuns()
				p.dropRef()
			}
			s.vmm.mu.Unlock()
			s.fail(h, err)
			return
		}
		p.live++
		s.reply0(h)
	})
}

// enterMapping checks a mapping against p and r and enters it.
func (s *session) enterMapping(r *reservation, p *physObj, m *api.MemMap) error {
	if p.dev != r.dev {
		return api.Errorf(api.ErrInvalidValue, "physical memory of session device %d mapped in a reservation of %d", p.dev.ordinal, r.dev.ordinal)
	}
	if err := granular("mapping", m.Size); err != nil {
		return err
	}
	if m.Offset%api.VMMGranularity != 0 || m.Offset+m.Size < m.Offset || m.Offset+m.Size > p.size {
		return api.Errorf(api.ErrInvalidValue, "mapping of %d bytes from offset %d of a %d-byte allocation", m.Size, m.Offset, p.size)
	}
	if m.Ptr%api.VMMGranularity != 0 || m.Ptr+m.Size < m.Ptr || m.Ptr+m.Size > r.base+r.size {
		return api.Errorf(api.ErrInvalidValue, "mapping %#x+%d is not inside the reservation %#x+%d", m.Ptr, m.Size, r.base, r.size)
	}
	s.vmm.mu.Lock()
	defer s.vmm.mu.Unlock()
	if !slices.Contains(s.vmm.reservations, r) {
		return api.Errorf(api.ErrInvalidValue, "the reservation was freed")
	}
	i := sort.Search(len(r.maps), func(i int) bool { return r.maps[i].base >= m.Ptr })
	if i < len(r.maps) && r.maps[i].base < m.Ptr+m.Size || i > 0 && r.maps[i-1].base+r.maps[i-1].size > m.Ptr {
		return api.Errorf(api.ErrInvalidValue, "%#x+%d is mapped already", m.Ptr, m.Size)
	}
	r.maps = slices.Insert(r.maps, i, mapping{base: m.Ptr, size: m.Size, p: p})
	r.enterRuns()
	p.refs++
	return nil
}

// enterRuns replaces the ranges r has in its device's allocation table by
// the runs of adjacent mappings it has now; vmm.mu must be held.
func (r *reservation) enterRuns() {
	for _, base := range r.runs {
		r.dev.allocs.remove(base)
	}
	r.runs = r.runs[:0]
	for i := 0; i < len(r.maps); {
		base, end := r.maps[i].base, r.maps[i].base+r.maps[i].size
		for i++; i < len(r.maps) && r.maps[i].base == end; i++ {
			end += r.maps[i].size
		}
		r.dev.allocs.insertGlobal(base, end-base)
		r.runs = append(r.runs, base)
	}
}

// memUnmap takes the mappings that tile the range out of the session's
// table at once, so no later call can name them, and unmaps them on the
// device once the work already queued, which may use them, has run.
func (s *session) memUnmap(h api.Header, m *api.MemUnmap) {
	r, err := s.reservationOf(m.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	d := r.dev
	d.submit(func() {
		s.vmm.mu.Lock()
		i := sort.Search(len(r.maps), func(i int) bool { return r.maps[i].base >= m.Ptr })
		j, end := i, m.Ptr
		for j < len(r.maps) && r.maps[j].base == end && end < m.Ptr+m.Size {
			end += r.maps[j].size
			j++
		}
		if j == i || end != m.Ptr+m.Size {
			s.vmm.mu.Unlock()
			s.fail(h, api.Errorf(api.ErrInvalidValue, "%#x+%d is not a run of whole mappings", m.Ptr, m.Size))
			return
		}
		gone := slices.Clone(r.maps[i:j])
		r.maps = slices.Delete(r.maps, i, j)
		r.enterRuns()
		for _, g := range gone {
			g.p.dropRef()
		}
		s.vmm.mu.Unlock()
		vm, _ := s.virtual(d)
		s.afterWork(d, func() {
			d.submit(func() {
				var first error
				for _, g := range gone {
					if err := vm.Unmap(g.base, g.size); err != nil && first == nil {
						first = err
					}
					if err := g.p.dropLive(); err != nil && first == nil {
						first = err
					}
				}
				if first != nil {
					s.fail(h, first)
					return
				}
				s.reply0(h)
			})
		})
	})
}

// releaseVirtual undoes everything the session opened (IPC), mapped,
// created and reserved on d. It runs on the shard when the session ends, after its
// streams are quiet.
func (s *session) releaseVirtual(d *sessionDevice) {
	s.releaseImports(d)
	vm, err := s.virtual(d)
	if err != nil {
		return
	}
	s.vmm.mu.Lock()
	var mine []*reservation
	kept := s.vmm.reservations[:0]
	for _, r := range s.vmm.reservations {
		if r.dev == d {
			mine = append(mine, r)
		} else {
			kept = append(kept, r)
		}
	}
	clear(s.vmm.reservations[len(kept):])
	s.vmm.reservations = kept
	s.vmm.mu.Unlock()
	for _, r := range mine {
		for _, g := range r.maps {
			if err := vm.Unmap(g.base, g.size); err != nil {
				s.log.Error("unmapping a session's memory failed", "ptr", g.base, "err", err)
			}
			g.p.dropLive()
		}
		r.maps = nil
		if err := vm.FreeReservation(r.base, r.size); err != nil {
			s.log.Error("freeing a session's reservation failed", "ptr", r.base, "err", err)
		}
	}
	s.mu.Lock()
	var phys []*physObj
	for h, p := range s.vmm.phys {
		if p.dev == d {
			phys = append(phys, p)
			delete(s.vmm.phys, h)
		}
	}
	s.mu.Unlock()
	for _, p := range phys {
		p.dropLive()
	}
}
