package backend

import (
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

// DevicePtr is a device address. Addresses support pointer arithmetic: an
// allocation of n bytes at p covers p through p+n-1.
type DevicePtr = uint64

// Device is one GPU (or its emulation). Its methods, and those of the
// objects it returns, are called from the device's shard thread, except
// where a method says otherwise. Errors are api Results, wrapped with detail
// (api.Errorf), so they reach clients as CUDA result codes.
type Device interface {
	// Info describes the device. It is fixed at open and safe to call from
	// any goroutine.
	Info() Info
	// MemInfo reports the device's free and total memory, all clients included.
	MemInfo() (free, total uint64, err error)
	// Alloc allocates size bytes of device memory. The memory reads as
	// zeros: it never holds bytes of an earlier allocation, whichever
	// session made it, so one tenant cannot read what another freed. (CUDA
	// promises nothing here, and within one context the driver reuses
	// memory unscrubbed; the backends scrub, at Free or at Alloc as each
	// finds cheaper.)
	Alloc(size uint64) (DevicePtr, error)
	// Free frees an allocation by its base address. The engine calls it only
	// once no queued work can touch the allocation.
	Free(ptr DevicePtr) error
	// NewStream creates a stream; flags and priority are CUDA's.
	NewStream(flags uint32, priority int32) (Stream, error)
	// NewEvent creates an event; flags are CUDA's (CU_EVENT_*).
	NewEvent(flags uint32) (Event, error)
	// LoadModule loads a module image: PTX text, a cubin or a fatbin. The
	// device does not keep image.
	LoadModule(image []byte) (Module, error)
	// ElapsedTime is the time between two completed events, as
	// cuEventElapsedTime gives it.
	ElapsedTime(start, end Event) (time.Duration, error)
	// Close releases the device and everything allocated on it.
	Close() error
}

// Info describes a device.
type Info struct {
	Index         int
	Name          string
	UUID          [16]byte
	TotalMem      uint64
	DriverVersion int32  // CUDA driver version, 1000*major + 10*minor
	PCIBusID      string // "0000:3b:00.0"; empty for emulated devices
	// Attrs is the attribute snapshot, indexed by CUdevice_attribute
	// (api.Attr*), api.AttrCount long.
	Attrs []int32
	// Backend names the implementation ("cuda", "host"); Emulated is true
	// when no real GPU stands behind the device.
	Backend  string
	Emulated bool
	// AddrLow and AddrHigh bound the device addresses the device hands
	// out, [AddrLow, AddrHigh); both 0 when the backend cannot say (a real
	// GPU's driver chooses its virtual addresses). A client using devices
	// of several servers checks them for overlap.
	AddrLow, AddrHigh uint64
	// ThreadAffine asks that every call come from one OS thread, as a CUDA
	// context current on a thread wants. The engine then locks the device's
	// shard to its own thread, which it can also pin near the device.
	ThreadAffine bool
}

// Stream runs work in the order it was queued, concurrently with other
// streams. Queuing methods return at once; an error they return means the
// work was not queued. Errors that happen while the work runs are kept by
// the stream and reported by the next Notify or Query.
type Stream interface {
	// CopyHtoD copies src to dst. The stream owns src until it calls done,
	// which it does (from any goroutine) once src is no longer needed.
	CopyHtoD(dst DevicePtr, src []byte, done func()) error
	// CopyDtoH reads n bytes at src, in order, and passes them to sink in
	// consecutive pieces (off is each piece's offset within the n bytes).
	// A piece is valid only during the call. An error from sink stops the
	// copy and becomes the stream's error.
	CopyDtoH(src DevicePtr, n uint64, sink func(off uint64, b []byte) error) error
	// CopyDtoD copies n bytes from src to dst.
	CopyDtoD(dst, src DevicePtr, n uint64) error
	// Memset sets count elements of elemSize (1, 2 or 4) bytes at dst to value.
	Memset(dst DevicePtr, value uint32, elemSize int, count uint64) error
	// Launch runs fn with the packed parameter buffer params (laid out as
	// fn.Params says; the stream copies what it keeps). Memory checks the
	// device ranges the kernel will touch, where the backend can know them.
	Launch(fn Function, cfg LaunchConfig, params []byte, memory Memory) error
	// Record records ev at this point of the stream.
	Record(ev Event) error
	// Wait makes later work wait for ev's most recent Record.
	Wait(ev Event) error
	// Notify calls fn, from any goroutine, once all work queued before it
	// has finished, with the first error that work hit since the last report.
	Notify(fn func(error)) error
	// Query returns nil when all queued work has finished, api.ErrNotReady
	// while some is pending, or the error the work hit.
	Query() error
	// Destroy releases the stream once its queued work has finished.
	Destroy() error
}

// Canceler is implemented by streams that can drop a departed tenant's
// work. The engine calls Cancel on each of a session's streams when the
// session ends, then Notify (to learn when the stream is quiet) and
// Destroy. Cancel is called from the shard and returns at once.
//
// After Cancel:
//   - work queued and not yet started completes without running, in
//     order, and its callbacks still run: CopyHtoD's done is called (the
//     stream no longer needs src), a Notify's fn gets an error matching
//     ErrCancelled, a CopyDtoH's sink is not called, a Record completes its
//     event (so that other streams waiting on it are not held by a stream
//     that will never reach it), a Wait no longer waits;
//   - work already running stops where the backend can stop it: the host
//     backend ends a kernel at its next chunk of whole blocks; the cuda
//     backend ends a staged copy before its next chunk, but cannot stop
//     what the driver already has: a kernel it has started, or queued,
//     runs to its end by itself (see each backend);
//   - every later queuing call fails with ErrCancelled, except Notify,
//     which is accepted and calls fn, with that error, once the stream is
//     quiet; Query and Destroy work as before.
//
// Cancel twice is Cancel once.
type Canceler interface {
	Cancel()
}

// ErrCancelled is the Result of work dropped by Canceler.Cancel, and of
// queuing on a cancelled stream. A session's streams are cancelled only
// when the session is gone, so no client should see it; it says why in
// logs. Match it with errors.Is(err, backend.ErrCancelled).
const ErrCancelled = api.ErrIllegalState

// Event marks a point in a stream.
type Event interface {
	// Query returns nil when the most recent record has completed (or the
	// event was never recorded), api.ErrNotReady otherwise.
	Query() error
	// Notify calls fn, from any goroutine, once the most recent record has
	// completed.
	Notify(fn func(error)) error
	// Destroy releases the event.
	Destroy() error
}

// ModulePreparer is implemented by devices that can split LoadModule in two:
// the expensive part (checking and parsing the image) on any goroutine,
// then a cheap load on the shard, so that a tenant's large image does not
// hold the shard (and every other tenant's work on the device) while it is
// read. LoadModule(image) is PrepareModule then LoadPrepared.
type ModulePreparer interface {
	// PrepareModule checks and parses image. It is safe from any
	// goroutine, concurrently with anything else the device does, and
	// touches no device state. A bad image fails here, with the error
	// LoadModule would give. The prepared module may keep image (the cuda
	// backend does): the caller must not modify image until it has dropped
	// the prepared module.
	PrepareModule(image []byte) (PreparedModule, error)
	// LoadPrepared loads a module that this device's PrepareModule made.
	// It is called from the shard, like LoadModule; a prepared module may
	// be loaded more than once, each load a Module of its own.
	LoadPrepared(p PreparedModule) (Module, error)
}

// PreparedModule is a checked, parsed module image, not yet on a device.
type PreparedModule interface {
	// GlobalBytes is the device memory that loading will allocate for the
	// module's .global variables (each rounded up to the allocation
	// granularity), so that the engine can charge it to the session's
	// share before it loads; known is false where the backend cannot tell
	// before the driver has loaded the image (cuda).
	GlobalBytes() (n uint64, known bool)
}

// Module is a loaded module image.
type Module interface {
	// Function looks up a kernel by name: api.ErrNotFound if the module has
	// no such entry, api.ErrNotSupported if the backend cannot run it.
	Function(name string) (Function, error)
	// Global looks up a module-scope variable: its address and size. The
	// size is what the module's declaration asks, checked against the
	// backend's limits when the module was loaded, never a wrapped value.
	Global(name string) (DevicePtr, uint64, error)
	// Unload releases the module. Its functions must not be launched after.
	Unload() error
}

// Function is a kernel of a loaded module.
type Function interface {
	Name() string
	// Params is the layout of the packed parameter buffer. The slice is the
	// function's; callers must not modify it.
	Params() []api.Param
}

// LaunchConfig is a launch's geometry.
type LaunchConfig struct {
	Grid, Block [3]uint32
	SharedMem   uint32
}

// Threads is the number of threads the launch runs.
func (c LaunchConfig) Threads() uint64 {
	return uint64(c.Grid[0]) * uint64(c.Grid[1]) * uint64(c.Grid[2]) *
		uint64(c.Block[0]) * uint64(c.Block[1]) * uint64(c.Block[2])
}

// Memory answers whether a device range belongs to the caller: the engine
// passes the launching session's allocations, so a kernel whose arguments
// the backend understands cannot touch another session's memory.
type Memory interface {
	Contains(ptr DevicePtr, n uint64) bool
}

// Monitor is implemented by devices that can report their live state.
type Monitor interface {
	Telemetry() (Telemetry, error)
}

// Telemetry is a device's live state. Ratios are 0–1; a field the device
// cannot report is negative.
type Telemetry struct {
	Utilization  float64 // fraction of time a kernel ran, over the last sample period
	MemoryUsed   uint64  // bytes in use on the device, by every process
	TemperatureC float64
	PowerWatts   float64
	// Healthy is false after an Xid error or uncorrectable ECC errors;
	// Health says what was seen.
	Healthy bool
	Health  string
}

// HostMemory is implemented by devices whose memory is host memory (the
// host emulation). The engine then reads a copy's payload from the network
// straight into device memory, when no queued work could tell the
// difference, saving a copy through a staging buffer.
type HostMemory interface {
	// HostBytes returns the host view of a device range.
	HostBytes(ptr DevicePtr, n uint64) ([]byte, error)
}

// Idler is implemented by streams that can tell, without consuming their
// error, that nothing is queued or running on them and no failure waits to
// be reported: then a synchronisation needs no trip through the stream.
type Idler interface {
	Idle() bool
}
