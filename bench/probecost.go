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

// ProbeCostPairs is how many pairs of servers the probe-cost scenario
// starts, one without probes and one with, in turn off-on, on-off, ...: a
// machine whose load drifts weighs on both sides alike, and a pair's ratio
// compares two servers measured a moment apart.
const ProbeCostPairs = 10

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
	trs := r.probeCostTransports()
	// Per server and transport: half the slot for round trips, half for
	// launches.
	slot := r.cfg.Step / 3
	type arm struct {
		calls      []time.Duration
		launchRate float64
	}
	arms := map[string][][2]arm{} // per transport, per pair: off, on
	for _, tr := range trs {
		arms[tr] = make([][2]arm, ProbeCostPairs)
	}
	for i := range 2 * ProbeCostPairs {
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		pair, side := i/2, i%2
		if pair%2 == 1 { // off-on, on-off, off-on, ...
			side = 1 - side
		}
		on := side == 1
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
				a := &arms[tr][pair][side]
				a.calls, err = pingFor(r.ctx, c.s, slot/2)
				if err == nil {
					_, a.launchRate, err = c.launchRate(r.ctx, slot/2)
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
		pc.Servers++
	}
	for _, tr := range trs {
		var calls [2][]time.Duration
		var rates [2][]float64
		var xCall, xLaunch []float64
		var pairs []ProbeCostPair
		for _, p := range arms[tr] {
			for side, a := range p {
				calls[side] = append(calls[side], a.calls...)
				rates[side] = append(rates[side], a.launchRate)
			}
			pair := ProbeCostPair{CallOff: Summarize(p[0].calls).P50, CallOn: Summarize(p[1].calls).P50,
				LaunchOff: p[0].launchRate, LaunchOn: p[1].launchRate}
			xCall = append(xCall, ratio(pair.CallOn, pair.CallOff))
			xLaunch = append(xLaunch, ratio(pair.LaunchOn, pair.LaunchOff))
			pairs = append(pairs, pair)
		}
		row := ProbeCostRow{Transport: tr, CallOff: Summarize(calls[0]), CallOn: Summarize(calls[1]),
			LaunchOff: median(rates[0]), LaunchOn: median(rates[1]), Pairs: pairs}
		row.CallOff.CDF, row.CallOn.CDF = nil, nil
		row.XCall, row.XCallRange = median(xCall), spread(xCall)
		row.XLaunch, row.XLaunchRange = median(xLaunch), spread(xLaunch)
		pc.Transports = append(pc.Transports, row)
	}
	return nil
}

// median is the middle of xs (the mean of the middle two when even).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// spread is the least and the greatest of xs.
func spread(xs []float64) [2]float64 {
	if len(xs) == 0 {
		return [2]float64{}
	}
	return [2]float64{slices.Min(xs), slices.Max(xs)}
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

// probeCostTransports are the transports the scenario measures: those of
// the run but TLS, which only the in-process server offers.
func (r *runner) probeCostTransports() []string {
	return slices.DeleteFunc(slices.Clone(r.order), func(tr string) bool { return tr == TLS })
}

// probeCostExpected is about how long the scenario takes: every arm's
// slots, and a server start and stop each.
func (r *runner) probeCostExpected() time.Duration {
	n := len(r.probeCostTransports())
	return 2 * ProbeCostPairs * (time.Duration(n)*r.cfg.Step/3 + time.Second/2)
}
