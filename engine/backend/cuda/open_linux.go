//go:build cgo

package cuda

import (
	"fmt"
	"strings"
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// The driver is loaded once per process: the shim keeps one function
// table, and libcuda itself is process-wide state.
var driver struct {
	sync.Mutex
	path string // what loaded, once something has
}

func loadDriver(path string) error {
	driver.Lock()
	defer driver.Unlock()
	if driver.path != "" {
		if path != driver.path {
			return fmt.Errorf("cuda: the driver is already loaded from %s; cannot also load %s", driver.path, path)
		}
		return nil
	}
	outcome, msg := dlOpen(path)
	switch outcome {
	case openOK:
		driver.path = path
		return nil
	case openDlopen:
		if strings.Contains(msg, "No such file") || strings.Contains(msg, "cannot open shared object") {
			return fmt.Errorf("%w: %s not found (is the NVIDIA driver installed?): %s", ErrUnavailable, path, msg)
		}
		return fmt.Errorf("%w: %s cannot be loaded: %s", ErrUnavailable, path, msg)
	case openInterposer:
		return fmt.Errorf("%w: %s; start the server without gpufabric's lib directory on LD_LIBRARY_PATH: %w", ErrUnavailable, msg, api.ErrNotSupported)
	default:
		return fmt.Errorf("%w: %s; the driver is too old or not NVIDIA's: %w", ErrUnavailable, msg, api.ErrNotSupported)
	}
}

// unavailable wraps a driver result that leaves no usable device.
func unavailable(r api.Result, call string) error {
	detail := ""
	if s := driverErrorString(r); s != "" {
		detail = " (" + s + ")"
	}
	return fmt.Errorf("%w: %s: %w%s", ErrUnavailable, call, r, detail)
}

// Open loads the driver, initialises it and opens the selected devices, each
// with its primary context retained. Without a usable driver the error
// matches ErrUnavailable and says why.
func Open(opts Options) ([]backend.Device, error) {
	opts = opts.withDefaults()
	if err := loadDriver(opts.LibraryPath); err != nil {
		return nil, err
	}
	if r := cuInit(); r != api.Success {
		return nil, unavailable(r, "cuInit")
	}
	count, r := deviceCount()
	if r != api.Success {
		return nil, unavailable(r, "cuDeviceGetCount")
	}
	if count == 0 {
		return nil, unavailable(api.ErrNoDevice, "cuDeviceGetCount")
	}
	ordinals := opts.Ordinals
	if len(ordinals) == 0 {
		for i := range count {
			ordinals = append(ordinals, i)
		}
	}
	version, _ := driverVersion()

	var devs []*Device
	closeAll := func() {
		for _, d := range devs {
			d.Close()
		}
	}
	seen := make(map[int]bool)
	for idx, ord := range ordinals {
		if ord < 0 || ord >= count || seen[ord] {
			closeAll()
			return nil, api.Errorf(api.ErrInvalidDevice, "CUDA ordinal %d: the driver has devices 0..%d, each usable once", ord, count-1)
		}
		seen[ord] = true
		d, err := openDevice(idx, ord, version, opts)
		if err != nil {
			closeAll()
			return nil, err
		}
		devs = append(devs, d)
	}
	if opts.NoMonitor {
		for _, d := range devs {
			d.monNote = "NVML monitoring disabled"
		}
	} else {
		attachMonitors(devs, opts.Logger)
	}

	out := make([]backend.Device, len(devs))
	for i, d := range devs {
		out[i] = d
		opts.Logger.Info("cuda: device opened", "index", i, "ordinal", d.ordinal, "name", d.info.Name,
			"uuid", formatUUID(d.info.UUID), "pci", d.info.PCIBusID, "memory", d.info.TotalMem,
			"nvml", d.mon != nil)
	}
	opts.Logger.Info("cuda: driver loaded", "library", loadedPath(), "version", version)
	return out, nil
}

func openDevice(index, ordinal int, version int32, opts Options) (*Device, error) {
	dev, r := deviceGet(ordinal)
	if err := check(r, "cuDeviceGet(%d)", ordinal); err != nil {
		return nil, err
	}
	info := backend.Info{
		Index:         index,
		DriverVersion: version,
		Attrs:         make([]int32, api.AttrCount),
		Backend:       "cuda",
		// Calls work from any thread (the shim makes the primary context
		// current in each), but a shard locked to one thread can be pinned
		// to the GPU's NUMA node, and its context switch is then a no-op.
		ThreadAffine: true,
	}
	if info.Name, r = deviceName(dev); r != api.Success {
		return nil, check(r, "cuDeviceGetName(%d)", ordinal)
	}
	if info.UUID, r = deviceUUID(dev); r != api.Success {
		return nil, check(r, "cuDeviceGetUuid(%d)", ordinal)
	}
	if info.TotalMem, r = deviceTotalMem(dev); r != api.Success {
		return nil, check(r, "cuDeviceTotalMem(%d)", ordinal)
	}
	// A bus id is missing on some virtualised devices; the device works
	// without one, only placement and NVML matching by bus suffer.
	if bus, r := devicePCIBusID(dev); r == api.Success {
		if id, ok := normalizeBusID(bus); ok {
			info.PCIBusID = id
		}
	}
	// One snapshot of every attribute, so clients never ask one at a time.
	// Ids this driver does not know answer CUDA_ERROR_INVALID_VALUE: 0.
	for a := 1; a < api.AttrCount; a++ {
		if v, r := deviceAttribute(dev, a); r == api.Success {
			info.Attrs[a] = v
		}
	}
	ctx, r := ctxRetain(dev)
	if err := check(r, "cuDevicePrimaryCtxRetain(%d)", ordinal); err != nil {
		return nil, err
	}
	// Non-blocking: scrubs must not wait for work on the legacy default
	// stream, which a client could keep busy.
	scrub, r := streamCreate(ctx, streamNonBlocking, 0)
	if err := check(r, "cuStreamCreateWithPriority (the scrub stream of device %d)", ordinal); err != nil {
		ctxRelease(dev)
		return nil, err
	}
	return &Device{
		info:    info,
		ordinal: ordinal,
		dev:     dev,
		ctx:     ctx,
		log:     opts.Logger,
		staging: newStagingPool(ctx, opts.ChunkSize, opts.StagingBuffers),
		events:  &eventPool{ctx: ctx},
		scrub:   scrub,
	}, nil
}
