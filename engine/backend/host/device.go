package host

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Config describes an emulated device.
type Config struct {
	Index      int
	MemorySize uint64 // bytes of device memory; DefaultMemorySize when 0
	// Slot moves the server's device addresses to a range of their own
	// (see addressBase), so that a program using devices of several
	// servers at once never sees two devices hand out the same address.
	// 0 .. MaxSlot.
	Slot int
}

// MaxSlot is the highest address slot: slots are 1<<46 apart, room for 64
// devices of a terabyte each, and the highest ends below 1<<54.
const MaxSlot = 255

// DefaultMemorySize is an emulated device's memory unless configured.
const DefaultMemorySize = 16 << 30

// DriverVersion is the CUDA driver version the emulation reports.
const DriverVersion = 12080

// addressBase is where device 0's addresses start; each device gets its own
// terabyte, so an address names its device and never looks like a host one.
// Slot N (Config.Slot) starts N<<46 higher: another server's devices.
const addressBase = 0x0000_2000_0000_0000

// Device is one emulated GPU.
type Device struct {
	info  backend.Info
	base  uint64 // device address of arena[0]
	arena []byte

	mu    sync.Mutex // guards alloc and va; kernels read arena without it
	alloc *allocator
	// words orders the stream memory operations' reads and writes (see
	// exec.go), which streams of the device make concurrently by design.
	words sync.Mutex
	va    *allocator // the VMM span's reservations: see vmm.go
}

var _ backend.Device = (*Device)(nil)

// New reserves an emulated device's memory.
func New(cfg Config) (*Device, error) {
	if cfg.MemorySize == 0 {
		cfg.MemorySize = DefaultMemorySize
	}
	if cfg.Slot < 0 || cfg.Slot > MaxSlot {
		return nil, fmt.Errorf("host: address slot %d is outside 0 .. %d", cfg.Slot, MaxSlot)
	}
	if cfg.MemorySize < allocAlign || cfg.MemorySize > 1<<40 {
		return nil, fmt.Errorf("host: device memory of %d bytes is outside 512 B .. 1 TiB", cfg.MemorySize)
	}
	arena, err := mapArena(cfg.MemorySize + virtualSpan(cfg.MemorySize)) // see vmm.go
	if err != nil {
		return nil, err
	}
	d := &Device{
		base:  addressBase + uint64(cfg.Slot)<<46 + uint64(cfg.Index)<<40,
		arena: arena,
		alloc: newAllocator(cfg.MemorySize),
	}
	d.info = backend.Info{
		Index:         cfg.Index,
		Name:          "gpufabric host emulation (CPU)",
		UUID:          deviceUUID(cfg.Index, cfg.Slot),
		TotalMem:      d.alloc.size,
		DriverVersion: DriverVersion,
		Attrs:         attributes(),
		Backend:       "host",
		Emulated:      true,
	}
	d.info.AddrLow, d.info.AddrHigh = d.base, d.base+1<<40
	// The slot is the emulated PCI bus: two servers' devices of one index
	// differ in cuDeviceGetPCIBusId too.
	d.info.Attrs[api.AttrPCIBusID] = int32(cfg.Slot)
	return d, nil
}

// deviceUUID is stable per host and index, so a client sees the same UUID
// across server restarts, as it would with a real card.
func deviceUUID(index, slot int) [16]byte {
	host, _ := os.Hostname()
	name := fmt.Appendf(nil, "gpufabric-host-device/%s/%d", host, index)
	if slot != 0 {
		// Servers of one host in different slots: devices of one program.
		name = fmt.Appendf(name, "/slot%d", slot)
	}
	sum := sha256.Sum256(name)
	var u [16]byte
	copy(u[:], sum[:])
	u[6] = u[6]&0x0f | 0x50 // an RFC 4122 name-based UUID, version 5
	u[8] = u[8]&0x3f | 0x80
	return u
}

func attributes() []int32 {
	a := make([]int32, api.AttrCount)
	set := func(id int, v int32) { a[id] = v }
	set(api.AttrMaxThreadsPerBlock, 1024)
	set(api.AttrMaxBlockDimX, 1024)
	set(api.AttrMaxBlockDimY, 1024)
	set(api.AttrMaxBlockDimZ, 64)
	set(api.AttrMaxGridDimX, 1<<31-1)
	set(api.AttrMaxGridDimY, 65535)
	set(api.AttrMaxGridDimZ, 65535)
	set(api.AttrMaxSharedMemoryPerBlock, 48<<10)
	set(api.AttrTotalConstantMemory, 64<<10)
	set(api.AttrWarpSize, 32)
	set(api.AttrMaxPitch, 1<<31-1)
	set(api.AttrMaxRegistersPerBlock, 65536)
	set(api.AttrClockRate, 1_500_000)
	set(api.AttrTextureAlignment, 512)
	set(api.AttrGPUOverlap, 1)
	set(api.AttrMultiprocessorCount, int32(runtime.NumCPU()))
	set(api.AttrComputeMode, 0)
	set(api.AttrConcurrentKernels, 1)
	set(api.AttrGlobalMemoryBusWidth, 64)
	set(api.AttrL2CacheSize, 4<<20)
	set(api.AttrMaxThreadsPerMultiprocessor, 2048)
	set(api.AttrAsyncEngineCount, 2)
	set(api.AttrUnifiedAddressing, 1)
	set(api.AttrComputeCapabilityMajor, 8)
	set(api.AttrComputeCapabilityMinor, 0)
	set(api.AttrMaxSharedMemoryPerBlockOptin, 48<<10)
	return a
}

// Info describes the device.
func (d *Device) Info() backend.Info { return d.info }

// MemInfo reports free and total device memory.
func (d *Device) MemInfo() (free, total uint64, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.alloc.size - d.alloc.used, d.alloc.size, nil
}

// Alloc allocates device memory.
func (d *Device) Alloc(size uint64) (backend.DevicePtr, error) {
	if size == 0 {
		return 0, api.Errorf(api.ErrInvalidValue, "allocation of 0 bytes")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	off, ok := d.alloc.get(size)
	if !ok {
		return 0, api.Errorf(api.ErrOutOfMemory, "%d bytes requested, %d of %d free on %s (largest free block too small?)",
			size, d.alloc.size-d.alloc.used, d.alloc.size, d.info.Name)
	}
	return d.base + off, nil
}

// Free frees an allocation and scrubs it, so that the next Alloc to reuse
// the range (another session's, perhaps) reads zeros and never this one's
// bytes.
//
// Why at Free and not at Alloc: Free already holds the range's size and
// runs once per allocation, after its last use; scrubbing there keeps Alloc
// a list walk. Why mostly madvise and not clear: whole pages are dropped
// with MADV_DONTNEED, which costs a system call and a page-table walk (well
// under a millisecond for 64 MiB) instead of writing every byte; the kernel
// hands out zero-filled pages when they are next touched, work the next
// owner's first write would have paid for in page faults anyway on a fresh
// arena. Only the partial pages at either end, and allocations too small to
// hold a whole page, are written with zeros.
func (d *Device) Free(ptr backend.DevicePtr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	off := ptr - d.base
	n := d.alloc.put(off)
	if ptr < d.base || n == 0 {
		return api.Errorf(api.ErrInvalidValue, "free of %#x: not an allocation", ptr)
	}
	scrub(d.arena, off, n)
	return nil
}

// scrubPages is the smallest run of whole pages scrub hands back with
// madvise rather than zeroing: below it a clear is cheaper than the system
// call and the later page faults (measured by BenchmarkScrub).
const scrubPages = 16

// scrub zeroes arena[off:off+n]. The arena starts on a page boundary
// (mmap), so page boundaries are multiples of the page size in offsets:
// whole pages inside the range are dropped (they read as zeros from then
// on), the partial pages at its ends cleared.
func scrub(arena []byte, off, n uint64) {
	const page = 4096
	lo, hi := (off+page-1)&^(page-1), (off+n)&^(page-1)
	if hi > lo && hi-lo >= scrubPages*page && release(arena[lo:hi]) {
		clear(arena[off:lo])
		clear(arena[hi : off+n])
		return
	}
	clear(arena[off : off+n])
}

// bytes maps a device range to the arena. The engine has checked that the
// range lies in an allocation; the bounds check here guards the process.
func (d *Device) bytes(ptr backend.DevicePtr, n uint64) ([]byte, error) {
	off := ptr - d.base
	if ptr < d.base || off > uint64(len(d.arena)) || n > uint64(len(d.arena))-off {
		return nil, api.Errorf(api.ErrIllegalAddress, "%#x+%d is not memory of %s %d", ptr, n, d.info.Name, d.info.Index)
	}
	return d.arena[off : off+n : off+n], nil
}

// HostBytes is the arena behind a device range: this device's memory is
// host memory.
func (d *Device) HostBytes(ptr backend.DevicePtr, n uint64) ([]byte, error) { return d.bytes(ptr, n) }

var _ backend.HostMemory = (*Device)(nil)

// NewStream creates a stream with its own worker.
func (d *Device) NewStream(flags uint32, priority int32) (backend.Stream, error) {
	return newStream(d), nil
}

// CUDA event flags.
const (
	eventBlockingSync  = 0x1
	eventDisableTiming = 0x2
)

// NewEvent creates an event.
func (d *Device) NewEvent(flags uint32) (backend.Event, error) {
	return &event{flags: flags}, nil
}

// ElapsedTime is the time between the most recent completed records of two
// events.
func (d *Device) ElapsedTime(start, end backend.Event) (time.Duration, error) {
	s, ok1 := start.(*event)
	e, ok2 := end.(*event)
	if !ok1 || !ok2 {
		return 0, api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	st, err := s.recordedAt()
	if err != nil {
		return 0, err
	}
	et, err := e.recordedAt()
	if err != nil {
		return 0, err
	}
	return et.Sub(st), nil
}

// LoadModule parses a PTX image and binds its entries to built-in kernels:
// PrepareModule, then LoadPrepared.
func (d *Device) LoadModule(image []byte) (backend.Module, error) {
	p, err := prepare(image)
	if err != nil {
		return nil, err
	}
	return d.LoadPrepared(p)
}

// PrepareModule parses a PTX image. It touches nothing of the device, so
// it runs on any goroutine; it is the whole cost of a load but the
// globals' allocation (BenchmarkParsePTX100MiB: a 100 MiB image in tens to
// hundreds of milliseconds, by shape).
func (d *Device) PrepareModule(image []byte) (backend.PreparedModule, error) {
	p, err := prepare(image)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return p, nil
}

// LoadPrepared allocates a prepared module's globals on the device.
func (d *Device) LoadPrepared(bp backend.PreparedModule) (backend.Module, error) {
	p, ok := bp.(*prepared)
	if !ok || p == nil {
		return nil, api.Errorf(api.ErrInvalidHandle, "a module prepared by another backend")
	}
	m, err := p.load(d)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return m, nil
}

var _ backend.ModulePreparer = (*Device)(nil)

// Close releases the arena. Nothing may use the device after.
func (d *Device) Close() error {
	return unmapArena(d.arena)
}
