package engine

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Copies between two devices of this server that the session holds
// (cuMemcpyPeer). The session names both by its own ordinals, so a device
// outside its reservation cannot be named at all; each range is checked
// against the session's allocations on its own device.
//
// A peer copy queued on one device's stream may touch the other device's
// memory after that device's streams have gone quiet, so once a session
// has made one, what it frees, unmaps or unloads waits for its streams on
// every device (afterWork), not only on the device it belonged to.

func (s *session) memcpyPeer(h api.Header, m *api.MemcpyPeer) {
	dd, err := s.device(m.DstOrdinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	sd, err := s.device(m.SrcOrdinal)
	if err != nil {
		s.fail(h, err)
		return
	}
	if m.Size == 0 {
		s.reply0(h)
		return
	}
	s.peered.Store(true)
	s.onStreamCost(h, m.Stream, costOf(int(min(m.Size, 1<<40))), func(st *streamObj) error {
		if st.dev != dd && st.dev != sd {
			return api.Errorf(api.ErrInvalidValue, "the stream is on session device %d, the copy between %d and %d", st.dev.ordinal, sd.ordinal, dd.ordinal)
		}
		if err := inRange(dd, "destination", m.Dst, m.Size); err != nil {
			return err
		}
		if err := inRange(sd, "source", m.Src, m.Size); err != nil {
			return err
		}
		if dd == sd {
			return st.bs.CopyDtoD(m.Dst, m.Src, m.Size)
		}
		pc, ok := st.bs.(backend.PeerCopier)
		if !ok {
			return api.Errorf(api.ErrNotSupported, "copies between devices on the %s backend", st.dev.shard.info.Backend)
		}
		return pc.CopyPeer(m.Dst, dd.shard.dev, m.Src, sd.shard.dev, m.Size)
	})
}

// afterWork calls fn once the work the session queued on d's streams has
// run, and, if the session has made peer copies, on every device's.
func (s *session) afterWork(d *sessionDevice, fn func()) {
	if !s.peered.Load() {
		s.afterStreams(d, fn)
		return
	}
	s.mu.Lock()
	devices := append([]*sessionDevice(nil), s.devices...)
	s.mu.Unlock()
	var chain func(i int)
	chain = func(i int) {
		if i == len(devices) {
			fn()
			return
		}
		s.afterStreams(devices[i], func() { chain(i + 1) })
	}
	chain(0)
}
