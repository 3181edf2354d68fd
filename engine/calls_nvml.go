package engine

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// nvmlQuery answers NVML's view of a session device: what the device
// reports of itself, with the memory figures bounded by the session's share
// (the share is what NVML reports as the device's memory, as cuMemGetInfo
// does). It runs on the reader: NVML readings take the device's own time,
// not the shard's, so a monitoring client never queues behind kernels.
func (s *session) nvmlQuery(h api.Header, m *api.NVMLQuery) {
	d, err := s.device(m.Ordinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	v := api.NVMLDevice{Source: api.NVMLSourceNone}
	if r, ok := d.shard.dev.(backend.NVMLReporter); ok {
		got, err := r.NVML()
		if err != nil {
			s.fail(h, err)
			return
		}
		v = got
	}
	used, _ := d.allocs.usage()
	free, _ := d.shard.memInfo()
	v.Quota, v.SessionUsed, v.DeviceFree = d.quota, used, free
	if v.Supported&api.NVMLHasBAR1 != 0 {
		// BAR1 maps device memory for the host; a share's view of it is
		// bounded by the share like the memory itself.
		v.BAR1Total = min(v.BAR1Total, d.quota)
		v.BAR1Used = min(v.BAR1Used, v.BAR1Total)
	}
	s.replyOnReader(h, nil, &v, nil)
}
