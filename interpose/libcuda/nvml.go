//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"fmt"
	"strings"
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

//export gfgo_nvmlFind
func gfgo_nvmlFind(key *C.char, what C.int) C.int {
	c := live.Load()
	if c == nil {
		return -1
	}
	k := strings.TrimSpace(C.GoString(key))
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
		free, total, err := d.MemGetInfo()
		if err != nil {
			return nvmlResult(err)
		}
		m := (*C.nvmlMemory_t)(out)
		m.total, m.free, m.used = C.ulonglong(total), C.ulonglong(free), C.ulonglong(total-free)
	case 3:
		u := (*C.nvmlUtilization_t)(out)
		u.gpu, u.memory = 0, 0
		st, err := live.Load().s.Status()
		if err != nil {
			return nvmlResult(err)
		}
		for _, ds := range st.Devices {
			if ds.Index == d.ServerIndex() {
				if ds.Utilization >= 0 {
					u.gpu = C.uint(ds.Utilization*100 + 0.5)
				}
				if ds.TotalBytes > 0 {
					u.memory = C.uint(float64(ds.TotalBytes-ds.FreeBytes)/float64(ds.TotalBytes)*100 + 0.5)
				}
			}
		}
	case 4:
		p := (*C.nvmlPciInfo_t)(out)
		*p = C.nvmlPciInfo_t{}
		legacy, full := pciBusID(d), nvmlBusID(d)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.busIdLegacy[0])), len(p.busIdLegacy)-1), legacy)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.busId[0])), len(p.busId)-1), full)
		a := func(k int) C.uint { v, _ := d.Attribute(k); return C.uint(v) }
		p.domain, p.bus, p.device = a(api.AttrPCIDomainID), a(api.AttrPCIBusID), a(api.AttrPCIDeviceID)
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
