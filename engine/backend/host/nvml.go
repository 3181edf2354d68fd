package host

import (
	"fmt"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var _ backend.NVMLReporter = (*Device)(nil)

// driverBranch is the NVIDIA driver branch that first shipped each CUDA
// driver version: the emulation reports the branch of the CUDA version it
// claims, so that a tool comparing the two (or parsing either) finds them
// consistent.
var driverBranch = map[int]int{
	12000: 525, 12010: 530, 12020: 535, 12030: 545, 12040: 550,
	12050: 555, 12060: 560, 12080: 570, 12090: 575, 13000: 580,
}

// nvmlDriverVersion is the emulation's driver version in the driver's own
// numeric form, "570.00.00".
func nvmlDriverVersion(cuda int) string {
	b, ok := driverBranch[cuda]
	if !ok {
		b = 570
	}
	return fmt.Sprintf("%d.00.00", b)
}

// The emulation's NVML constants. They are labelled values (Source
// "emulated"), chosen to parse and to be consistent with each other and
// with what the driver API reports; none is measured.
const (
	emulatedTempC     = 40
	emulatedSlowdownC = 90
	emulatedShutdownC = 95
	emulatedPowerMW   = 300_000 // limit, default and enforced
	emulatedMinPowerW = 100_000
	emulatedPCIeGen   = 4
	emulatedPCIeWidth = 16
	// NVIDIA's PCI vendor id, with device id 0: the vendor that CUDA tools
	// look for, and no product of it.
	emulatedPCIDeviceID = 0x0000_10de
	// The events a GPU reports about its health. The emulation supports
	// registering them; none ever happens, so a wait times out.
	emulatedEvents = 0x0001 | 0x0004 | 0x0008 // single-bit ECC, double-bit ECC, Xid critical
	nvmlArchAmpere = 7                        // NVML_DEVICE_ARCH_AMPERE: compute capability 8.0
)

// NVML answers NVML's questions about the emulated device. BAR1 is real
// (the emulation's memory and what is in use); utilization reads zero (the
// emulation does not measure it), the rest are the constants above. A fan
// is not reported, as datacenter GPUs report none.
func (d *Device) NVML() (api.NVMLDevice, error) {
	free, total, _ := d.MemInfo()
	used := total - free
	v := api.NVMLDevice{
		Source:        api.NVMLSourceEmulated,
		DriverVersion: nvmlDriverVersion(DriverVersion),
		Serial:        fmt.Sprintf("emulated-%x", d.info.UUID[:6]),
		VBIOS:         "00.00.00.00.00",
		Supported: api.NVMLHasUtilization | api.NVMLHasTemperature | api.NVMLHasTemperatureThresholds |
			api.NVMLHasPower | api.NVMLHasPowerLimits | api.NVMLHasEnergy | api.NVMLHasClocks | api.NVMLHasMaxClocks |
			api.NVMLHasECC | api.NVMLHasPState | api.NVMLHasPersistence | api.NVMLHasComputeMode |
			api.NVMLHasSerial | api.NVMLHasVBIOS | api.NVMLHasBrand | api.NVMLHasArchitecture | api.NVMLHasMinorNumber |
			api.NVMLHasPCIe | api.NVMLHasBAR1 | api.NVMLHasClocksEventReasons | api.NVMLHasEvents |
			api.NVMLHasAddressingMode | api.NVMLHasPCIIDs | api.NVMLHasCodecUtilization | api.NVMLHasPCIeThroughput |
			api.NVMLHasMemoryBusWidth,
		BAR1Total:       total,
		BAR1Used:        used,
		SupportedEvents: emulatedEvents,
		Architecture:    nvmlArchAmpere,
		MinorNumber:     uint32(d.info.Index),
		PCIDeviceID:     emulatedPCIDeviceID,
		PCIeGenMax:      emulatedPCIeGen, PCIeGenCur: emulatedPCIeGen,
		PCIeWidthMax: emulatedPCIeWidth, PCIeWidthCur: emulatedPCIeWidth,
		TemperatureC: emulatedTempC, SlowdownC: emulatedSlowdownC, ShutdownC: emulatedShutdownC,
		PowerLimit: emulatedPowerMW, PowerDefaultLimit: emulatedPowerMW, PowerEnforcedLimit: emulatedPowerMW,
		PowerMinLimit: emulatedMinPowerW, PowerMaxLimit: emulatedPowerMW,
		ECCCurrent: 1, ECCPending: 1,
		PersistenceMode: 1,
		// No codec, and PCIe throughput is not measured: zeros, over
		// NVML's usual one-second sample.
		CodecSamplingUs: 1_000_000,
		MemoryBusWidth:  uint32(d.info.Attrs[api.AttrGlobalMemoryBusWidth]),
	}
	v.NVMLVersion = fmt.Sprintf("%d.%s", DriverVersion/1000, v.DriverVersion)
	mhz := uint32(d.info.Attrs[api.AttrClockRate] / 1000)
	v.Clocks = [4]uint32{mhz, mhz, mhz, mhz}
	v.MaxClocks = v.Clocks
	return v, nil
}
