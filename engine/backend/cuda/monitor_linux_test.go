//go:build cgo

package cuda

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpufabric/gpufabric/engine/backend"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// reading is what one GPU reports. The dgxa100 mock models discovery (names,
// UUIDs, memory, MIG); the live readings and events are added here in the
// shape a real A100 gives them, and a field set to unsupported answers
// ERROR_NOT_SUPPORTED as consumer or virtualised GPUs do.
type reading struct {
	util        uint32 // percent
	tempC       uint32
	powerMW     uint32
	used        uint64
	eccVolatile uint64
	events      uint64 // supported event types
	unsupported string // comma-separated: util,temp,power,memory,ecc
}

var healthyA100 = reading{util: 37, tempC: 34, powerMW: 61234, used: 512 << 20,
	events: nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError | nvml.EventTypeSingleBitEccError}

func model(d *server.Device, r *reading) {
	ret := func(field string) nvml.Return {
		if strings.Contains(","+r.unsupported+",", ","+field+",") {
			return nvml.ERROR_NOT_SUPPORTED
		}
		return nvml.SUCCESS
	}
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		// NVML spells it with an eight-digit domain, upper case.
		id, _ := normalizeBusID(d.PciBusID)
		var p nvml.PciInfo
		for i, c := range strings.ToUpper("0000" + id) {
			p.BusId[i] = int8(c)
		}
		p.PciDeviceId = d.Config.PciDeviceId
		return p, nvml.SUCCESS
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: r.util, Memory: r.util / 2}, ret("util")
	}
	d.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if s != nvml.TEMPERATURE_GPU {
			return 0, nvml.ERROR_INVALID_ARGUMENT
		}
		return r.tempC, ret("temp")
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return r.powerMW, ret("power") }
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		total := d.MemoryInfo.Total
		return nvml.Memory{Total: total, Used: r.used, Free: total - r.used}, ret("memory")
	}
	d.GetTotalEccErrorsFunc = func(t nvml.MemoryErrorType, c nvml.EccCounterType) (uint64, nvml.Return) {
		if t == nvml.MEMORY_ERROR_TYPE_UNCORRECTED && c == nvml.VOLATILE_ECC {
			return r.eccVolatile, ret("ecc")
		}
		return 0, ret("ecc")
	}
	d.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return r.events, nvml.SUCCESS }
}

// dgx is the dgxa100 mock with every GPU modelled healthy, an event set fed
// from a channel, and counts of what was freed and shut down.
type dgx struct {
	*dgxa100.Server
	gpus     []*server.Device
	readings []*reading
	events   chan nvml.EventData

	mu         sync.Mutex
	registered map[string]uint64 // UUID → event mask
	inits      int
	shutdowns  int
	freed      bool
}

func newDGX(t *testing.T) *dgx {
	x := &dgx{Server: dgxa100.New(), events: make(chan nvml.EventData, 16), registered: make(map[string]uint64)}
	for _, d := range x.Devices {
		g := d.(*server.Device)
		r := healthyA100
		model(g, &r)
		g.RegisterEventsFunc = func(mask uint64, set nvml.EventSet) nvml.Return {
			x.mu.Lock()
			x.registered[g.UUID] = mask
			x.mu.Unlock()
			return nvml.SUCCESS
		}
		x.gpus = append(x.gpus, g)
		x.readings = append(x.readings, &r)
	}
	x.InitFunc = func() nvml.Return {
		x.mu.Lock()
		x.inits++
		x.mu.Unlock()
		return nvml.SUCCESS
	}
	x.ShutdownFunc = func() nvml.Return {
		x.mu.Lock()
		x.shutdowns++
		x.mu.Unlock()
		return nvml.SUCCESS
	}
	x.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
				select {
				case e := <-x.events:
					return e, nvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() nvml.Return {
				x.mu.Lock()
				x.freed = true
				x.mu.Unlock()
				return nvml.SUCCESS
			},
		}, nvml.SUCCESS
	}
	old := eventWaitMs
	eventWaitMs = 5
	t.Cleanup(func() { eventWaitMs = old })
	return x
}

func TestInventory(t *testing.T) {
	x := newDGX(t)
	gpus, err := Inventory(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 8 {
		t.Fatalf("%d GPUs, want the DGX A100's 8", len(gpus))
	}
	for i, g := range gpus {
		want := GPU{
			Index:       i,
			Name:        x.gpus[i].Config.Name, // "Mock NVIDIA A100-SXM4-40GB"
			UUID:        x.gpus[i].UUID,
			PCIBusID:    fmt.Sprintf("0000:%02x:00.0", i),
			MemoryTotal: 40960 << 20,
		}
		if g != want {
			t.Errorf("GPU %d = %+v, want %+v", i, g, want)
		}
		if _, ok := parseNVMLUUID(g.UUID); !ok {
			t.Errorf("GPU %d: UUID %q does not parse", i, g.UUID)
		}
	}
	if x.inits != 1 || x.shutdowns != 1 {
		t.Errorf("Inventory: %d inits, %d shutdowns; want one each", x.inits, x.shutdowns)
	}
}

func TestInventoryWithoutNVML(t *testing.T) {
	x := newDGX(t)
	x.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
	if _, err := Inventory(x); !errors.Is(err, ErrNoNVML) {
		t.Fatalf("Inventory = %v, want ErrNoNVML", err)
	}
}

func TestTelemetry(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *reading)
		want   backend.Telemetry
	}{
		{
			name:   "healthy",
			change: func(*reading) {},
			want:   backend.Telemetry{Utilization: 0.37, MemoryUsed: 512 << 20, TemperatureC: 34, PowerWatts: 61.234, Healthy: true, Health: "ok"},
		},
		{
			name:   "nothing supported",
			change: func(r *reading) { r.unsupported = "util,temp,power,memory,ecc" },
			want:   backend.Telemetry{Utilization: -1, TemperatureC: -1, PowerWatts: -1, Healthy: true, Health: "ok"},
		},
		{
			name:   "busy and hot",
			change: func(r *reading) { r.util, r.tempC, r.powerMW = 100, 83, 400000 },
			want:   backend.Telemetry{Utilization: 1, MemoryUsed: 512 << 20, TemperatureC: 83, PowerWatts: 400, Healthy: true, Health: "ok"},
		},
		{
			name:   "uncorrectable ECC errors",
			change: func(r *reading) { r.eccVolatile = 2 },
			want: backend.Telemetry{Utilization: 0.37, MemoryUsed: 512 << 20, TemperatureC: 34, PowerWatts: 61.234,
				Healthy: false, Health: "2 uncorrectable ECC errors since the driver loaded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newDGX(t)
			tt.change(x.readings[4])
			m := &monitor{dev: x.gpus[4], uuid: x.gpus[4].UUID}
			if got := m.telemetry(); got != tt.want {
				t.Errorf("telemetry = %+v\nwant        %+v", got, tt.want)
			}
		})
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestXidHealth(t *testing.T) {
	x := newDGX(t)
	x.readings[6].events = 0 // a GPU that reports no events
	if ret := x.Init(); ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	u2, _ := parseNVMLUUID(x.gpus[2].UUID)
	want := []deviceKey{
		{UUID: u2},                     // matched by UUID
		{PCIBusID: "0000:03:00.0"},     // matched by bus id alone
		{UUID: [16]byte{1}},            // no such GPU
		{PCIBusID: x.gpus[6].PciBusID}, // no events
	}
	f, err := newFleet(x, want, 2, quiet)
	if err != nil {
		t.Fatal(err)
	}
	m2, m3, none, m6 := f.monitors[0], f.monitors[1], f.monitors[2], f.monitors[3]
	if m2 == nil || m2.dev != nvml.Device(x.gpus[2]) || m3 == nil || m3.dev != nvml.Device(x.gpus[3]) || none != nil || m6 == nil {
		t.Fatalf("matching: %v %v %v %v", m2, m3, none, m6)
	}
	x.mu.Lock()
	if mask := x.registered[x.gpus[2].UUID]; mask != watchedEvents {
		t.Errorf("GPU 2 registered for events %#x, want %#x (Xid and double-bit ECC)", mask, watchedEvents)
	}
	if _, ok := x.registered[x.gpus[6].UUID]; ok {
		t.Error("GPU 6 registered for events it does not support")
	}
	x.mu.Unlock()
	if h := m6.telemetry().Health; h != "ok; Xid events not supported" {
		t.Errorf("GPU 6 health %q", h)
	}

	steps := []struct {
		event   nvml.EventData
		m       *monitor
		healthy bool
		health  string
	}{
		// A client's kernel faulted: the GPU is fine.
		{nvml.EventData{Device: x.gpus[2], EventType: nvml.EventTypeXidCriticalError, EventData: 13},
			m2, true, "ok; last event: Xid 13 (graphics engine exception)"},
		// The GPU fell off the bus: out of service.
		{nvml.EventData{Device: x.gpus[2], EventType: nvml.EventTypeXidCriticalError, EventData: 79},
			m2, false, "Xid 79 (GPU has fallen off the bus); last event: Xid 13 (graphics engine exception)"},
		{nvml.EventData{Device: x.gpus[3], EventType: nvml.EventTypeDoubleBitEccError},
			m3, false, "double-bit ECC error"},
	}
	for _, st := range steps {
		x.events <- st.event
		eventually(t, st.health, func() bool {
			tel := st.m.telemetry()
			return tel.Healthy == st.healthy && tel.Health == st.health
		})
	}
	// Events for GPUs nobody watches, or without a device, change nothing.
	x.events <- nvml.EventData{Device: x.gpus[5], EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	x.events <- nvml.EventData{EventType: nvml.EventTypeXidCriticalError, EventData: 79}
	eventually(t, "events drained", func() bool { return len(x.events) == 0 })

	f.release()
	x.mu.Lock()
	early := x.freed || x.shutdowns > 0
	x.mu.Unlock()
	if early {
		t.Fatal("the first release stopped the watcher; one device still uses it")
	}
	f.release()
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.freed || x.shutdowns != 1 {
		t.Errorf("after the last release: event set freed %v, %d shutdowns", x.freed, x.shutdowns)
	}
}

// TestDeviceTelemetry attaches the mock to the fake driver's devices: the
// first matches an NVML GPU by UUID, the second by PCI bus id, and
// Telemetry comes from NVML.
func TestDeviceTelemetry(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	x := newDGX(t)
	x.gpus[3].UUID = formatUUID(devs[0].Info().UUID)
	x.gpus[6].PciBusID = devs[1].Info().PCIBusID
	x.readings[3].tempC = 41
	x.readings[6].tempC = 42
	attach(x, devs, quiet)
	for i, want := range []float64{41, 42} {
		tel, err := devs[i].Telemetry()
		if err != nil || tel.TemperatureC != want || !tel.Healthy {
			t.Errorf("device %d: Telemetry = %+v, %v; want NVML's reading (%v C)", i, tel, err, want)
		}
	}
	x.events <- nvml.EventData{Device: x.gpus[6], EventType: nvml.EventTypeXidCriticalError, EventData: 48}
	eventually(t, "device 1 unhealthy", func() bool {
		tel, _ := devs[1].Telemetry()
		return !tel.Healthy && strings.Contains(tel.Health, "Xid 48")
	})
}

func TestAttachWithoutNVML(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	x := newDGX(t)
	x.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
	attach(x, devs, quiet)
	tel, err := devs[0].Telemetry()
	if err != nil || tel.Utilization != -1 || !tel.Healthy || !strings.Contains(tel.Health, "NVML unavailable") {
		t.Errorf("Telemetry = %+v, %v", tel, err)
	}
}
