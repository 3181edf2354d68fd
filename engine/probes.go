package engine

import (
	"net/netip"
	"sort"

	"github.com/gpufabric/gpufabric/engine/api"
)

// ShardRole is the probe role of a device's shard thread.
const ShardRole = "shard"

// probeStatus is what the server's probes have counted, for Status.
func (s *Server) probeStatus() *api.ProbeStatus {
	p := s.cfg.Probes
	if p == nil {
		if s.cfg.ProbeError == nil {
			return nil
		}
		return &api.ProbeStatus{Error: s.cfg.ProbeError.Error()}
	}
	ps := &api.ProbeStatus{}
	for name, err := range p.Disabled() {
		if ps.Disabled == nil {
			ps.Disabled = map[string]string{}
		}
		ps.Disabled[name] = err.Error()
	}
	snap, err := p.Snapshot()
	if err != nil {
		ps.Error = err.Error()
		return ps
	}
	for role, metrics := range snap.Roles {
		for m, h := range metrics {
			if h.Count > 0 {
				ps.Roles = append(ps.Roles, api.RoleHistogram{Role: role, Metric: string(m), Times: h.Wire()})
			}
		}
	}
	sort.Slice(ps.Roles, func(i, j int) bool {
		a, b := ps.Roles[i], ps.Roles[j]
		return a.Role < b.Role || a.Role == b.Role && a.Metric < b.Metric
	})
	for _, c := range snap.Conns {
		ps.Conns = append(ps.Conns, api.ConnProbe{
			Local: c.Local.String(), Remote: c.Remote.String(), SRTT: c.SRTT.Wire(),
			LastSRTT: int64(c.LastSRTT), SendQueue: c.SendQueue, RecvQueue: c.RecvQueue, Retransmits: c.Retransmits,
		})
	}
	return ps
}

// connProbe finds, among what the probes saw, the TCP connection of a
// session: its addresses as the transport gave them.
func connProbe(ps *api.ProbeStatus, local, remote string) *api.ConnProbe {
	if ps == nil {
		return nil
	}
	l, err1 := netip.ParseAddrPort(local)
	r, err2 := netip.ParseAddrPort(remote)
	if err1 != nil || err2 != nil {
		return nil
	}
	for i, c := range ps.Conns {
		if c.Local == l.String() && c.Remote == r.String() {
			return &ps.Conns[i]
		}
	}
	return nil
}
