package engine

import (
	"crypto/rand"
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// IPC between processes of one user (cuIpcGetMemHandle, cuIpcOpenMemHandle,
// cuIpcCloseMemHandle; cuIpcGetEventHandle, cuIpcOpenEventHandle, whose
// events follow the same rules of who may open them, and are destroyed
// when their last holder destroys them). An exported allocation gets a key of 128 random
// bits; a session that presents it may open the memory only if it is of
// the same user as the owner, as the server knows users (ipcIdentity), and
// holds the device the memory is on. The opener gets the owner's address
// (one address space per device) entered in its own allocation table, as
// a module global is: addressable by its copies and kernels, neither
// charged to it nor freeable by it. The memory stays charged to its owner
// while the owner holds it; when the owner frees it (or ends), the device
// frees it only once every opener has closed it (or ended), so an opener
// never reaches memory that another tenant has since been given.

// ipcRegistry is the server's exported memory and events, by key.
type ipcRegistry struct {
	mu     sync.Mutex
	byKey  map[[16]byte]*ipcExport
	events map[[16]byte]*ipcEvent
	shared map[backend.Event]*ipcEvent // the same, by the event they share
}

// ipcEvent is an exported event. Its owner's event object and every
// opener's share one backend event, destroyed when the last of them is
// (destroyEvent). Fields are guarded by the registry's mu.
type ipcEvent struct {
	key      [16]byte
	owner    *session
	sh       *shard
	be       backend.Event
	identity string
	refs     int // the owner's object and the openers'
}

// ipcExport is one exported allocation. Its fields are guarded by the
// registry's mu.
type ipcExport struct {
	key        [16]byte
	owner      *session
	sh         *shard
	base, size uint64
	identity   string
	opens      int  // openers' opens not yet closed
	freed      bool // the owner freed it: the last close frees it on the device
}

// ipcIdentity is who a session's user is as the server knows it: the
// subject of a verified client certificate, else the transport's peer (a
// uid the kernel vouches for over shared memory; over plain TCP only the
// client's address, so every user of one host is one user there).
func ipcIdentity(s *session) string {
	info := s.conn.Info()
	if info.PeerSubject != "" {
		return "cert:" + info.PeerSubject
	}
	return s.peer
}

func (s *session) ipcGetMemHandle(h api.Header, m *api.IpcGetMemHandle) {
	d, err := s.deviceOf(m.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	d.submit(func() {
		var size uint64
		for _, a := range d.allocs.all() {
			if a.base == m.Ptr && !a.global {
				size = a.size
			}
		}
		if size == 0 {
			s.fail(h, api.Errorf(api.ErrInvalidValue, "%#x is not the base of an allocation of this session", m.Ptr))
			return
		}
		r := &s.srv.ipc
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, x := range r.byKey {
			if x.owner == s && x.sh == d.shard && x.base == m.Ptr && !x.freed {
				s.reply(h, nil, &api.IpcMemHandle{Key: x.key, Device: uint32(d.shard.index)}, nil)
				return
			}
		}
		key, err := newKey()
		if err != nil {
			s.fail(h, err)
			return
		}
		x := &ipcExport{key: key, owner: s, sh: d.shard, base: m.Ptr, size: size, identity: ipcIdentity(s)}
		if r.byKey == nil {
			r.byKey = map[[16]byte]*ipcExport{}
		}
		r.byKey[x.key] = x
		s.reply(h, nil, &api.IpcMemHandle{Key: x.key, Device: uint32(d.shard.index)}, nil)
	})
}

func (s *session) ipcOpenMemHandle(h api.Header, m *api.IpcOpenMemHandle) {
	r := &s.srv.ipc
	r.mu.Lock()
	x := r.byKey[m.Handle.Key]
	var err error
	switch {
	case x == nil || x.freed || uint32(x.sh.index) != m.Handle.Device:
		// Unknown and foreign keys get the same answer, so a key cannot
		// be probed for.
		err = api.Errorf(api.ErrInvalidValue, "not an IPC handle of memory this session may open")
	case x.identity != ipcIdentity(s):
		err = api.Errorf(api.ErrInvalidValue, "not an IPC handle of memory this session may open")
	case x.owner == s:
		err = api.Errorf(api.ErrInvalidContext, "IPC memory cannot be opened by the session that exported it")
	}
	var d *sessionDevice
	if err == nil {
		if d = s.deviceOn(x.sh); d == nil {
			err = api.Errorf(api.ErrInvalidDevice, "the memory is on device %d, which this session does not hold", x.sh.index)
		}
	}
	if err == nil {
		s.vmm.mu.Lock()
		if s.vmm.imports == nil {
			s.vmm.imports = map[uint64]*ipcExport{}
		}
		if s.vmm.imports[x.base] != nil {
			err = api.Errorf(api.ErrInvalidValue, "the memory is open in this session already")
		} else {
			s.vmm.imports[x.base] = x
			x.opens++
			d.allocs.insertGlobal(x.base, x.size)
		}
		s.vmm.mu.Unlock()
	}
	r.mu.Unlock()
	if err != nil {
		s.fail(h, err)
		return
	}
	s.reply(h, nil, &api.IpcOpened{Ptr: x.base, Size: x.size, Ordinal: d.ordinal}, nil)
}

// ipcCloseMemHandle takes the memory out of the session's table at once
// and lets it go once the session's queued work, which may use it, has run.
func (s *session) ipcCloseMemHandle(h api.Header, m *api.IpcCloseMemHandle) {
	s.vmm.mu.Lock()
	x := s.vmm.imports[m.Ptr]
	delete(s.vmm.imports, m.Ptr)
	s.vmm.mu.Unlock()
	if x == nil {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "%#x is not IPC memory this session opened", m.Ptr))
		return
	}
	d, err := s.deviceOf(m.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	d.allocs.remove(x.base)
	s.afterWork(d, func() {
		d.submit(func() {
			if err := s.srv.ipc.closed(x); err != nil {
				s.fail(h, err)
				return
			}
			s.reply0(h)
		})
	})
}

// closed drops an opener's open of x, on x's shard; the last one frees
// memory its owner has freed.
func (r *ipcRegistry) closed(x *ipcExport) error {
	r.mu.Lock()
	x.opens--
	last := x.opens == 0 && x.freed
	if last {
		delete(r.byKey, x.key)
	}
	r.mu.Unlock()
	if last {
		return x.sh.dev.Free(x.base)
	}
	return nil
}

// freeDevice frees an allocation of the session's on the device, on d's
// shard, once nothing can use it: at once, unless it is exported and open
// elsewhere, when the last close frees it.
func (s *session) freeDevice(d *sessionDevice, ptr uint64) error {
	r := &s.srv.ipc
	r.mu.Lock()
	for k, x := range r.byKey {
		if x.owner != s || x.sh != d.shard || x.base != ptr || x.freed {
			continue
		}
		if x.opens > 0 {
			x.freed = true
			r.mu.Unlock()
			return nil
		}
		delete(r.byKey, k)
	}
	r.mu.Unlock()
	return d.shard.dev.Free(ptr)
}

// releaseImports closes what the session opened on d, when it ends.
func (s *session) releaseImports(d *sessionDevice) {
	s.vmm.mu.Lock()
	var mine []*ipcExport
	for base, x := range s.vmm.imports {
		if x.sh == d.shard {
			mine = append(mine, x)
			delete(s.vmm.imports, base)
		}
	}
	s.vmm.mu.Unlock()
	for _, x := range mine {
		d.allocs.remove(x.base)
		if err := s.srv.ipc.closed(x); err != nil {
			s.log.Error("freeing IPC memory its owner freed failed", "ptr", x.base, "err", err)
		}
	}
}

// newKey is 128 random bits.
func newKey() ([16]byte, error) {
	var k [16]byte
	_, err := rand.Read(k[:])
	if err != nil {
		return k, api.Errorf(api.ErrUnknown, "no randomness for an IPC handle: %v", err)
	}
	return k, nil
}

// ipcGetEventHandle exports an event once the device has made it.
func (s *session) ipcGetEventHandle(h api.Header, m *api.IpcGetEventHandle) {
	s.withEvent(h, m.Event, func(ev *eventObj) error {
		r := &s.srv.ipc
		r.mu.Lock()
		defer r.mu.Unlock()
		if x := r.shared[ev.be]; x != nil {
			if x.owner != s {
				return api.Errorf(api.ErrInvalidValue, "an event opened from another process cannot be exported again")
			}
			s.reply(h, nil, &api.IpcMemHandle{Key: x.key, Device: uint32(x.sh.index)}, nil)
			return nil
		}
		key, err := newKey()
		if err != nil {
			return err
		}
		x := &ipcEvent{key: key, owner: s, sh: ev.dev.shard, be: ev.be, identity: ipcIdentity(s), refs: 1}
		if r.events == nil {
			r.events, r.shared = map[[16]byte]*ipcEvent{}, map[backend.Event]*ipcEvent{}
		}
		r.events[key], r.shared[ev.be] = x, x
		s.reply(h, nil, &api.IpcMemHandle{Key: key, Device: uint32(ev.dev.shard.index)}, nil)
		return nil
	})
}

// ipcOpenEventHandle makes Event, in this session, the exported event.
func (s *session) ipcOpenEventHandle(h api.Header, m *api.IpcOpenEventHandle) {
	r := &s.srv.ipc
	r.mu.Lock()
	x := r.events[m.Handle.Key]
	var err error
	switch {
	case x == nil || uint32(x.sh.index) != m.Handle.Device || x.identity != ipcIdentity(s):
		err = api.Errorf(api.ErrInvalidValue, "not an IPC handle of an event this session may open")
	case x.owner == s:
		err = api.Errorf(api.ErrInvalidContext, "an IPC event cannot be opened by the session that exported it")
	}
	var d *sessionDevice
	if err == nil {
		if d = s.deviceOn(x.sh); d == nil {
			err = api.Errorf(api.ErrInvalidDevice, "the event is on device %d, which this session does not hold", x.sh.index)
		}
	}
	if err == nil {
		err = register(s, s.events, m.Event, "event", &eventObj{dev: d, be: x.be}, s.srv.cfg.MaxEvents)
	}
	if err == nil {
		x.refs++
	}
	r.mu.Unlock()
	if err != nil {
		s.fail(h, err)
		return
	}
	s.reply0(h)
}

// deviceOn is the session's device on shard sh, or nil.
func (s *session) deviceOn(sh *shard) *sessionDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.shard == sh {
			return d
		}
	}
	return nil
}

// destroyEvent destroys a session's backend event, on its shard, unless
// it is exported and others still hold it: the last holder destroys it.
func (s *session) destroyEvent(be backend.Event) error {
	r := &s.srv.ipc
	r.mu.Lock()
	if x := r.shared[be]; x != nil {
		if x.refs--; x.refs > 0 {
			r.mu.Unlock()
			return nil
		}
		delete(r.shared, be)
		delete(r.events, x.key)
	}
	r.mu.Unlock()
	return be.Destroy()
}
