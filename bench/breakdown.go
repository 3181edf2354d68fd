package bench

import (
	"github.com/gpufabric/gpufabric/engine/api"
)

// breakdown compares the server's status before and after a step of
// session id's synchronous calls, whose mean round trip was mean seconds.
// It is nil when the server timed none of them.
func breakdown(before, after api.Status, id uint64, mean float64) *CallBreakdown {
	stage := func(st api.Status) api.Histogram {
		for _, ss := range st.Sessions {
			if ss.ID != id {
				continue
			}
			for _, s := range ss.Stages {
				if s.Stage == api.StageServer {
					return s.Times
				}
			}
		}
		return api.Histogram{}
	}
	server := stage(after).Sub(stage(before))
	if server.Count == 0 {
		return nil
	}
	b := &CallBreakdown{ServerMean: server.Mean().Seconds()}
	b.OutsideMean = max(mean-b.ServerMean, 0)
	if g := after.GoRunQueue; g != nil && before.GoRunQueue != nil {
		b.GoRunQueueMean = g.Sub(*before.GoRunQueue).Mean().Seconds()
	}
	switch p := after.Probes; {
	case p == nil:
		b.Probes = "the server has no eBPF probes (gpufabric bench --probe, or server --probe)"
	case p.Error != "":
		b.Probes = "no eBPF probes: " + p.Error
	default:
		var was api.Histogram
		if before.Probes != nil {
			for _, r := range before.Probes.Roles {
				if r.Role == "process" && r.Metric == "runqueue" {
					was = r.Times
				}
			}
		}
		for _, r := range p.Roles {
			if r.Role == "process" && r.Metric == "runqueue" {
				b.RunQueueMean = r.Times.Sub(was).Mean().Seconds()
			}
		}
	}
	return b
}
