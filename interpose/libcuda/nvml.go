//go:build linux

package main

/*
#include "gf_nvml.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// nvmlReturn_t values used here.
const (
	nvmlSuccess          = 0
	nvmlInvalidArgument  = 2
	nvmlNotSupported     = 3
	nvmlInsufficientSize = 7
	nvmlDriverNotLoaded  = 9
	nvmlGPUIsLost        = 15
	nvmlUnknown          = 999
)

//export gfgo_nvmlInit
func gfgo_nvmlInit() C.nvmlReturn_t {
	if connect() != api.Success {
		// What NVML says on a host without a GPU driver; frameworks take it
		// as "no GPUs".
		return nvmlDriverNotLoaded
	}
	return nvmlSuccess
}

func nvmlUUID(d *interpose.Device) string {
	u := d.Info().UUID
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// nvmlBusID is NVML's form of the PCI bus id: an eight-digit domain.
func nvmlBusID(d *interpose.Device) string { return "0000" + pciBusID(d) }

// gfgo_nvmlFind returns the index of the device with a UUID (what = 1) or a
// PCI bus id (what = 4), -1 when none has it, and -2 for a bus id that is
// not one (NVML tells a malformed id from an unknown one).
//
//export gfgo_nvmlFind
func gfgo_nvmlFind(key *C.char, what C.int) C.int {
	c := live.Load()
	if c == nil {
		return -1
	}
	k := strings.TrimSpace(C.GoString(key))
	if _, err := normalizeBusID(k); what == 4 && err != nil {
		return -2
	}
	for i, d := range c.devs {
		switch what {
		case 1:
			if strings.EqualFold(k, nvmlUUID(d)) {
				return C.int(i)
			}
		case 4:
			if b, err := normalizeBusID(k); err == nil && b == pciBusID(d) {
				return C.int(i)
			}
		}
	}
	return -1
}

func nvmlString(dst unsafe.Pointer, n C.uint, s string) C.nvmlReturn_t {
	if int(n) < len(s)+1 {
		return nvmlInsufficientSize
	}
	b := unsafe.Slice((*byte)(dst), n)
	b[copy(b, s)] = 0
	return nvmlSuccess
}

func nvmlResult(err error) C.nvmlReturn_t {
	if api.ResultOf(err) == api.ErrDeinitialized {
		C.gf_set_state(C.GF_STATE_GONE)
		return nvmlGPUIsLost
	}
	return nvmlUnknown
}

//export gfgo_nvmlQuery
func gfgo_nvmlQuery(i C.int, what C.int, out, out2 unsafe.Pointer, n C.uint) C.nvmlReturn_t {
	d, r := device(i)
	if r != api.Success {
		return nvmlInvalidArgument
	}
	switch what {
	case 0:
		return nvmlString(out, n, d.Info().Name)
	case 1:
		return nvmlString(out, n, nvmlUUID(d))
	case 2:
		v, r := snapshot(d, true)
		if r != nvmlSuccess {
			return r
		}
		m := (*C.nvmlMemory_t)(out)
		total, used, free := shareMemory(v)
		m.total, m.free, m.used = C.ulonglong(total), C.ulonglong(free), C.ulonglong(used)
	case 4:
		p := (*C.nvmlPciInfo_t)(out)
		*p = C.nvmlPciInfo_t{}
		legacy, full := pciBusID(d), nvmlBusID(d)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.busIdLegacy[0])), len(p.busIdLegacy)-1), legacy)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.busId[0])), len(p.busId)-1), full)
		a := func(k int) C.uint { v, _ := d.Attribute(k); return C.uint(v) }
		p.domain, p.bus, p.device = a(api.AttrPCIDomainID), a(api.AttrPCIBusID), a(api.AttrPCIDeviceID)
		if v, r := snapshot(d, false); r == nvmlSuccess && v.Supported&api.NVMLHasPCIIDs != 0 {
			p.pciDeviceId, p.pciSubSystemId = C.uint(v.PCIDeviceID), C.uint(v.PCISubsystemID)
		}
	case 5:
		if out2 == nil {
			return nvmlInvalidArgument
		}
		major, _ := d.Attribute(api.AttrComputeCapabilityMajor)
		minor, _ := d.Attribute(api.AttrComputeCapabilityMinor)
		*(*C.int)(out), *(*C.int)(out2) = C.int(major), C.int(minor)
	default:
		return nvmlNotSupported
	}
	return nvmlSuccess
}

// shareMemory is NVML's memory of a device as the session sees it: the
// share is the total, what the session holds is used, and free is what is
// left of the share, bounded by what the whole device has free.
func shareMemory(v api.NVMLDevice) (total, used, free uint64) {
	total, used = v.Quota, min(v.SessionUsed, v.Quota)
	return total, used, min(total-used, v.DeviceFree)
}

// nvmlMaxAge is how long a device's NVML view answers readings before it
// is fetched again. A monitoring loop reads a dozen fields a pass; one
// round trip a pass serves them all, and no reading is older than a tenth
// of a second, finer than NVML's own sampling of utilization and power.
// Memory and the process list are always fetched: an application reads
// them right after it allocates and expects to see its allocation. (A
// variable, for the tests.)
var nvmlMaxAge = 100 * time.Millisecond

type nvmlCached struct {
	v  api.NVMLDevice
	at time.Time
}

var nvmlCache struct {
	mu   sync.Mutex
	devs map[*interpose.Device]nvmlCached
}

// snapshot returns the device's NVML view, fetched now when fresh is set
// or the cached one is older than nvmlMaxAge.
func snapshot(d *interpose.Device, fresh bool) (api.NVMLDevice, C.nvmlReturn_t) {
	nvmlCache.mu.Lock()
	c, ok := nvmlCache.devs[d]
	nvmlCache.mu.Unlock()
	if ok && !fresh && time.Since(c.at) < nvmlMaxAge {
		return c.v, nvmlSuccess
	}
	v, err := d.NVML()
	if err != nil {
		return v, nvmlResult(err)
	}
	nvmlCache.mu.Lock()
	if nvmlCache.devs == nil {
		nvmlCache.devs = make(map[*interpose.Device]nvmlCached)
	}
	nvmlCache.devs[d] = nvmlCached{v, time.Now()}
	nvmlCache.mu.Unlock()
	return v, nvmlSuccess
}

// cString copies s into a fixed C array, NUL-terminated, cut to fit.
func cString(dst []C.char, s string) {
	n := min(len(s), len(dst)-1)
	for i := range n {
		dst[i] = C.char(s[i])
	}
	dst[n] = 0
}

//export gfgo_nvmlSnap
func gfgo_nvmlSnap(i C.int, fresh C.int, out *C.struct_gf_nvml_snap) C.nvmlReturn_t {
	d, r := device(i)
	if r != api.Success {
		return nvmlInvalidArgument
	}
	v, ret := snapshot(d, fresh != 0)
	if ret != nvmlSuccess {
		return ret
	}
	*out = C.struct_gf_nvml_snap{}
	u64 := func(x uint64) C.ulonglong { return C.ulonglong(x) }
	u32 := func(x uint32) C.uint { return C.uint(x) }
	out.supported = u64(v.Supported)
	out.quota, out.session_used, out.device_free = u64(v.Quota), u64(v.SessionUsed), u64(v.DeviceFree)
	out.bar1_total, out.bar1_used = u64(v.BAR1Total), u64(v.BAR1Used)
	out.energy_mj, out.clocks_event_reasons, out.supported_events = u64(v.EnergyMillijoules), u64(v.ClocksEventReasons), u64(v.SupportedEvents)
	for t := range 2 {
		for c := range 2 {
			out.ecc_errors[t][c] = u64(v.ECCErrors[t][c])
		}
	}
	out.brand, out.arch, out.minor = u32(v.Brand), u32(v.Architecture), u32(v.MinorNumber)
	out.pci_device_id, out.pci_subsystem_id = u32(v.PCIDeviceID), u32(v.PCISubsystemID)
	out.pcie_gen_max, out.pcie_gen_cur, out.pcie_width_max, out.pcie_width_cur = u32(v.PCIeGenMax), u32(v.PCIeGenCur), u32(v.PCIeWidthMax), u32(v.PCIeWidthCur)
	out.util_gpu, out.util_mem = u32(v.UtilGPU), u32(v.UtilMemory)
	out.temp, out.slowdown, out.shutdown = u32(v.TemperatureC), u32(v.SlowdownC), u32(v.ShutdownC)
	out.power, out.power_limit, out.power_default = u32(v.PowerMilliwatts), u32(v.PowerLimit), u32(v.PowerDefaultLimit)
	out.power_min, out.power_max, out.power_enforced = u32(v.PowerMinLimit), u32(v.PowerMaxLimit), u32(v.PowerEnforcedLimit)
	for k := range 4 {
		out.clocks[k], out.max_clocks[k] = u32(v.Clocks[k]), u32(v.MaxClocks[k])
	}
	out.fan, out.fans, out.ecc_current, out.ecc_pending = u32(v.FanPercent), u32(v.Fans), u32(v.ECCCurrent), u32(v.ECCPending)
	out.pstate, out.persistence, out.compute_mode, out.addressing_mode = u32(v.PState), u32(v.PersistenceMode), u32(v.ComputeMode), u32(v.AddressingMode)
	out.encoder_util, out.decoder_util, out.codec_sampling_us = u32(v.EncoderUtil), u32(v.DecoderUtil), u32(v.CodecSamplingUs)
	out.pcie_tx_kbps, out.pcie_rx_kbps, out.memory_bus_width = u32(v.PCIeTxKBps), u32(v.PCIeRxKBps), u32(v.MemoryBusWidth)
	if v.Source == api.NVMLSourceEmulated {
		out.emulated = 1
	}
	total, used, free := shareMemory(v)
	out.quota, out.session_used, out.device_free = u64(total), u64(used), u64(free)
	cString(out.serial[:], v.Serial)
	cString(out.vbios[:], v.VBIOS)
	cString(out.driver_version[:], v.DriverVersion)
	cString(out.nvml_version[:], v.NVMLVersion)
	return nvmlSuccess
}

// nvmlBits pairs the C side's GF_NV_* bits with api's, for the test that
// keeps them equal.
func nvmlBits() [][2]uint64 {
	return [][2]uint64{
		{C.GF_NV_UTIL, api.NVMLHasUtilization}, {C.GF_NV_TEMP, api.NVMLHasTemperature},
		{C.GF_NV_TEMP_THRESHOLDS, api.NVMLHasTemperatureThresholds}, {C.GF_NV_POWER, api.NVMLHasPower},
		{C.GF_NV_POWER_LIMITS, api.NVMLHasPowerLimits}, {C.GF_NV_ENERGY, api.NVMLHasEnergy},
		{C.GF_NV_CLOCKS, api.NVMLHasClocks}, {C.GF_NV_MAX_CLOCKS, api.NVMLHasMaxClocks},
		{C.GF_NV_FAN, api.NVMLHasFan}, {C.GF_NV_ECC, api.NVMLHasECC}, {C.GF_NV_PSTATE, api.NVMLHasPState},
		{C.GF_NV_PERSISTENCE, api.NVMLHasPersistence}, {C.GF_NV_COMPUTE_MODE, api.NVMLHasComputeMode},
		{C.GF_NV_SERIAL, api.NVMLHasSerial}, {C.GF_NV_VBIOS, api.NVMLHasVBIOS}, {C.GF_NV_BRAND, api.NVMLHasBrand},
		{C.GF_NV_ARCH, api.NVMLHasArchitecture}, {C.GF_NV_MINOR, api.NVMLHasMinorNumber},
		{C.GF_NV_PCIE, api.NVMLHasPCIe}, {C.GF_NV_BAR1, api.NVMLHasBAR1},
		{C.GF_NV_CLOCK_REASONS, api.NVMLHasClocksEventReasons}, {C.GF_NV_EVENTS, api.NVMLHasEvents},
		{C.GF_NV_ADDRESSING, api.NVMLHasAddressingMode}, {C.GF_NV_PCI_IDS, api.NVMLHasPCIIDs},
		{C.GF_NV_CODEC_UTIL, api.NVMLHasCodecUtilization}, {C.GF_NV_PCIE_THROUGHPUT, api.NVMLHasPCIeThroughput},
		{C.GF_NV_MEMORY_BUS_WIDTH, api.NVMLHasMemoryBusWidth},
	}
}

// gfgo_nvmlVersion writes the driver's version (what = 0) or NVML's
// (what = 1) as the server's device 0 reports them. NVML's version is asked
// before nvmlInit too, so this connects if nothing has.
//
//export gfgo_nvmlVersion
func gfgo_nvmlVersion(what C.int, out *C.char, n C.uint) C.nvmlReturn_t {
	if connect() != api.Success {
		return nvmlUnknown
	}
	c := live.Load()
	if c == nil || len(c.devs) == 0 {
		return nvmlNotSupported
	}
	v, r := snapshot(c.devs[0], false)
	if r != nvmlSuccess {
		return r
	}
	s := v.DriverVersion
	if what == 1 {
		s = v.NVMLVersion
	}
	if s == "" {
		return nvmlNotSupported
	}
	return nvmlString(unsafe.Pointer(out), n, s)
}
