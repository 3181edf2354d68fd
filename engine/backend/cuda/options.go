package cuda

import (
	"errors"
	"log/slog"
)

// ErrUnavailable is returned by Open when this host cannot run the cuda
// backend: no libcuda.so.1, a driver that finds no device, a build without
// cgo, another operating system. The wrapped error says which, and where
// the driver returned a CUresult, errors.Is matches that api.Result too.
var ErrUnavailable = errors.New("cuda backend unavailable")

// ErrNoNVML is returned by Inventory and SystemInventory when NVML cannot
// be initialised: no NVIDIA driver, or a build without cgo.
var ErrNoNVML = errors.New("NVML unavailable")

// DefaultLibrary is the driver library Open loads unless told otherwise.
// The soname is the one NVIDIA's driver installs; the dynamic linker finds
// it on the usual paths.
const DefaultLibrary = "libcuda.so.1"

// Defaults for Options.
const (
	DefaultChunkSize      = 4 << 20
	DefaultStagingBuffers = 8
)

// Options configures Open.
type Options struct {
	// LibraryPath is the driver library to load: DefaultLibrary when empty.
	// A server must not find gpufabric's own libcuda.so.1 (the interposer)
	// here; Open refuses it.
	LibraryPath string
	// Ordinals selects CUDA devices by ordinal; all devices when empty. The
	// returned devices are numbered (Info.Index) 0.. in this order.
	Ordinals []int
	// ChunkSize is the size of one pinned staging buffer: host↔device copies
	// move through staging buffers this large, two at a time per copy, so
	// the host-side copy of one chunk overlaps the DMA of the other.
	ChunkSize int
	// StagingBuffers caps the pinned staging buffers of one device
	// (allocated on first use, kept until Close).
	StagingBuffers int
	// NoMonitor skips NVML: Telemetry then reports only what the driver
	// knows (memory in use), and no Xid events are watched.
	NoMonitor bool
	// Logger receives what Open found and what the monitor sees; slog's
	// default logger when nil.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.LibraryPath == "" {
		o.LibraryPath = DefaultLibrary
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.StagingBuffers <= 0 {
		o.StagingBuffers = DefaultStagingBuffers
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// GPU is one GPU as NVML lists it, for placement decisions (the numa
// package maps PCIBusID to a NUMA node and CPUs).
type GPU struct {
	// Index is NVML's index, which follows PCI bus order; CUDA's ordinals
	// follow it only under CUDA_DEVICE_ORDER=PCI_BUS_ID, so match devices
	// by UUID or PCIBusID, never by index.
	Index       int
	Name        string
	UUID        string // as NVML prints it: "GPU-xxxxxxxx-xxxx-..."
	PCIBusID    string // normalised: "0000:3b:00.0"
	MemoryTotal uint64 // bytes
}
