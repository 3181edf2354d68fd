//go:build cgo

package cuda

import (
	"log/slog"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Device is one GPU driven through its primary context.
type Device struct {
	info    backend.Info
	ordinal int   // CUDA ordinal
	dev     int32 // CUdevice
	ctx     handle
	log     *slog.Logger

	staging *stagingPool
	events  *eventPool
	// scrub is the internal stream Alloc clears new memory on; see Alloc.
	scrub handle

	// mon is the device's NVML view; nil without NVML, with monNote
	// saying why.
	mon     *monitor
	fleet   *fleet
	monNote string

	mu     sync.Mutex
	closed bool
}

var (
	_ backend.Device  = (*Device)(nil)
	_ backend.Monitor = (*Device)(nil)
)

// Ordinal is the device's CUDA ordinal (Info.Index is its place among the
// devices Open returned).
func (d *Device) Ordinal() int { return d.ordinal }

func (d *Device) Info() backend.Info { return d.info }

func (d *Device) MemInfo() (free, total uint64, err error) {
	free, total, r := memInfo(d.ctx)
	return free, total, check(r, "cuMemGetInfo")
}

// Alloc allocates and clears device memory. Every session on a GPU shares
// its primary context, and within a context the driver hands freed memory
// out again as it was: without the clear, one tenant's first allocation
// could read what another freed a moment ago.
//
// The clear is a cuMemsetD8Async on the device's internal scrub stream,
// waited for (on a blocking-sync event, so the thread sleeps) before the
// pointer is returned. The wait is what makes it safe: the client may use
// the pointer on a non-blocking stream, which nothing would order after
// the memset. It costs the memset at the GPU's fill rate (on the order of
// 1 ms per GiB on current parts, plus a few microseconds of calls), on the
// allocation path only; launches and copies never pay it.
func (d *Device) Alloc(size uint64) (backend.DevicePtr, error) {
	p, r := memAlloc(d.ctx, size)
	if err := check(r, "cuMemAlloc(%d bytes)", size); err != nil {
		return 0, err
	}
	if err := d.clear(p, size); err != nil {
		memFree(d.ctx, p)
		return 0, err
	}
	return p, nil
}

// clear zeroes n bytes at p and waits until they are zero.
func (d *Device) clear(p, n uint64) error {
	ev, err := d.events.get()
	if err != nil {
		return err
	}
	if err := check(memset(d.ctx, p, 0, 1, n, d.scrub), "cuMemsetD8Async(%#x, %d bytes) to scrub a new allocation", p, n); err != nil {
		d.events.put(ev)
		return err
	}
	if err := check(eventRecord(d.ctx, ev, d.scrub), "cuEventRecord"); err != nil {
		d.events.put(ev)
		return err
	}
	r := eventSync(d.ctx, ev)
	if r != api.Success {
		eventDestroy(d.ctx, ev) // not trusted for reuse
		return check(r, "scrubbing a new allocation")
	}
	d.events.put(ev)
	return nil
}

func (d *Device) Free(ptr backend.DevicePtr) error {
	return check(memFree(d.ctx, ptr), "cuMemFree(%#x)", ptr)
}

func (d *Device) NewStream(flags uint32, priority int32) (backend.Stream, error) {
	h, r := streamCreate(d.ctx, flags, priority)
	if err := check(r, "cuStreamCreateWithPriority(flags %#x, priority %d)", flags, priority); err != nil {
		return nil, err
	}
	return &stream{d: d, h: h}, nil
}

// NewEvent adds CU_EVENT_BLOCKING_SYNC to the client's flags. It changes
// only how a host thread waits for the event, and the only host threads
// that wait for it are this backend's: the client's own waits are served by
// Notify. A spinning wait would hold a CPU the shards need.
func (d *Device) NewEvent(flags uint32) (backend.Event, error) {
	h, r := eventCreate(d.ctx, flags|eventBlockingSync)
	if err := check(r, "cuEventCreate(flags %#x)", flags); err != nil {
		return nil, err
	}
	return newEvent(d, h, flags), nil
}

func (d *Device) LoadModule(image []byte) (backend.Module, error) {
	p, err := d.prepare(image)
	if err != nil {
		return nil, err
	}
	return d.load(p)
}

// prepared is an image that passed the cheap checks; it keeps the caller's
// image (see backend.ModulePreparer) rather than copy what may be 100 MiB.
type prepared struct {
	d     *Device
	image []byte
	kind  string
}

var (
	_ backend.ModulePreparer = (*Device)(nil)
	_ backend.PreparedModule = (*prepared)(nil)
)

// GlobalBytes is unknown: the driver allocates a module's globals inside
// cuModuleLoadData, and what it allocates is known only after (Module.Global
// gives each one's size then).
func (p *prepared) GlobalBytes() (uint64, bool) { return 0, false }

// PrepareModule does what can be done without the driver: the image must
// be non-empty and of a kind the driver loads (PTX text, a cubin, a
// fatbin), not a host-side fatbin wrapper, whose pointer means nothing
// here, nor other binary data. It reads at most the first 4 KiB.
//
// The expensive part stays in LoadPrepared, on the shard: cuModuleLoadData
// JIT-compiles PTX there, which for a large PTX image takes as long as the
// driver's compiler needs. What would move it off the shard is linking on
// the preparing goroutine (cuLinkCreate, cuLinkAddData with the PTX,
// cuLinkComplete, all legal on any thread with the context current) and
// handing LoadPrepared the resulting cubin, which loads without a JIT;
// not done yet because it cannot be tested here without a GPU.
func (d *Device) PrepareModule(image []byte) (backend.PreparedModule, error) {
	p, err := d.prepare(image)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return p, nil
}

func (d *Device) prepare(image []byte) (*prepared, error) {
	if len(image) == 0 {
		return nil, api.Errorf(api.ErrInvalidImage, "empty module image")
	}
	kind := imageKind(image)
	switch kind {
	case "fatbin wrapper":
		return nil, api.Errorf(api.ErrInvalidImage, "a %d-byte fatbin wrapper: it points into the client's memory; send the fatbin it points to", len(image))
	case "binary":
		return nil, api.Errorf(api.ErrInvalidImage, "a %d-byte image that is neither PTX text, a cubin nor a fatbin", len(image))
	}
	return &prepared{d: d, image: image, kind: kind}, nil
}

// LoadPrepared loads a prepared image: cuModuleLoadData, on the shard.
func (d *Device) LoadPrepared(bp backend.PreparedModule) (backend.Module, error) {
	p, ok := bp.(*prepared)
	if !ok || p == nil || p.d != d {
		return nil, api.Errorf(api.ErrInvalidHandle, "a module prepared by another device or backend")
	}
	m, err := d.load(p)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return m, nil
}

func (d *Device) load(p *prepared) (*module, error) {
	h, r := moduleLoad(d.ctx, p.image)
	if err := check(r, "cuModuleLoadData (%d-byte %s image)", len(p.image), p.kind); err != nil {
		return nil, err
	}
	return &module{d: d, h: h}, nil
}

func (d *Device) ElapsedTime(start, end backend.Event) (time.Duration, error) {
	a, ok1 := start.(*event)
	b, ok2 := end.(*event)
	if !ok1 || !ok2 {
		return 0, api.Errorf(api.ErrInvalidHandle, "event of another backend")
	}
	if a.pending() || b.pending() {
		return 0, api.ErrNotReady
	}
	ms, r := eventElapsed(d.ctx, a.h, b.h)
	if err := check(r, "cuEventElapsedTime"); err != nil {
		return 0, err
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

// Telemetry reads NVML where it matched this device, else reports only
// what the driver knows: memory in use.
func (d *Device) Telemetry() (backend.Telemetry, error) {
	if d.mon != nil {
		return d.mon.telemetry(), nil
	}
	free, total, r := memInfo(d.ctx)
	if err := check(r, "cuMemGetInfo"); err != nil {
		return backend.Telemetry{}, err
	}
	return backend.Telemetry{
		Utilization:  -1,
		MemoryUsed:   total - free,
		TemperatureC: -1,
		PowerWatts:   -1,
		Healthy:      true,
		Health:       d.monNote,
	}, nil
}

// Close releases the staging buffers, the internal events and the primary
// context. Releasing the last reference to a primary context destroys it
// and everything in it, so objects the engine did not destroy go with it;
// the engine destroys its streams first, or their workers find a dead
// context.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return api.Errorf(api.ErrInvalidDevice, "device %d is closed", d.info.Index)
	}
	d.closed = true
	d.mu.Unlock()
	if d.fleet != nil {
		d.fleet.release()
	}
	if out := d.staging.close(); out > 0 {
		d.log.Warn("cuda: staging buffers still in use at close", "device", d.info.Index, "buffers", out)
	}
	d.events.close()
	valueWords.drop(d)
	streamDestroy(d.ctx, d.scrub)
	return check(ctxRelease(d.dev), "cuDevicePrimaryCtxRelease")
}
