package interpose

import "github.com/gpufabric/gpufabric/engine/api"

// NVML returns NVML's view of the device: what the server's NVML (or the
// host backend's labelled emulation) reports, with memory bounded by the
// session's share. One round trip carries every field; callers that read
// fields one by one should keep the answer a while rather than ask again.
func (d *Device) NVML() (api.NVMLDevice, error) {
	var r api.NVMLDevice
	err := d.s.call(&api.NVMLQuery{Ordinal: d.ordinal}, &r, nil, nil)
	return r, err
}
