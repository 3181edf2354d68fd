//go:build linux

package shm

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/numa"
	"github.com/gpufabric/gpufabric/transport"
)

// Host regions: page-locked host memory a client allocates (cuMemAllocHost)
// in a file of its own that the server maps too, so that a copy between it
// and the device is the server's one copy, with no payload on the wire.
//
// The client creates the file (NewHostRegion: a memfd, sized and sealed
// against shrinking, no pages yet) and passes it on the connection's
// socket, which until then carried nothing after the handshake
// (Conn.ShareRegion): one record of u32 magic and u32 region id, with the
// descriptor attached. The server's watcher, which reads the socket for
// liveness anyway, keeps the descriptors it receives by id until the
// session's PinnedMap call claims one (Conn.TakeRegion). The server
// allocates the pages and places them on its device's NUMA node, and only
// then does the client map the file (HostRegion.Map), so the pages are
// placed where the server's copies run, as the connection's own region is.

const (
	fileMagic    = 0x47524647 // "GFRG" as a little-endian u32
	fileRecord   = 8          // u32 magic, u32 region id
	maxHeldFiles = 4096       // descriptors received and not yet claimed
)

// HostRegion is a client's file of page-locked host memory, shared with
// the server.
type HostRegion struct {
	fd      int
	size    int
	hugeTLB bool
	mu      sync.Mutex
	reg     *region
}

// NewHostRegion creates a file of size bytes, rounded up to whole pages,
// sealed so that its size can never shrink (a mapping of it cannot fault
// with SIGBUS) and without pages yet: the server allocates them on its
// device's node. Map it once the server has taken it, or at once when no
// server will. A region of at least one huge page is created in the
// operator's reserved huge pages when the pool has room (HugeTLB): those
// are allocated here, as only then does a shortage show as an error, and
// the server's placement asks the kernel to move them to its node.
func NewHostRegion(size int) (*HostRegion, error) {
	if size <= 0 || size > MaxHostRegion {
		return nil, fmt.Errorf("shm: host region of %d bytes; between 1 and %d", size, MaxHostRegion)
	}
	fd, rounded, huge := newHugeTLBFile(size)
	if huge {
		size = rounded
	} else {
		size = (size + pageSize - 1) &^ (pageSize - 1)
		var err error
		fd, err = unix.MemfdCreate("gpufabric-pinned", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			return nil, fmt.Errorf("shm: host region: memfd_create: %w", err)
		}
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("shm: host region: ftruncate: %w", err)
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: host region: seal: %w", err)
	}
	return &HostRegion{fd: fd, size: size, hugeTLB: huge}, nil
}

// Size is the region's size: what was asked, rounded up to whole pages
// (huge pages when HugeTLB).
func (h *HostRegion) Size() int { return h.size }

// HugeTLB reports whether the region is in the operator's reserved huge
// pages (see newHugeTLBFile), with its pages allocated already.
func (h *HostRegion) HugeTLB() bool { return h.hugeTLB }

// Map maps the region, shared, with its pages allocated and in the page
// tables; later calls return the same mapping. The bytes are valid until
// Close.
func (h *HostRegion) Map() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reg != nil {
		return h.reg.mem, nil
	}
	if h.fd < 0 {
		return nil, fmt.Errorf("shm: map host region: %w", transport.ErrClosed)
	}
	// Allocate what the server has not (no server, or one that failed):
	// a failure shows here, not as SIGBUS later.
	mem, err := mapHostFile(h.fd, h.size, true)
	if err != nil {
		return nil, fmt.Errorf("shm: map host region: %w", err)
	}
	populateWrite(mem)
	r := &region{mem: mem}
	h.reg = r
	return r.mem, nil
}

// Close unmaps the region and closes its file. The server's mapping, if it
// has one, stays valid until the server unmaps it.
func (h *HostRegion) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reg != nil {
		h.reg.unmap()
		h.reg = nil
	}
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
	return nil
}

// ShareRegion passes h's file to the peer, tagged id, on the connection's
// socket. It returns once the kernel holds the record, so a call written
// on the ring after it finds the file there on the peer's side. Client
// side; the server claims the file with TakeRegion.
func (c *Conn) ShareRegion(id uint32, h *HostRegion) error {
	h.mu.Lock()
	fd := h.fd
	h.mu.Unlock()
	if fd < 0 {
		return fmt.Errorf("shm: share region %d: %w", id, transport.ErrClosed)
	}
	var rec [fileRecord]byte
	binary.LittleEndian.PutUint32(rec[0:], fileMagic)
	binary.LittleEndian.PutUint32(rec[4:], id)
	c.shareMu.Lock()
	defer c.shareMu.Unlock()
	if c.closed.Load() || c.peerGone.Load() {
		return fmt.Errorf("shm: share region %d: %w", id, transport.ErrClosed)
	}
	n, _, err := c.sock.WriteMsgUnix(rec[:], unix.UnixRights(fd), nil)
	if err == nil && n != len(rec) {
		err = fmt.Errorf("wrote %d of %d bytes", n, len(rec))
	}
	if err != nil {
		return fmt.Errorf("shm: share region %d: %w", id, err)
	}
	return nil
}

// heldFiles are the descriptors the peer passed and nobody claimed yet.
type heldFiles struct {
	mu      sync.Mutex
	fds     map[uint32]int
	arrived chan struct{} // closed and replaced when a file arrives
}

// readSocket is the watcher's loop: it returns when the socket ends (the
// peer closed or died, or we closed), or when the peer broke the record
// format, which closes the connection as a corrupted region does.
func (c *Conn) readSocket() {
	var rec [fileRecord]byte
	have := 0
	oob := make([]byte, unix.CmsgSpace(4*4))
	var fds []int // received, not yet paired with their record
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		n, oobn, flags, _, err := c.sock.ReadMsgUnix(rec[have:], oob)
		if oobn > 0 {
			if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
				for i := range msgs {
					if got, err := unix.ParseUnixRights(&msgs[i]); err == nil {
						fds = append(fds, got...)
					}
				}
			}
		}
		if err != nil || n == 0 {
			return
		}
		have += n
		if flags&unix.MSG_CTRUNC != 0 {
			c.shutdown() // more descriptors than a record carries: not our peer's doing
			return
		}
		if have < fileRecord {
			continue
		}
		have = 0
		le := binary.LittleEndian
		if le.Uint32(rec[0:]) != fileMagic || len(fds) != 1 {
			c.shutdown() // not a record, or not one descriptor with it
			return
		}
		if !c.hold(le.Uint32(rec[4:]), fds[0]) {
			c.shutdown() // too many files passed, or one id twice
			return
		}
		fds = fds[:0]
	}
}

// hold keeps fd for TakeRegion; false (fd closed) when id is held already
// or too many are.
func (c *Conn) hold(id uint32, fd int) bool {
	f := &c.files
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.fds[id]; dup || len(f.fds) >= maxHeldFiles {
		unix.Close(fd)
		return false
	}
	if f.fds == nil {
		f.fds = make(map[uint32]int)
	}
	f.fds[id] = fd
	if f.arrived != nil {
		close(f.arrived)
		f.arrived = nil
	}
	return true
}

// closeHeld closes the descriptors nobody claimed.
func (c *Conn) closeHeld() {
	f := &c.files
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, fd := range f.fds {
		unix.Close(fd)
		delete(f.fds, id)
	}
}

// TakeRegion claims the file the peer passed as id (waiting up to wait for
// it to arrive), checks that it is a sealed file of exactly size bytes,
// allocates its pages, maps it and places it on NUMA node (best effort, as
// PlaceOnNode; a negative node leaves it where it is). It returns the
// mapping and the function that unmaps it, which the caller must call once
// nothing reads or writes the bytes. Server side.
func (c *Conn) TakeRegion(id uint32, size uint64, node int, wait time.Duration) ([]byte, func(), error) {
	fd, err := c.claim(id, wait)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(fd) // the mapping keeps the file
	if size == 0 || size > MaxHostRegion || size%pageSize != 0 {
		return nil, nil, fmt.Errorf("shm: region %d of %d bytes: not whole pages between 1 and %d", id, size, uint64(MaxHostRegion))
	}
	if err := checkSealed(fd, int(size)); err != nil {
		return nil, nil, fmt.Errorf("shm: region %d: %w", id, err)
	}
	mem, err := mapHostFile(fd, int(size), false)
	if err != nil {
		return nil, nil, fmt.Errorf("shm: region %d: %w", id, err)
	}
	// MoveToNode maps every page into our page tables too, which the
	// copies need anyway, then moves the pages only we map (the client
	// has not mapped the file yet).
	if err := numa.MoveToNode(mem, node); err != nil {
		unix.Munmap(mem)
		return nil, nil, fmt.Errorf("shm: region %d: %w", id, err)
	}
	populateWrite(mem)
	var once sync.Once
	return mem, func() { once.Do(func() { unix.Munmap(mem) }) }, nil
}

// DropRegion closes the file the peer passed as id without mapping it
// (waiting up to wait for it to arrive): the server refused the region,
// and a file left held would count against the peer's limit of unclaimed
// files for the life of the connection. Server side.
func (c *Conn) DropRegion(id uint32, wait time.Duration) error {
	fd, err := c.claim(id, wait)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// claim takes the descriptor held for id, waiting for it to arrive.
func (c *Conn) claim(id uint32, wait time.Duration) (int, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	f := &c.files
	for {
		f.mu.Lock()
		fd, ok := f.fds[id]
		if ok {
			delete(f.fds, id)
			f.mu.Unlock()
			return fd, nil
		}
		if f.arrived == nil {
			f.arrived = make(chan struct{})
		}
		arrived := f.arrived
		f.mu.Unlock()
		select {
		case <-arrived:
		case <-c.watchDone:
			return -1, fmt.Errorf("shm: region %d: %w", id, transport.ErrClosed)
		case <-timer.C:
			return -1, fmt.Errorf("%w: region %d after %v", ErrNoRegion, id, wait)
		}
	}
}

// populateWrite makes b's page table entries writable up front. A shared
// mapping is populated (MAP_POPULATE, MADV_POPULATE_READ) read-only, so the
// first write to each page would fault: the first 64 MiB copy into pinned
// memory took 20 times as long as the next. Best effort: kernels before
// 5.14 lack it, and the faults then come as before.
func populateWrite(b []byte) { unix.Madvise(b, unix.MADV_POPULATE_WRITE) }
