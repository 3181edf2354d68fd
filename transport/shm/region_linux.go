//go:build linux

package shm

// This file holds all of the package's unsafe code and its system calls on
// the shared region: creating, mapping and unmapping it, typed atomic views
// of its control words, and futex waits and wakes. Everything else reads
// and writes the region through region.mem with Go's bounds-checked slices.
//
// Why it is safe:
//   - The region is a MAP_SHARED mapping of a memfd whose size is sealed
//     (F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_SEAL) before it is passed on, and
//     whose pages are allocated up front, so no access inside mem can fault:
//     a peer can neither truncate the file under us (SIGBUS) nor undo the
//     seals. The client refuses a file without them.
//   - word() takes offsets from the package's fixed layout, never from the
//     peer, and checks alignment and bounds; a violation is a bug of ours
//     and panics before any pointer is made.
//   - The pointers refer to memory outside the Go heap, so the garbage
//     collector neither moves nor frees it. Conn.Close does not unmap it,
//     as a receive may still be reading (receives take no lock: two atomic
//     operations were a tenth of a call). It retires it instead: one mmap
//     puts private zero pages in place of the shared ones, at the same
//     address, so the file's memory is freed and a late reader finds zeros
//     (it sees the connection closed and fails). The address range, which
//     holds no memory any more, is unmapped by the cleanup that runs when
//     the Conn is unreachable (Go collects at least every two minutes),
//     when no goroutine can use it; unmap is idempotent, so that cannot
//     unmap a range that has since been reused.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations: the shared variants, since the waiter and the waker are
// different processes mapping the same file.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// region is a mapping of the shared file.
type region struct {
	mem []byte

	mu       sync.Mutex
	retired  bool // the shared pages are gone; mem is private zero pages
	unmapped bool
}

// createRegion creates, seals, allocates and maps a region of size bytes.
// The caller owns fd and closes it once it has been passed on.
func createRegion(size int) (r *region, fd int, err error) {
	fd, err = unix.MemfdCreate("gpufabric-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, -1, fmt.Errorf("memfd_create: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err = unix.Ftruncate(fd, int64(size)); err != nil {
		return nil, -1, fmt.Errorf("ftruncate: %w", err)
	}
	// Allocate the pages now: a failure shows here, not as SIGBUS later.
	if err = unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		return nil, -1, fmt.Errorf("fallocate: %w", err)
	}
	if _, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return nil, -1, fmt.Errorf("seal: %w", err)
	}
	r, err = mapRegion(fd, size)
	if err != nil {
		return nil, -1, err
	}
	return r, fd, nil
}

// checkSealed reports whether fd is a file of exactly size bytes that can
// no longer shrink.
func checkSealed(fd, size int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Size != int64(size) {
		return fmt.Errorf("region file is %d bytes, announced %d", st.Size, size)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("get seals: %w", err)
	}
	if seals&unix.F_SEAL_SHRINK == 0 || seals&unix.F_SEAL_SEAL == 0 {
		return fmt.Errorf("region file is not sealed against shrinking (seals %#x)", seals)
	}
	return nil
}

// mapRegion maps size bytes of fd, shared, read-write, with the page
// tables filled in (MAP_POPULATE): otherwise the first pass of payloads
// through each slab takes a page fault every 4 KiB in each process, which
// halved the bandwidth a connection's probe measures and made TCP look
// faster for bulk copies.
func mapRegion(fd, size int) (*region, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return &region{mem: mem}, nil
}

// retire replaces the shared pages with private zero pages at the same
// address, in one mmap, so that the file's memory is freed while a
// goroutine may still read the range; later calls do nothing. The header
// page is copied over: a receiver about to sleep on a futex word there
// must find the value it was woken past (see Conn.Close), not a zero it
// might be waiting on.
func (r *region) retire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retired || r.unmapped {
		return
	}
	r.retired = true
	var header [pageSize]byte
	copy(header[:], r.mem)
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&r.mem[0]), uintptr(len(r.mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
	if err != nil {
		// Out of memory for page tables, at worst: keep the shared pages
		// until the cleanup unmaps them.
		return
	}
	copy(r.mem, header[:])
}

// unmap unmaps the region; later calls do nothing.
func (r *region) unmap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unmapped {
		return
	}
	r.unmapped = true
	unix.Munmap(r.mem)
	r.mem = nil
}

// word returns the address of the aligned control word at off, of size n.
func (r *region) word(off, n int) unsafe.Pointer {
	if off < 0 || off%n != 0 || off+n > len(r.mem) {
		panic(fmt.Sprintf("shm: control word at %d (size %d) outside the %d-byte region or misaligned", off, n, len(r.mem)))
	}
	return unsafe.Pointer(&r.mem[off])
}

// u64 is the 8-byte control word at off (a layout constant).
func (r *region) u64(off int) *atomic.Uint64 { return (*atomic.Uint64)(r.word(off, 8)) }

// u32 is the 4-byte control word at off (a layout constant).
func (r *region) u32(off int) *atomic.Uint32 { return (*atomic.Uint32)(r.word(off, 4)) }

// futexWait sleeps while *w == val, until a futexWake on the same word (in
// any process mapping it), a signal, or a spurious wake-up; callers re-check.
func futexWait(w *atomic.Uint32, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), 0, 0, 0)
}

// futexWaitFor is futexWait bounded by d, at least 1 ns (FUTEX_WAIT's
// timeout is relative). The kernel may end the sleep late, by the
// thread's timer slack (50 µs by default) and the time a halted vCPU takes
// to take the timer interrupt.
func futexWaitFor(w *atomic.Uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(max(int64(d), 1))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// osYield gives the thread's CPU to another runnable thread, if any
// (sched_yield).
func osYield() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// futexWake wakes the waiters sleeping on w.
func futexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, uintptr(1<<31-1), 0, 0, 0)
}

// commitWord is the record commit word at the start of rec, which is
// 64-byte aligned in the ring.
func commitWord(rec []byte) *atomic.Uint32 { return (*atomic.Uint32)(unsafe.Pointer(&rec[0])) }

// clearWord zeroes the commit word at the start of rec with a plain store:
// the tail store that hands the space back orders it for the producer, and
// a locked store would drain the store buffer once per slot.
func clearWord(rec []byte) { *(*uint32)(unsafe.Pointer(&rec[0])) = 0 }
