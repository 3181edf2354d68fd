package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gpufabric/gpufabric/internal/serverproc"
	"github.com/gpufabric/gpufabric/interpose"
)

// ProbeCostArms is the order of the probe-cost scenario's servers: false
// without probes, true with. Off, on, on, off, off, on: a machine that
// drifts (a neighbour's load, a frequency step) weighs on both sides alike.
var ProbeCostArms = []bool{false, true, true, false, false, true}

// ProbeCostTargets are the targets for the probes' cost, reported
// beside the figures and not asserted.
const ProbeCostTargets = "launch rate within 5 %, synchronous round trip within 10 %"

// probeCost measures what the server's eBPF probes cost its calls: the
// same calls against `gpufabric server --probe off` and `--probe on`,
// each a separate process started for the purpose so that when a server
// runs without probes none is loaded on the machine at all (the
// system-call tracepoints fire for every process once attached), and so
// that the probes watch the server's process, not this one.
func (r *runner) probeCost() error {
	pc := &ProbeCost{Targets: ProbeCostTargets}
	r.res.ProbeCost = pc
	if r.cfg.ServerBin == "" {
		return errors.New("no gpufabric binary to start servers with (Config.ServerBin)")
	}
	var trs []string
	for _, tr := range r.order {
		if tr != TLS {
			trs = append(trs, tr)
		}
	}
	// Per arm and transport: half the slot for round trips, half for
	// launches.
	slot := r.cfg.Step / 2
	type side struct {
		calls         []time.Duration
		launches      int
		launchSeconds float64
	}
	sides := map[string]*[2]side{}
	for _, tr := range trs {
		sides[tr] = new([2]side)
	}
	for _, on := range ProbeCostArms {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		mode := "off"
		if on {
			mode = "on"
		}
		srv, err := serverproc.Launch(serverproc.Config{Bin: r.cfg.ServerBin, Args: []string{"--probe", mode}})
		if err != nil {
			return fmt.Errorf("server --probe %s: %w", mode, err)
		}
		err = func() error {
			for _, tr := range trs {
				c, err := r.probeCostClient(srv.Addr, tr)
				if err != nil {
					return err
				}
				if on && pc.Loaded == "" {
					pc.Loaded = loadedProbes(c.s)
				}
				s := &sides[tr][b2i(on)]
				calls, err := pingFor(r.ctx, c.s, slot/2)
				if err == nil {
					s.calls = append(s.calls, calls...)
					var n int
					var rate float64
					if n, rate, err = c.launchRate(r.ctx, slot/2); err == nil {
						s.launches += n
						s.launchSeconds += float64(n) / rate
					}
				}
				c.close()
				if err != nil {
					return fmt.Errorf("%s, probes %s: %w", tr, mode, err)
				}
			}
			return nil
		}()
		srv.Stop()
		if err != nil {
			return err
		}
		pc.Arms++
	}
	for _, tr := range trs {
		off, on := sides[tr][0], sides[tr][1]
		row := ProbeCostRow{Transport: tr, CallOff: Summarize(off.calls), CallOn: Summarize(on.calls)}
		row.XCall = ratio(row.CallOn.P50, row.CallOff.P50)
		if off.launchSeconds > 0 && on.launchSeconds > 0 {
			row.LaunchOff = float64(off.launches) / off.launchSeconds
			row.LaunchOn = float64(on.launches) / on.launchSeconds
			row.XLaunch = ratio(row.LaunchOn, row.LaunchOff)
		}
		pc.Transports = append(pc.Transports, row)
	}
	return nil
}

// probeCostClient connects to one of the scenario's servers over tr and
// attaches its device with the smallest share.
func (r *runner) probeCostClient(addr, tr string) (*client, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Client: "gpufabric bench probe-cost " + tr, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tr, err)
	}
	c := &client{tr: tr, s: s}
	if err := c.attach(ctx, interpose.AnyDevice, interpose.Share{Fraction: 1.0 / 20}); err != nil {
		c.close()
		return nil, fmt.Errorf("%s: %w", tr, err)
	}
	return c, nil
}

// pingFor times synchronous null calls for about d, after a warm-up.
func pingFor(ctx context.Context, s *interpose.Session, d time.Duration) ([]time.Duration, error) {
	for range 64 {
		if err := s.Ping(); err != nil {
			return nil, err
		}
	}
	return timeRounds(Budget{Time: d, Done: ctx.Done()}.start(), s.Ping)
}

// loadedProbes names the probe programs a server says it runs and those
// it could not load.
func loadedProbes(s *interpose.Session) string {
	st, err := s.Status()
	if err != nil || st.Probes == nil {
		return "unknown (the server's status has no probes)"
	}
	if st.Probes.Error != "" {
		return "none: " + st.Probes.Error
	}
	if len(st.Probes.Disabled) == 0 {
		return "all"
	}
	var off []string
	for name := range st.Probes.Disabled {
		off = append(off, name)
	}
	sort.Strings(off)
	return "all but " + strings.Join(off, ", ")
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// probeCostExpected is about how long the scenario takes: every arm's
// slots, and a server start and stop each.
func (r *runner) probeCostExpected() time.Duration {
	n := len(slices.DeleteFunc(slices.Clone(r.order), func(tr string) bool { return tr == TLS }))
	return time.Duration(len(ProbeCostArms)) * (time.Duration(n)*r.cfg.Step/2 + time.Second)
}
