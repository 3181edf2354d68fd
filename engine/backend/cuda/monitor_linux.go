//go:build cgo

package cuda

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpufabric/gpufabric/engine/backend"
)

// NVML is the part of go-nvml's nvml.Interface this package uses. The real
// library (nvml.New()) and go-nvml's mocks (pkg/nvml/mock/dgxa100) satisfy
// it, which is how the monitor is tested without a GPU.
type NVML interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return)
	EventSetCreate() (nvml.EventSet, nvml.Return)
}

var _ NVML = nvml.Interface(nil)

// SystemInventory lists this host's GPUs through the system's NVML
// (libnvidia-ml.so.1, opened at run time).
func SystemInventory() ([]GPU, error) { return Inventory(nvml.New()) }

// Inventory lists the GPUs lib knows, with their PCI bus ids. It
// initialises and shuts down lib itself (NVML counts initialisations, so
// this is safe while others use it). A GPU NVML cannot open (no
// permission, lost) is left out.
func Inventory(lib NVML) ([]GPU, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: nvmlInit: %v", ErrNoNVML, ret)
	}
	defer lib.Shutdown()
	gpus, _, err := listGPUs(lib)
	return gpus, err
}

func listGPUs(lib NVML) ([]GPU, []nvml.Device, error) {
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("%w: nvmlDeviceGetCount: %v", ErrNoNVML, ret)
	}
	var gpus []GPU
	var devs []nvml.Device
	for i := range n {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		g := GPU{Index: i}
		if s, ret := dev.GetName(); ret == nvml.SUCCESS {
			g.Name = s
		}
		if s, ret := dev.GetUUID(); ret == nvml.SUCCESS {
			g.UUID = s
		}
		if p, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
			g.PCIBusID = pciBusID(p)
		}
		if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryTotal = m.Total
		}
		gpus = append(gpus, g)
		devs = append(devs, dev)
	}
	return gpus, devs, nil
}

// pciBusID reads NVML's NUL-terminated bus id ("00000000:3B:00.0"),
// falling back to the legacy field, into the canonical spelling.
func pciBusID(p nvml.PciInfo) string {
	for _, raw := range [][]int8{p.BusId[:], p.BusIdLegacy[:]} {
		var b strings.Builder
		for _, c := range raw {
			if c == 0 {
				break
			}
			b.WriteByte(byte(c))
		}
		if id, ok := normalizeBusID(b.String()); ok {
			return id
		}
	}
	return ""
}

// deviceKey is how a CUDA device is found among NVML's.
type deviceKey struct {
	UUID     [16]byte
	PCIBusID string
}

// monitor is one GPU's NVML view: live readings, and the health events the
// fleet's watcher delivers.
type monitor struct {
	dev  nvml.Device
	uuid string

	mu       sync.Mutex
	critical []string // what made the GPU unhealthy, oldest first
	last     string   // the latest event that did not
	note     string   // standing remark (e.g. "Xid events not supported")

	view nvmlView // the NVML view's readings, shared by sessions for a moment
}

// maxCritical bounds the remembered critical events: a failing GPU can
// repeat an Xid forever, and Health is a line, not a log.
const maxCritical = 4

func (m *monitor) event(critical bool, what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !critical {
		m.last = what
		return
	}
	if len(m.critical) < maxCritical {
		m.critical = append(m.critical, what)
	}
}

// telemetry reads the GPU now. A reading NVML does not support is
// negative (zero for memory, which is unsigned).
func (m *monitor) telemetry() backend.Telemetry {
	t := backend.Telemetry{Utilization: -1, TemperatureC: -1, PowerWatts: -1}
	if u, ret := m.dev.GetUtilizationRates(); ret == nvml.SUCCESS {
		t.Utilization = float64(u.Gpu) / 100
	}
	if mem, ret := m.dev.GetMemoryInfo(); ret == nvml.SUCCESS {
		t.MemoryUsed = mem.Used
	}
	if c, ret := m.dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
		t.TemperatureC = float64(c)
	}
	if mw, ret := m.dev.GetPowerUsage(); ret == nvml.SUCCESS {
		t.PowerWatts = float64(mw) / 1000
	}
	var problems []string
	// Uncorrectable ECC errors since the driver loaded: the memory that
	// held them is retired or remapped only by a reset.
	if n, ret := m.dev.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); ret == nvml.SUCCESS && n > 0 {
		problems = append(problems, fmt.Sprintf("%d uncorrectable ECC errors since the driver loaded", n))
	}
	m.mu.Lock()
	problems = append(problems, m.critical...)
	last, note := m.last, m.note
	m.mu.Unlock()

	t.Healthy = len(problems) == 0
	parts := problems
	if t.Healthy {
		parts = []string{"ok"}
	}
	if last != "" {
		parts = append(parts, "last event: "+last)
	}
	if note != "" {
		parts = append(parts, note)
	}
	t.Health = strings.Join(parts, "; ")
	return t
}

// fleet is one initialised NVML shared by the devices of one Open, with
// the goroutine that watches their Xid events. The last device to close
// stops it and shuts NVML down.
type fleet struct {
	lib      NVML
	log      *slog.Logger
	monitors []*monitor // by wanted key; nil where no NVML device matched
	byUUID   map[string]*monitor

	set    nvml.EventSet
	waitMs uint32 // how long one Wait blocks; bounds how long release takes
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	refs int
}

// eventWaitMs is how long one NVML event wait blocks, which bounds how
// long the last device's Close waits for the watcher (tests shorten it).
var eventWaitMs uint32 = 500

// watchedEvents are the NVML events that speak to a GPU's health.
const watchedEvents = nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError

// newFleet matches each wanted device to an NVML device, by UUID and else by
// PCI bus id, and starts watching the matched ones. lib must be initialised;
// the fleet shuts it down when released refs times.
func newFleet(lib NVML, want []deviceKey, refs int, log *slog.Logger) (*fleet, error) {
	gpus, devs, err := listGPUs(lib)
	if err != nil {
		return nil, err
	}
	f := &fleet{
		lib:      lib,
		log:      log,
		monitors: make([]*monitor, len(want)),
		byUUID:   make(map[string]*monitor),
		waitMs:   eventWaitMs,
		refs:     refs,
	}
	// UUID first; the bus id where UUIDs differ, as they do for a MIG
	// instance (CUDA names the instance, NVML lists its parent GPU).
	match := func(k deviceKey) int {
		for j, g := range gpus {
			if u, ok := parseNVMLUUID(g.UUID); ok && u == k.UUID {
				return j
			}
		}
		for j, g := range gpus {
			if k.PCIBusID != "" && g.PCIBusID == k.PCIBusID {
				return j
			}
		}
		return -1
	}
	for i, k := range want {
		j := match(k)
		if j < 0 {
			continue
		}
		m := f.byUUID[gpus[j].UUID]
		if m == nil {
			m = &monitor{dev: devs[j], uuid: gpus[j].UUID}
			f.byUUID[gpus[j].UUID] = m
		}
		f.monitors[i] = m
	}
	f.watch()
	return f, nil
}

// watch registers the monitored GPUs for health events and starts the
// watcher. A GPU that supports none gets a note; health then rests on the
// ECC counters that telemetry reads.
func (f *fleet) watch() {
	if len(f.byUUID) == 0 {
		return
	}
	set, ret := f.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		for _, m := range f.byUUID {
			m.note = fmt.Sprintf("Xid events not watched: nvmlEventSetCreate: %v", ret)
		}
		return
	}
	registered := 0
	for _, m := range f.byUUID {
		types, ret := m.dev.GetSupportedEventTypes()
		if ret != nvml.SUCCESS || types&watchedEvents == 0 {
			m.note = "Xid events not supported"
			continue
		}
		if ret := m.dev.RegisterEvents(types&watchedEvents, set); ret != nvml.SUCCESS {
			m.note = fmt.Sprintf("Xid events not watched: nvmlDeviceRegisterEvents: %v", ret)
			continue
		}
		registered++
	}
	if registered == 0 {
		set.Free()
		return
	}
	f.set = set
	f.stop = make(chan struct{})
	f.done = make(chan struct{})
	go f.run()
}

func (f *fleet) run() {
	defer close(f.done)
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		data, ret := f.set.Wait(f.waitMs)
		switch ret {
		case nvml.SUCCESS:
			f.deliver(data)
		case nvml.ERROR_TIMEOUT:
		case nvml.ERROR_GPU_IS_LOST:
			for _, m := range f.byUUID {
				m.event(true, "NVML: GPU is lost")
			}
		default:
			// Wait failing for another reason would fail again at once;
			// back off rather than spin.
			f.log.Warn("cuda: NVML event wait failed", "error", ret.Error())
			select {
			case <-f.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (f *fleet) deliver(e nvml.EventData) {
	if e.Device == nil {
		return
	}
	uuid, ret := e.Device.GetUUID()
	if ret != nvml.SUCCESS {
		return
	}
	m := f.byUUID[uuid]
	if m == nil {
		return
	}
	var critical bool
	var what string
	switch {
	case e.EventType&nvml.EventTypeXidCriticalError != 0:
		critical, what = classifyXid(e.EventData)
	case e.EventType&nvml.EventTypeDoubleBitEccError != 0:
		critical, what = true, "double-bit ECC error"
	default:
		return
	}
	m.event(critical, what)
	f.log.Warn("cuda: GPU event", "gpu", uuid, "event", what, "unhealthy", critical)
}

// release drops one device's reference; the last stops the watcher and
// shuts NVML down.
func (f *fleet) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	f.mu.Unlock()
	if !last {
		return
	}
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.set.Free()
	}
	f.lib.Shutdown()
}

// attachMonitors gives each device its NVML monitor. NVML failing is not an
// error: the devices work without it and say so in Telemetry.
func attachMonitors(devs []*Device, log *slog.Logger) {
	attach(nvml.New(), devs, log)
}

func attach(lib NVML, devs []*Device, log *slog.Logger) {
	note := func(s string) {
		for _, d := range devs {
			d.monNote = s
		}
		log.Warn("cuda: no NVML monitoring", "reason", s)
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		note(fmt.Sprintf("NVML unavailable: nvmlInit: %v", ret))
		return
	}
	want := make([]deviceKey, len(devs))
	for i, d := range devs {
		want[i] = deviceKey{UUID: d.info.UUID, PCIBusID: d.info.PCIBusID}
	}
	f, err := newFleet(lib, want, len(devs), log)
	if err != nil {
		lib.Shutdown()
		note(err.Error())
		return
	}
	for i, d := range devs {
		d.fleet = f
		d.mon = f.monitors[i]
		if d.mon == nil {
			d.monNote = "no NVML device has this UUID or PCI bus id"
		}
	}
}
