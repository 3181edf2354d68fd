package backend

import "github.com/gpufabric/gpufabric/engine/api"

// NVMLReporter is implemented by devices that can answer NVML's questions
// about themselves: the cuda backend from the server's NVML, the host
// backend with emulated values labelled as such (Source says which). NVML
// is called from any goroutine, not only the shard's: the engine answers
// NVML on the session's reader so that a monitoring client never waits
// behind kernels.
//
// The device fills what it knows of itself; the engine fills the session's
// share (Quota, SessionUsed, DeviceFree), which a device cannot know.
type NVMLReporter interface {
	NVML() (api.NVMLDevice, error)
}
