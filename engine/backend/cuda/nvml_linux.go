//go:build cgo

package cuda

import (
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var _ backend.NVMLReporter = (*Device)(nil)

// systemVersions is the part of NVML that names the driver; the real
// library and go-nvml's mocks have it, a minimal NVML may not.
type systemVersions interface {
	SystemGetDriverVersion() (string, nvml.Return)
	SystemGetNVMLVersion() (string, nvml.Return)
}

// NVML answers NVML's questions about this GPU from the server's NVML: what
// a client's nvmlDevice* calls would read on the server, one field group
// marked supported where NVML answered it. Without NVML for this device it
// reports nothing but its Source ("none"), and the client answers
// NVML_ERROR_NOT_SUPPORTED.
func (d *Device) NVML() (api.NVMLDevice, error) {
	if d.mon == nil || d.fleet == nil {
		return api.NVMLDevice{Source: api.NVMLSourceNone}, nil
	}
	v := d.mon.cachedNVML(time.Now())
	if sv, ok := d.fleet.lib.(systemVersions); ok {
		v.DriverVersion, _ = sv.SystemGetDriverVersion()
		v.NVMLVersion, _ = sv.SystemGetNVMLVersion()
	}
	return v, nil
}

// How long readings are shared. The view takes some forty NVML calls,
// and PCIe throughput is sampled by NVML over 20 ms, so every session's
// monitoring loop reading them afresh would keep NVML busy and stall each
// query: a view serves all sessions for a tenth of a second (the client
// caches as long), and PCIe throughput is sampled once a second.
const (
	nvmlViewMaxAge = 100 * time.Millisecond
	pcieMaxAge     = time.Second
)

// nvmlView is a monitor's latest view and when it and its PCIe throughput
// were read.
type nvmlView struct {
	mu         sync.Mutex
	v          api.NVMLDevice
	at, pcieAt time.Time
}

// cachedNVML returns the view, read again when older than nvmlViewMaxAge.
func (m *monitor) cachedNVML(now time.Time) api.NVMLDevice {
	c := &m.view
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < nvmlViewMaxAge {
		return c.v
	}
	pcie := c.pcieAt.IsZero() || now.Sub(c.pcieAt) >= pcieMaxAge
	v := m.nvml(pcie)
	if pcie {
		c.pcieAt = now
	} else {
		v.PCIeTxKBps, v.PCIeRxKBps = c.v.PCIeTxKBps, c.v.PCIeRxKBps
		v.Supported |= c.v.Supported & api.NVMLHasPCIeThroughput
	}
	c.v, c.at = v, now
	return v
}

// nvml reads the GPU's NVML view now; PCIe throughput, which NVML samples
// for 20 ms, only when pcie is set. Each group is marked supported when
// its first reading succeeds; a group's other readings that fail read zero.
func (m *monitor) nvml(pcie bool) api.NVMLDevice {
	dev := m.dev
	v := api.NVMLDevice{Source: api.NVMLSourceServer}
	has := func(bit uint64, ret nvml.Return) {
		if ret == nvml.SUCCESS {
			v.Supported |= bit
		}
	}
	var ret nvml.Return

	u, ret := dev.GetUtilizationRates()
	v.UtilGPU, v.UtilMemory = u.Gpu, u.Memory
	has(api.NVMLHasUtilization, ret)

	v.TemperatureC, ret = dev.GetTemperature(nvml.TEMPERATURE_GPU)
	has(api.NVMLHasTemperature, ret)
	v.SlowdownC, ret = dev.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SLOWDOWN)
	has(api.NVMLHasTemperatureThresholds, ret)
	v.ShutdownC, _ = dev.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SHUTDOWN)

	v.PowerMilliwatts, ret = dev.GetPowerUsage()
	has(api.NVMLHasPower, ret)
	v.PowerLimit, ret = dev.GetPowerManagementLimit()
	has(api.NVMLHasPowerLimits, ret)
	v.PowerDefaultLimit, _ = dev.GetPowerManagementDefaultLimit()
	v.PowerMinLimit, v.PowerMaxLimit, _ = dev.GetPowerManagementLimitConstraints()
	v.PowerEnforcedLimit, _ = dev.GetEnforcedPowerLimit()
	v.EnergyMillijoules, ret = dev.GetTotalEnergyConsumption()
	has(api.NVMLHasEnergy, ret)

	for i, c := range []nvml.ClockType{nvml.CLOCK_GRAPHICS, nvml.CLOCK_SM, nvml.CLOCK_MEM, nvml.CLOCK_VIDEO} {
		v.Clocks[i], ret = dev.GetClockInfo(c)
		if i == 0 {
			has(api.NVMLHasClocks, ret)
		}
		v.MaxClocks[i], ret = dev.GetMaxClockInfo(c)
		if i == 0 {
			has(api.NVMLHasMaxClocks, ret)
		}
	}

	v.FanPercent, ret = dev.GetFanSpeed()
	has(api.NVMLHasFan, ret)
	if fans, ret := dev.GetNumFans(); ret == nvml.SUCCESS {
		v.Fans = uint32(fans)
	}

	cur, pending, ret := dev.GetEccMode()
	v.ECCCurrent, v.ECCPending = uint32(cur), uint32(pending)
	has(api.NVMLHasECC, ret)
	for t, et := range []nvml.MemoryErrorType{nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.MEMORY_ERROR_TYPE_UNCORRECTED} {
		for c, ct := range []nvml.EccCounterType{nvml.VOLATILE_ECC, nvml.AGGREGATE_ECC} {
			v.ECCErrors[t][c], _ = dev.GetTotalEccErrors(et, ct)
		}
	}

	p, ret := dev.GetPerformanceState()
	v.PState = uint32(p)
	has(api.NVMLHasPState, ret)
	pm, ret := dev.GetPersistenceMode()
	v.PersistenceMode = uint32(pm)
	has(api.NVMLHasPersistence, ret)
	cm, ret := dev.GetComputeMode()
	v.ComputeMode = uint32(cm)
	has(api.NVMLHasComputeMode, ret)

	v.Serial, ret = dev.GetSerial()
	has(api.NVMLHasSerial, ret)
	v.VBIOS, ret = dev.GetVbiosVersion()
	has(api.NVMLHasVBIOS, ret)
	b, ret := dev.GetBrand()
	v.Brand = uint32(b)
	has(api.NVMLHasBrand, ret)
	a, ret := dev.GetArchitecture()
	v.Architecture = uint32(a)
	has(api.NVMLHasArchitecture, ret)
	minor, ret := dev.GetMinorNumber()
	v.MinorNumber = uint32(minor)
	has(api.NVMLHasMinorNumber, ret)

	gen, ret := dev.GetMaxPcieLinkGeneration()
	has(api.NVMLHasPCIe, ret)
	curGen, _ := dev.GetCurrPcieLinkGeneration()
	width, _ := dev.GetMaxPcieLinkWidth()
	curWidth, _ := dev.GetCurrPcieLinkWidth()
	v.PCIeGenMax, v.PCIeGenCur, v.PCIeWidthMax, v.PCIeWidthCur = uint32(gen), uint32(curGen), uint32(width), uint32(curWidth)
	if pci, ret := dev.GetPciInfo(); ret == nvml.SUCCESS {
		v.PCIDeviceID, v.PCISubsystemID = pci.PciDeviceId, pci.PciSubSystemId
		v.Supported |= api.NVMLHasPCIIDs
	}

	bar, ret := dev.GetBAR1MemoryInfo()
	v.BAR1Total, v.BAR1Used = bar.Bar1Total, bar.Bar1Used
	has(api.NVMLHasBAR1, ret)
	v.ClocksEventReasons, ret = dev.GetCurrentClocksEventReasons()
	has(api.NVMLHasClocksEventReasons, ret)
	v.SupportedEvents, ret = dev.GetSupportedEventTypes()
	has(api.NVMLHasEvents, ret)
	v.EncoderUtil, v.CodecSamplingUs, ret = dev.GetEncoderUtilization()
	has(api.NVMLHasCodecUtilization, ret)
	v.DecoderUtil, _, _ = dev.GetDecoderUtilization()
	if pcie {
		v.PCIeTxKBps, ret = dev.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES)
		has(api.NVMLHasPCIeThroughput, ret)
		v.PCIeRxKBps, _ = dev.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES)
	}
	v.MemoryBusWidth, ret = dev.GetMemoryBusWidth()
	has(api.NVMLHasMemoryBusWidth, ret)
	am, ret := dev.GetAddressingMode()
	v.AddressingMode = am.Value
	has(api.NVMLHasAddressingMode, ret)
	return v
}
