package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/gpufabric/gpufabric/bench"
)

func init() {
	register("bench", "measure latency, launch rate, bandwidth and many-tenant fairness beside their floors", runBench)
}

func runBench(ctx context.Context, args []string) error {
	fs := newFlags("bench", "[--server ADDR] [--transport T] [--clients N] [--duration D] [--noisy | --scenarios LIST] [--json FILE] [--plot DIR] [--markdown FILE]",
		"Measure call latency, launch throughput, copy bandwidth and many tenants sharing a device, each figure\n"+
			"beside its floor (raw TCP, raw shared memory, memcpy) measured in the same run. Without --server it\n"+
			"starts an in-process server on the host backend (CPU emulation) on loopback.\n"+
			"--noisy runs the noisy-neighbour scenario instead: a bystander's synchronous calls, alone and while\n"+
			"another tenant floods launches, stops reading its replies, loads huge modules or opens thousands of\n"+
			"idle connections; five phases of 4/5 of --duration each, with the server's memory.")
	server := fs.String("server", "", "GPU server to measure (TCP address); empty: an in-process server on the host backend")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token the server requires; $GPUFABRIC_TOKEN sets the default")
	transportName := fs.String("transport", "all", "transport to measure: tcp, shm, or all that reach the server; rdma measures the verbs transport alone between two hosts (--listen on one, --server on the other)")
	rdmaListen := fs.String("listen", "", "with --transport rdma: serve the other host's measurements on this TCP address")
	rdmaDevice := fs.String("rdma-device", "", "with --transport rdma: verbs device (default: the first)")
	rdmaGID := fs.Int("gid-index", -1, "with --transport rdma: GID index (default: chosen from the route to the peer)")
	clients := fs.Int("clients", 0, "tenant count of the many-tenant scenario (default: 1, 2, 5, 10 and 20)")
	duration := fs.Duration("duration", bench.DefaultStep, "length of each step of each scenario (a run has about a dozen)")
	maxCopy := fs.String("max-copy", "256MiB", "largest copy of the bandwidth sweep (from 4KiB up in powers of 4)")
	jsonFile := fs.String("json", "", "write the results as JSON to FILE (stable field names, base units)")
	plotDir := fs.String("plot", "", "write the charts to DIR as PNG and SVG")
	mdFile := fs.String("markdown", "", "replace the generated section of the Markdown FILE (between "+bench.BeginMarker+" and "+bench.EndMarker+") with the results, linking the --plot charts")
	noisy := fs.Bool("noisy", false, "run only the noisy-neighbour scenario (same as --scenarios noisy)")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run, of "+strings.Join(bench.Scenarios, ",")+" (default: all but noisy)")
	probes := fs.Bool("probe", false, "load eBPF probes into the in-process server, so that call latency is broken down with the server threads' scheduling too, and measure what the probes cost (the probe-cost scenario: servers started from this binary without and with --probe on); needs root or CAP_BPF and CAP_PERFMON")
	serverPID := fs.Int("server-pid", 0, "process whose memory the noisy scenario reads (default: found by the --server port on this host)")
	from := fs.String("from", "", "render results recorded earlier with --json instead of running (table, --plot, --markdown)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if *transportName == "rdma" {
		rb := rdmaBench{device: *rdmaDevice, gidIndex: *rdmaGID, size: 4 << 20, total: 4 << 30, pings: 10000}
		if *rdmaListen != "" {
			return rb.listen(ctx, *rdmaListen)
		}
		return rb.run(ctx, *server)
	}

	var res *bench.Results
	var runErr error
	if *from != "" {
		f, err := os.Open(*from)
		if err != nil {
			return err
		}
		res, err = bench.ReadResults(f)
		f.Close()
		if err != nil {
			return err
		}
	} else {
		cfg, err := benchConfig(*server, *token, *transportName, *clients, *duration, *maxCopy)
		if err != nil {
			return err
		}
		switch {
		case *noisy && *scenarios != "":
			return fmt.Errorf("--noisy and --scenarios: give one")
		case *noisy:
			cfg.Scenarios = []string{bench.ScenarioNoisy}
		case *scenarios != "":
			cfg.Scenarios = strings.Split(*scenarios, ",")
		}
		cfg.Noisy.ServerPID = *serverPID
		cfg.Probe = *probes
		if cfg.ServerBin, err = os.Executable(); err != nil {
			return fmt.Errorf("the probe-cost scenario starts servers from this binary: %w", err)
		}
		if *probes && !*noisy && *scenarios == "" {
			cfg.Scenarios = append(slices.Clone(bench.DefaultScenarios), bench.ScenarioProbeCost)
		}
		if term.IsTerminal(int(os.Stderr.Fd())) {
			bar := bench.NewProgressBar(os.Stderr)
			cfg.Progress = bar.Update
			res, runErr = bench.Run(ctx, cfg)
			bar.Finish()
		} else {
			res, runErr = bench.Run(ctx, cfg)
		}
		if res == nil {
			return runErr
		}
	}

	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	var errs []error
	if *jsonFile != "" {
		var b bytes.Buffer
		if err := res.WriteJSON(&b); err == nil {
			errs = append(errs, os.WriteFile(*jsonFile, b.Bytes(), 0o644))
		} else {
			errs = append(errs, err)
		}
	}
	if *plotDir != "" {
		_, err := res.Plot(*plotDir)
		errs = append(errs, err)
	}
	if *mdFile != "" {
		charts := ""
		if *plotDir != "" {
			rel, err := filepath.Rel(filepath.Dir(*mdFile), *plotDir)
			if err != nil {
				return fmt.Errorf("--plot %s from --markdown %s: %w", *plotDir, *mdFile, err)
			}
			charts = filepath.ToSlash(rel)
		}
		var b bytes.Buffer
		if err := res.WriteMarkdown(&b, charts); err != nil {
			return err
		}
		errs = append(errs, bench.UpdateSection(*mdFile, b.Bytes()))
	}
	return errors.Join(append(errs, runErr)...)
}

// benchConfig turns the flags into a bench.Config.
func benchConfig(server, token, transportName string, clients int, duration time.Duration, maxCopy string) (bench.Config, error) {
	cfg := bench.Config{Server: server, Token: token, Step: duration}
	switch transportName {
	case "all", "auto", "":
	default:
		cfg.Transports = []string{transportName}
	}
	if clients < 0 {
		return cfg, fmt.Errorf("--clients %d: want a positive count", clients)
	}
	if clients > 0 {
		cfg.Clients = []int{clients}
	}
	if duration <= 0 {
		return cfg, fmt.Errorf("--duration %v: want a positive duration", duration)
	}
	n, err := humanize.ParseBytes(maxCopy)
	if err != nil {
		return cfg, fmt.Errorf("--max-copy %q: %w", maxCopy, err)
	}
	cfg.MaxCopySize = int(n)
	return cfg, nil
}
