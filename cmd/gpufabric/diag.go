package main

import (
	"context"
	"math/bits"
	"os"
	"time"

	"github.com/gpufabric/gpufabric/diag"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

func init() {
	register("diag", "the operator's view: this host's fabric, and the paths to a server", runDiag)
}

func runDiag(ctx context.Context, args []string) error {
	fs := newFlags("diag", "[--server ADDR [--probe [--duration D]]] [--json]",
		"Show this host's NUMA nodes, NICs, RDMA devices and GPUs; given a server, measure every transport\n"+
			"that reaches it (latency p50/p99, bandwidth), and say which one each lane chose and why.\n"+
			"--probe: make null calls for --duration and show where their latency, and every session's, went:\n"+
			"the server's stages, and its threads' scheduling, system calls and TCP (eBPF; server --probe).")
	server := fs.String("server", envOr("GPUFABRIC_SERVER", ""), "server to measure the transports to")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token the server requires")
	asJSON := fs.Bool("json", false, "print JSON (stable field names, base units)")
	breakdown := fs.Bool("probe", false, "with --server: show where a call's latency goes on the server")
	duration := fs.Duration("duration", 10*time.Second, "with --probe: how long to watch")
	tlsFiles := tlsFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tlsConfig, err := tlsFiles().Config()
	if err != nil {
		return err
	}
	host, err := diag.CollectHost()
	report := diag.Report{Host: host}
	if err != nil {
		report.Host.Warnings = append(report.Host.Warnings, err.Error())
	}
	if *server != "" {
		probeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sel, err := interpose.Probe(probeCtx, *server, interpose.Options{Token: *token, Client: "gpufabric diag", TLS: tlsConfig})
		cancel()
		if err != nil {
			return err
		}
		report.Server = serverReport(*server, sel)
		if *breakdown {
			b, err := watchLatency(ctx, *server, interpose.Options{Token: *token, Client: "gpufabric diag --probe", TLS: tlsConfig}, *duration)
			if err != nil {
				return err
			}
			report.Breakdown = b
		}
	}
	if *asJSON {
		return diag.WriteJSON(os.Stdout, report)
	}
	return diag.WriteTable(os.Stdout, report)
}

func serverReport(addr string, sel interpose.Selection) *diag.ServerReport {
	r := &diag.ServerReport{Address: addr, CallLane: sel.CallLane, BulkLane: sel.BulkLane, Reason: sel.Reason}
	for _, c := range sel.Candidates {
		dc := diag.Candidate{Transport: c.Transport, Endpoint: c.Endpoint}
		if c.Err != nil {
			dc.Error = c.Err.Error()
		} else {
			dc.LatencyP50, dc.LatencyP99, dc.BandwidthBytesPerSec = c.Latency.P50, c.Latency.P99, c.Bandwidth
		}
		r.Candidates = append(r.Candidates, dc)
	}
	return r
}

// watchLatency makes synchronous null calls to the server for window,
// timing each, and compares the server's status before and after.
func watchLatency(ctx context.Context, addr string, opts interpose.Options, window time.Duration) (*diag.Breakdown, error) {
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s, err := interpose.Connect(dialCtx, addr, opts)
	cancel()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	before, err := s.Status()
	if err != nil {
		return nil, err
	}
	rtt := api.Histogram{Buckets: make([]uint64, 64)}
	for end := time.Now().Add(window); time.Now().Before(end) && ctx.Err() == nil; {
		start := time.Now()
		if err := s.Ping(); err != nil {
			return nil, err
		}
		ns := time.Since(start).Nanoseconds()
		rtt.Buckets[max(bits.Len64(uint64(ns))-1, 0)]++
		rtt.Count++
		rtt.Sum += uint64(ns)
	}
	after, err := s.Status()
	if err != nil {
		return nil, err
	}
	b := diag.BuildBreakdown(*before, *after, window, s.ID(), s.Transport().Transport, rtt)
	return &b, nil
}
