//go:build cgo

package cuda

import (
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpufabric/gpufabric/engine/api"
)

// modelNVML adds to model the readings the NVML view takes, as an A100
// SXM4 gives them: no fan and no addressing mode (NOT_SUPPORTED), as a
// datacenter Ampere part answers.
func modelNVML(d *server.Device) {
	d.GetTemperatureThresholdFunc = func(th nvml.TemperatureThresholds) (uint32, nvml.Return) {
		switch th {
		case nvml.TEMPERATURE_THRESHOLD_SLOWDOWN:
			return 89, nvml.SUCCESS
		case nvml.TEMPERATURE_THRESHOLD_SHUTDOWN:
			return 92, nvml.SUCCESS
		}
		return 0, nvml.ERROR_NOT_SUPPORTED
	}
	d.GetPowerManagementLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
	d.GetPowerManagementDefaultLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
	d.GetPowerManagementLimitConstraintsFunc = func() (uint32, uint32, nvml.Return) { return 100000, 400000, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 400000, nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 123456789, nvml.SUCCESS }
	clocks := map[nvml.ClockType][2]uint32{
		nvml.CLOCK_GRAPHICS: {210, 1410}, nvml.CLOCK_SM: {210, 1410}, nvml.CLOCK_MEM: {1215, 1215}, nvml.CLOCK_VIDEO: {585, 1290},
	}
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) { return clocks[c][0], nvml.SUCCESS }
	d.GetMaxClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) { return clocks[c][1], nvml.SUCCESS }
	d.GetFanSpeedFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetNumFansFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetEccModeFunc = func() (nvml.EnableState, nvml.EnableState, nvml.Return) {
		return nvml.FEATURE_ENABLED, nvml.FEATURE_ENABLED, nvml.SUCCESS
	}
	d.GetPerformanceStateFunc = func() (nvml.Pstates, nvml.Return) { return nvml.PSTATE_0, nvml.SUCCESS }
	d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
	d.GetComputeModeFunc = func() (nvml.ComputeMode, nvml.Return) { return nvml.COMPUTEMODE_DEFAULT, nvml.SUCCESS }
	d.GetSerialFunc = func() (string, nvml.Return) { return "1563221000123", nvml.SUCCESS }
	d.GetVbiosVersionFunc = func() (string, nvml.Return) { return "92.00.45.00.03", nvml.SUCCESS }
	d.GetMaxPcieLinkGenerationFunc = func() (int, nvml.Return) { return 4, nvml.SUCCESS }
	d.GetCurrPcieLinkGenerationFunc = func() (int, nvml.Return) { return 4, nvml.SUCCESS }
	d.GetMaxPcieLinkWidthFunc = func() (int, nvml.Return) { return 16, nvml.SUCCESS }
	d.GetCurrPcieLinkWidthFunc = func() (int, nvml.Return) { return 16, nvml.SUCCESS }
	d.GetBAR1MemoryInfoFunc = func() (nvml.BAR1Memory, nvml.Return) {
		return nvml.BAR1Memory{Bar1Total: 64 << 30, Bar1Free: 64<<30 - 2<<20, Bar1Used: 2 << 20}, nvml.SUCCESS
	}
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0x1, nvml.SUCCESS } // GPU idle
	d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 167000, nvml.SUCCESS }
	d.GetDecoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 0, 167000, nvml.SUCCESS }
	d.GetPcieThroughputFunc = func(c nvml.PcieUtilCounter) (uint32, nvml.Return) { return 1000 + uint32(c), nvml.SUCCESS }
	d.GetMemoryBusWidthFunc = func() (uint32, nvml.Return) { return 5120, nvml.SUCCESS }
	d.GetAddressingModeFunc = func() (nvml.DeviceAddressingMode, nvml.Return) {
		return nvml.DeviceAddressingMode{}, nvml.ERROR_NOT_SUPPORTED
	}
}

func TestNVMLView(t *testing.T) {
	x := newDGX(t)
	g := x.gpus[3]
	modelNVML(g)
	d := &Device{mon: &monitor{dev: g, uuid: g.UUID}, fleet: &fleet{lib: x}}
	v, err := d.NVML()
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != api.NVMLSourceServer || v.DriverVersion != x.DriverVersion || v.NVMLVersion != x.NvmlVersion {
		t.Errorf("source %q, versions %q %q; want the server's NVML and its %q %q", v.Source, v.DriverVersion, v.NVMLVersion, x.DriverVersion, x.NvmlVersion)
	}
	for _, tc := range []struct {
		name      string
		bit       uint64
		supported bool
	}{
		{"utilization", api.NVMLHasUtilization, true},
		{"temperature", api.NVMLHasTemperature, true},
		{"thresholds", api.NVMLHasTemperatureThresholds, true},
		{"power", api.NVMLHasPower, true},
		{"power limits", api.NVMLHasPowerLimits, true},
		{"energy", api.NVMLHasEnergy, true},
		{"clocks", api.NVMLHasClocks, true},
		{"max clocks", api.NVMLHasMaxClocks, true},
		{"fan", api.NVMLHasFan, false},
		{"ECC", api.NVMLHasECC, true},
		{"pstate", api.NVMLHasPState, true},
		{"serial", api.NVMLHasSerial, true},
		{"brand", api.NVMLHasBrand, true},
		{"architecture", api.NVMLHasArchitecture, true},
		{"minor", api.NVMLHasMinorNumber, true},
		{"PCIe", api.NVMLHasPCIe, true},
		{"PCI ids", api.NVMLHasPCIIDs, true},
		{"BAR1", api.NVMLHasBAR1, true},
		{"clock event reasons", api.NVMLHasClocksEventReasons, true},
		{"events", api.NVMLHasEvents, true},
		{"addressing mode", api.NVMLHasAddressingMode, false},
		{"codec utilization", api.NVMLHasCodecUtilization, true},
		{"PCIe throughput", api.NVMLHasPCIeThroughput, true},
		{"memory bus width", api.NVMLHasMemoryBusWidth, true},
	} {
		if got := v.Supported&tc.bit != 0; got != tc.supported {
			t.Errorf("%s supported = %v, want %v", tc.name, got, tc.supported)
		}
	}
	want := struct {
		util, temp, slow, power, limit, minLimit uint32
		clocks, maxClocks                        [4]uint32
		minor, arch, pciID                       uint32
		bar1                                     uint64
		serial                                   string
	}{37, 34, 89, 61234, 400000, 100000, [4]uint32{210, 210, 1215, 585}, [4]uint32{1410, 1410, 1215, 1290},
		3, uint32(nvml.DEVICE_ARCH_AMPERE), g.Config.PciDeviceId, 64 << 30, "1563221000123"}
	got := want
	got.util, got.temp, got.slow, got.power, got.limit, got.minLimit = v.UtilGPU, v.TemperatureC, v.SlowdownC, v.PowerMilliwatts, v.PowerLimit, v.PowerMinLimit
	got.clocks, got.maxClocks, got.minor, got.arch, got.pciID, got.bar1, got.serial = v.Clocks, v.MaxClocks, v.MinorNumber, v.Architecture, v.PCIDeviceID, v.BAR1Total, v.Serial
	if v.PCIeTxKBps != 1000 || v.PCIeRxKBps != 1001 || v.MemoryBusWidth != 5120 || v.CodecSamplingUs != 167000 {
		t.Errorf("PCIe throughput %d/%d KB/s, bus width %d, codec period %d µs", v.PCIeTxKBps, v.PCIeRxKBps, v.MemoryBusWidth, v.CodecSamplingUs)
	}
	if got != want {
		t.Errorf("NVML view\n got %+v\nwant %+v", got, want)
	}
}

// TestNVMLViewCached: sessions share a view for nvmlViewMaxAge, and PCIe
// throughput, which NVML samples for 20 ms, is read once a second.
func TestNVMLViewCached(t *testing.T) {
	x := newDGX(t)
	g := x.gpus[0]
	modelNVML(g)
	var pcieReads, tempReads int
	g.GetPcieThroughputFunc = func(nvml.PcieUtilCounter) (uint32, nvml.Return) { pcieReads++; return 7, nvml.SUCCESS }
	g.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) {
		tempReads++
		return uint32(30 + tempReads), nvml.SUCCESS
	}
	m := &monitor{dev: g, uuid: g.UUID}
	t0 := time.Unix(1000, 0)
	for _, step := range []struct {
		at              time.Duration
		temp, tempReads uint32
		pcieReads       int
	}{
		{0, 31, 1, 2},                       // first view: everything read
		{50 * time.Millisecond, 31, 1, 2},   // shared
		{150 * time.Millisecond, 32, 2, 2},  // read again, PCIe kept
		{1100 * time.Millisecond, 33, 3, 4}, // PCIe sampled again
	} {
		v := m.cachedNVML(t0.Add(step.at))
		if v.TemperatureC != step.temp || uint32(tempReads) != step.tempReads || pcieReads != step.pcieReads {
			t.Errorf("at %v: temperature %d after %d reads, %d PCIe reads; want %d, %d, %d", step.at, v.TemperatureC, tempReads, pcieReads, step.temp, step.tempReads, step.pcieReads)
		}
		if v.PCIeTxKBps != 7 || v.Supported&api.NVMLHasPCIeThroughput == 0 {
			t.Errorf("at %v: PCIe throughput %d, supported %v", step.at, v.PCIeTxKBps, v.Supported&api.NVMLHasPCIeThroughput != 0)
		}
	}
}

func TestNVMLViewWithoutNVML(t *testing.T) {
	v, err := (&Device{}).NVML()
	if err != nil || v.Source != api.NVMLSourceNone || v.Supported != 0 {
		t.Errorf("a device without NVML: %+v, %v; want source none, nothing supported", v, err)
	}
}
