package main

import (
	"context"
	"os"
	"time"

	"github.com/gpufabric/gpufabric/diag"
	"github.com/gpufabric/gpufabric/interpose"
)

func init() {
	register("diag", "the operator's view: this host's fabric, and the paths to a server", runDiag)
}

func runDiag(ctx context.Context, args []string) error {
	fs := newFlags("diag", "[--server ADDR] [--json]",
		"Show this host's NUMA nodes, NICs, RDMA devices and GPUs; given a server, measure every transport\n"+
			"that reaches it (latency p50/p99, bandwidth), and say which one each lane chose and why.")
	server := fs.String("server", envOr("GPUFABRIC_SERVER", ""), "server to measure the transports to")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token the server requires")
	asJSON := fs.Bool("json", false, "print JSON (stable field names, base units)")
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
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sel, err := interpose.Probe(ctx, *server, interpose.Options{Token: *token, Client: "gpufabric diag", TLS: tlsConfig})
		if err != nil {
			return err
		}
		report.Server = serverReport(*server, sel)
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
