package diag

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
)

// Breakdown is where a call's latency went over a window: the server's
// stage clocks (sampled synchronous calls, every session), its eBPF probes
// (scheduling and system calls by thread role, TCP by connection), and
// the calls diag itself made, whose round trip as the client saw it less
// the server's part is the network's and the client's.
type Breakdown struct {
	Window time.Duration `json:"window_ns"`
	// Own are diag's own synchronous calls in the window.
	Own OwnCalls `json:"own"`
	// Stages are every session's sampled calls in the window, by stage.
	Stages []StageRow `json:"stages"`
	// Goroutines is how long the server's goroutines waited for a thread
	// in the window (the Go runtime's sampled histogram); nil when the
	// server does not say.
	Goroutines *KernelRow `json:"goroutines,omitempty"`
	// Probes says why the kernel's side is missing, when it is.
	ProbesNote string      `json:"probes_note,omitempty"`
	Kernel     []KernelRow `json:"kernel"`
	Conns      []ConnRow   `json:"conns"`
	// Top are the sessions whose sampled calls took the most server time.
	Top []SessionRow `json:"top"`
}

// OwnCalls are diag's own calls: a null call (Ping), timed by the client,
// and the server's stage clock of the same calls.
type OwnCalls struct {
	Transport  string        `json:"transport"`
	Calls      int           `json:"calls"`
	RTTP50     time.Duration `json:"rtt_p50_ns"`
	RTTP99     time.Duration `json:"rtt_p99_ns"`
	ServerMean time.Duration `json:"server_mean_ns"` // of the sampled ones
	// Outside is the mean round trip less the server's part: the network,
	// both kernels' stacks, and the client library.
	Outside time.Duration `json:"outside_mean_ns"`
}

// StageRow is one stage of the sampled calls.
type StageRow struct {
	Stage string        `json:"stage"`
	Calls uint64        `json:"calls"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Mean  time.Duration `json:"mean_ns"`
	// Share is the stage's part of the calls' mean time in the server.
	Share float64 `json:"share"`
}

// KernelRow is one metric of the server's threads of one role.
type KernelRow struct {
	Role   string        `json:"role"`
	Metric string        `json:"metric"`
	Count  uint64        `json:"count"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Mean   time.Duration `json:"mean_ns"`
}

// ConnRow is one session's TCP connection in the window.
type ConnRow struct {
	Session     uint64        `json:"session"`
	Client      string        `json:"client"`
	Remote      string        `json:"remote"`
	SRTTP50     time.Duration `json:"srtt_p50_ns"`
	LastSRTT    time.Duration `json:"last_srtt_ns"`
	SendQueue   uint32        `json:"send_queue_bytes"`
	RecvQueue   uint32        `json:"recv_queue_bytes"`
	Retransmits uint64        `json:"retransmits"`
}

// SessionRow is one session's sampled calls in the window, by stage.
type SessionRow struct {
	Session uint64                   `json:"session"`
	Client  string                   `json:"client"`
	Calls   uint64                   `json:"calls"`
	Total   time.Duration            `json:"server_total_ns"`
	Means   map[string]time.Duration `json:"stage_means_ns"`
}

// BuildBreakdown compares two statuses of one server taken window apart.
// own is diag's session, rtt the round trips it timed over transport.
func BuildBreakdown(before, after api.Status, window time.Duration, own uint64, transport string, rtt api.Histogram) Breakdown {
	b := Breakdown{Window: window, Own: OwnCalls{Transport: transport, Calls: int(rtt.Count), RTTP50: rtt.Quantile(0.5), RTTP99: rtt.Quantile(0.99)}}

	stages := diffStages(before.Stages, after.Stages)
	server := stages[api.StageServer]
	for _, name := range []string{api.StageDispatch, api.StageQueued, api.StageDevice, api.StageReply, api.StageServer} {
		h, ok := stages[name]
		if !ok || h.Count == 0 {
			continue
		}
		row := StageRow{Stage: name, Calls: h.Count, P50: h.Quantile(0.5), P99: h.Quantile(0.99), Mean: h.Mean()}
		if server.Sum > 0 && server.Count > 0 {
			// Stages a call did not pass (a ping reaches no shard) count as
			// zero for it: the share is of the calls' whole server time.
			row.Share = float64(h.Sum) / float64(server.Sum)
		}
		b.Stages = append(b.Stages, row)
	}

	prior := map[uint64]api.SessionStatus{}
	for _, ss := range before.Sessions {
		prior[ss.ID] = ss
	}
	for _, ss := range after.Sessions {
		st := diffStages(prior[ss.ID].Stages, ss.Stages)
		total := st[api.StageServer]
		if ss.ID == own && total.Count > 0 {
			b.Own.ServerMean = total.Mean()
			if rtt.Count > 0 {
				b.Own.Outside = max(rtt.Mean()-total.Mean(), 0)
			}
		}
		if total.Count > 0 {
			row := SessionRow{Session: ss.ID, Client: ss.Client, Calls: total.Count, Total: time.Duration(total.Sum), Means: map[string]time.Duration{}}
			for name, h := range st {
				row.Means[name] = h.Mean()
			}
			b.Top = append(b.Top, row)
		}
		if ss.TCP != nil {
			srtt := ss.TCP.SRTT
			if p := prior[ss.ID].TCP; p != nil {
				srtt = srtt.Sub(p.SRTT)
			}
			b.Conns = append(b.Conns, ConnRow{Session: ss.ID, Client: ss.Client, Remote: ss.TCP.Remote,
				SRTTP50: srtt.Quantile(0.5), LastSRTT: time.Duration(ss.TCP.LastSRTT),
				SendQueue: ss.TCP.SendQueue, RecvQueue: ss.TCP.RecvQueue, Retransmits: ss.TCP.Retransmits})
		}
	}
	slices.SortFunc(b.Top, func(x, y SessionRow) int { return cmp.Compare(y.Total, x.Total) })
	b.Top = b.Top[:min(len(b.Top), 5)]

	if g := after.GoRunQueue; g != nil {
		var was api.Histogram
		if before.GoRunQueue != nil {
			was = *before.GoRunQueue
		}
		h := g.Sub(was)
		b.Goroutines = &KernelRow{Role: "goroutines", Metric: "runqueue", Count: h.Count, P50: h.Quantile(0.5), P99: h.Quantile(0.99), Mean: h.Mean()}
	}

	switch p := after.Probes; {
	case p == nil:
		b.ProbesNote = "the server runs without eBPF probes (start it with --probe auto or --probe on)"
	case p.Error != "":
		b.ProbesNote = "the server has no eBPF probes: " + p.Error
	default:
		for name, why := range p.Disabled {
			b.ProbesNote += fmt.Sprintf("probe %s did not load: %s; ", name, why)
		}
		earlier := map[[2]string]api.Histogram{}
		if before.Probes != nil {
			for _, r := range before.Probes.Roles {
				earlier[[2]string{r.Role, r.Metric}] = r.Times
			}
		}
		for _, r := range p.Roles {
			h := r.Times.Sub(earlier[[2]string{r.Role, r.Metric}])
			if h.Count == 0 {
				continue
			}
			b.Kernel = append(b.Kernel, KernelRow{Role: r.Role, Metric: r.Metric, Count: h.Count, P50: h.Quantile(0.5), P99: h.Quantile(0.99), Mean: h.Mean()})
		}
	}
	return b
}

func diffStages(before, after []api.StageHistogram) map[string]api.Histogram {
	prior := map[string]api.Histogram{}
	for _, s := range before {
		prior[s.Stage] = s.Times
	}
	d := map[string]api.Histogram{}
	for _, s := range after {
		d[s.Stage] = s.Times.Sub(prior[s.Stage])
	}
	return d
}

// writeBreakdown is WriteTable's section for a Breakdown.
func writeBreakdown(p func(string, ...any), b *Breakdown) {
	p("\nLATENCY BREAKDOWN (over %s)", b.Window.Round(time.Millisecond))
	o := b.Own
	if o.Calls > 0 {
		p("  diag's own null calls over %s: %d, round trip p50 %s, p99 %s", o.Transport, o.Calls, latency(o.RTTP50), latency(o.RTTP99))
		if o.ServerMean > 0 {
			p("  of which in the server (mean) %s; outside it (network, kernels, client) %s", latency(o.ServerMean), latency(o.Outside))
		}
	}
	p("\nWHERE THE SERVER'S TIME WENT (sampled synchronous calls, every session)")
	if len(b.Stages) == 0 {
		p("  no synchronous calls sampled in the window (one in 64 is)")
	} else {
		p("  STAGE\tCALLS\tP50\tP99\tMEAN\tSHARE")
	}
	for _, s := range b.Stages {
		p("  %s\t%d\t%s\t%s\t%s\t%.0f%%", s.Stage, s.Calls, latency(s.P50), latency(s.P99), latency(s.Mean), 100*s.Share)
	}
	if g := b.Goroutines; g != nil {
		p("\nGOROUTINES WAITING FOR A THREAD (the Go runtime's sampled run queue: readers, writers, stream workers, host shards)")
		p("  COUNT\tP50\tP99\tMEAN")
		p("  %d\t%s\t%s\t%s", g.Count, latency(g.P50), latency(g.P99), latency(g.Mean))
	}
	p("\nTHE KERNEL'S PART (eBPF, by server thread role)")
	if b.ProbesNote != "" {
		p("  %s", b.ProbesNote)
	}
	if len(b.Kernel) > 0 {
		p("  ROLE\tMETRIC\tCOUNT\tP50\tP99\tMEAN")
	}
	for _, k := range b.Kernel {
		p("  %s\t%s\t%d\t%s\t%s\t%s", k.Role, k.Metric, k.Count, latency(k.P50), latency(k.P99), latency(k.Mean))
	}
	if len(b.Conns) > 0 {
		p("\nTCP CONNECTIONS (eBPF)")
		p("  SESSION\tCLIENT\tREMOTE\tSRTT P50\tLAST SRTT\tSEND-Q\tRECV-Q\tRETRANS")
	}
	for _, c := range b.Conns {
		p("  %d\t%s\t%s\t%s\t%s\t%d\t%d\t%d", c.Session, dash(c.Client), c.Remote, latency(c.SRTTP50), latency(c.LastSRTT), c.SendQueue, c.RecvQueue, c.Retransmits)
	}
	if len(b.Top) > 0 {
		p("\nTOP SESSIONS BY SERVER TIME")
		p("  SESSION\tCLIENT\tCALLS\tSERVER\tDISPATCH\tQUEUED\tDEVICE\tREPLY")
	}
	for _, s := range b.Top {
		m := s.Means
		p("  %d\t%s\t%d\t%s\t%s\t%s\t%s\t%s", s.Session, dash(s.Client), s.Calls, latency(m[api.StageServer]),
			latency(m[api.StageDispatch]), latency(m[api.StageQueued]), latency(m[api.StageDevice]), latency(m[api.StageReply]))
	}
}
