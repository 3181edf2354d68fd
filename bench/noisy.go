package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/interpose"
)

// The noisy-neighbour scenario: a bystander tenant makes synchronous calls
// in turns, alone on the server (the idle phase), then while another
// tenant misbehaves, one way per phase:
//
//   - launch flood: asynchronous launches of a long kernel on a large
//     share, never synchronised;
//   - stopped reader: raw connections that make calls with replies (large
//     device-to-host copies, Echoes, Pings) and never read one;
//   - huge modules: module images of ~100 MiB (the real kernels.ptx and a
//     comment), several in a row, kept loaded;
//   - idle connections: thousands of connections that do nothing (TCP
//     before and after Hello, TCP half-way through a frame, shared memory
//     mapped or never picked up), on a server on loopback only.
//
// Each other tenant is bounded (counts, and the phase's end, after which
// its connections are closed), and each phase ends within NoisyGrace of
// its time even when the server stops answering.

// SlowCall is the latency past which a bystander call counts as slow.
const SlowCall = time.Second

// NoisyGrace bounds how long a phase waits, past its time, for a stuck
// bystander call or for the other tenant to let go, before it cuts their
// connections.
const NoisyGrace = 10 * time.Second

// NoisyTargets are the goals the scenario's figures are set beside; they
// are reported, never asserted.
const NoisyTargets = "bystander p99 within 2x of its idle p99; no call past 1 s; server RSS within its configured budgets + 256 MiB"

// NoisyBystander describes the bystander's calls.
const NoisyBystander = "one goroutine making, over each transport in turn, in slices of a twentieth of the phase (10-250 ms), a synchronous null call (ping: Session.Ping) and a spin(0) launch on its own stream followed by that stream's Synchronize (launch+sync), on a 1/20 share"

// NoisyNotStarted is NoisyPhase.Hostile for a phase whose other tenant
// could not start; the bystander measured anyway.
const NoisyNotStarted = "could not start (see the error); the bystander measured anyway"

// Phase names, as NoisyPhase.Name gives them.
const (
	PhaseIdle     = "idle"
	PhaseFlood    = "launch flood"
	PhaseNoRead   = "stopped reader"
	PhaseModules  = "huge modules"
	PhaseIdleConn = "idle connections"
)

// NoisyConfig tunes the noisy-neighbour scenario. The zero value means the
// defaults.
type NoisyConfig struct {
	// Phase is how long the bystander measures in each of the five phases;
	// 4/5 of Config.Step by default, so that the scenario takes about four
	// steps.
	Phase time.Duration
	// Kernel is how long each kernel of the launch flood runs (spin); 1 ms
	// by default. The flood queues at most Phase of kernel time, so that a
	// server that runs all it was given is done a phase later.
	Kernel time.Duration
	// ModuleBytes is the size of each huge module image (100 MiB by
	// default) and Modules how many are loaded in a row (4).
	ModuleBytes, Modules int
	// IdleConns is how many idle connections are opened (2000 by default),
	// ShmConns of them over shared memory (16; each costs the server a
	// region of some tens of MiB), the rest over TCP.
	IdleConns, ShmConns int
	// ServerPID is the server process whose memory is read. 0 finds it:
	// this process for the in-process server, else the process listening
	// on the server's port when it is on this host.
	ServerPID int
}

func (c NoisyConfig) withDefaults(step time.Duration) (NoisyConfig, error) {
	if c.Phase <= 0 {
		c.Phase = step * 4 / 5
	}
	if c.Kernel <= 0 {
		c.Kernel = time.Millisecond
	}
	if c.ModuleBytes <= 0 {
		c.ModuleBytes = 100 << 20
	}
	if c.Modules <= 0 {
		c.Modules = 4
	}
	if c.IdleConns <= 0 {
		c.IdleConns = 2000
	}
	if c.ShmConns <= 0 {
		c.ShmConns = 16
	}
	switch {
	case c.IdleConns > 10000:
		return c, fmt.Errorf("bench: %d idle connections: at most 10000", c.IdleConns)
	case c.ShmConns > c.IdleConns:
		c.ShmConns = c.IdleConns
	case c.ModuleBytes > 1<<30:
		return c, fmt.Errorf("bench: module images of %d bytes: at most 1 GiB", c.ModuleBytes)
	case c.Modules > 64:
		return c, fmt.Errorf("bench: %d module images: at most 64", c.Modules)
	}
	return c, nil
}

// noisyState is the scenario's state between its phases.
type noisyState struct {
	bystanders []*bystander
	pid        int // whose memory is read; 0 for none
	idle       []NoisyCalls
	idleRSS    uint64 // at the end of the idle phase
	image      []byte // the huge module image, made once
	offers     []string
}

// bystander is the bystander's session over one transport.
type bystander struct {
	client
	st *interpose.Stream
}

// noisySteps are the scenario's phases, one step each.
func (r *runner) noisySteps() []step {
	phases := []struct {
		name  string
		start func(ctx context.Context) (*tenant, error)
	}{
		{PhaseIdle, nil},
		{PhaseFlood, r.launchFlood},
		{PhaseNoRead, r.stoppedReader},
		{PhaseModules, r.hugeModules},
		{PhaseIdleConn, r.idleConns},
	}
	var steps []step
	for i, p := range phases {
		steps = append(steps, step{name: "noisy neighbours: " + p.name, expected: r.cfg.Noisy.Phase, run: func() error {
			if i == 0 {
				if err := r.noisySetup(); err != nil {
					return err
				}
			}
			if r.noisy == nil {
				return errors.New("no bystander")
			}
			return r.noisyPhase(p.name, p.start)
		}})
	}
	return steps
}

// noisySetup closes the single-client sessions (the scenario wants the
// device's room for its tenants), finds the server process and connects
// the bystander over each transport.
func (r *runner) noisySetup() error {
	r.closeClients()
	r.res.Noisy = &Noisy{Bystander: NoisyBystander, Targets: NoisyTargets}
	ns := &noisyState{}
	r.noisy = ns
	defer func() { r.res.Noisy.ServerPID = ns.pid }()
	switch pid := r.cfg.Noisy.ServerPID; {
	case pid > 0:
		ns.pid = pid
		r.res.Noisy.RSSOf = fmt.Sprintf("server process %d (given)", pid)
	case r.res.Server.InProcess:
		ns.pid = os.Getpid()
		r.res.Noisy.RSSOf = fmt.Sprintf("this process (%d): the in-process server with the bystander's and the other tenants' clients", ns.pid)
	default:
		found, err := listenerPID(r.addr)
		if err != nil {
			r.res.Noisy.RSSOf = "not read: " + err.Error() + " (--server-pid names it)"
		} else {
			ns.pid = found
			r.res.Noisy.RSSOf = fmt.Sprintf("server process %d (listening on %s)", found, r.addr)
		}
	}
	for _, tr := range r.order {
		b, err := r.newBystander(tr)
		if err != nil {
			r.closeNoisy()
			return fmt.Errorf("bystander over %s: %w", tr, err)
		}
		ns.bystanders = append(ns.bystanders, b)
		if ns.offers == nil {
			ns.offers = b.s.Server().Offers
		}
	}
	return nil
}

func (r *runner) closeNoisy() {
	if r.noisy == nil {
		return
	}
	for _, b := range r.noisy.bystanders {
		b.closeContext(r.ctx)
	}
	r.noisy.bystanders = nil
}

// closeContext closes c, waiting for the server's answer to its Goodbye
// only while ctx is not done: a cancelled run does not wait on a server
// that is slow to let a session go.
func (c *client) closeContext(ctx context.Context) {
	if c.s != nil {
		c.s.CloseContext(ctx)
	}
}

// smallShares are the shares a tenant that needs little asks for, in turn:
// the default smallest share first.
var smallShares = []float64{1.0 / 20, 1.0 / 10, 1.0 / 4}

// attachSmall attaches c to the scenario's device with the smallest share
// the server grants.
func (r *runner) attachSmall(c *client, ctx context.Context) error {
	var err error
	for _, f := range smallShares {
		if err = c.attach(ctx, r.device, interpose.Share{Fraction: f}); err == nil {
			return nil
		}
	}
	return err
}

func (r *runner) newBystander(tr string) (*bystander, error) {
	s, err := r.connect(tr)
	if err != nil {
		return nil, err
	}
	b := &bystander{client: client{tr: tr, s: s}}
	defer guard(s)()
	if err := r.attachSmall(&b.client, r.ctx); err != nil {
		b.close()
		return nil, err
	}
	if b.st, err = b.dev.NewStream(0, 0); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// skipPhase is returned by a tenant's start for a phase that does not
// apply to this server; it says why.
type skipPhase string

func (s skipPhase) Error() string { return string(s) }

// tenant is the other tenant of a phase, running until the context its
// start was given is done.
type tenant struct {
	// stop waits, at most NoisyGrace, for the tenant to have closed
	// everything, and says what it did.
	stop func() (string, error)
}

// noisyPhase runs one phase: the other tenant started (when there is
// one), the bystander's calls for the phase's time, the server's memory
// read, the tenant stopped.
func (r *runner) noisyPhase(name string, start func(ctx context.Context) (*tenant, error)) error {
	ns := r.noisy
	ph := NoisyPhase{Name: name, Hostile: "none: the bystander alone on the server"}
	defer func() { r.res.Noisy.Phases = append(r.res.Noisy.Phases, ph) }()
	// A bystander a phase broke is connected again.
	for i, b := range ns.bystanders {
		if b.s.Err() == nil {
			continue
		}
		b.close()
		nb, err := r.newBystander(b.tr)
		if err != nil {
			ph.Error = fmt.Sprintf("bystander over %s: %v", b.tr, err)
			return errors.New(ph.Error)
		}
		ns.bystanders[i] = nb
	}
	watch := watchRSS(ns.pid)
	hctx, hcancel := context.WithCancel(r.ctx)
	defer hcancel()
	var t *tenant
	var errs []error
	if start != nil {
		var err error
		if t, err = start(hctx); err != nil {
			var skip skipPhase
			if errors.As(err, &skip) {
				ph.Hostile = "skipped: " + string(skip)
				watch.stop()
				return nil
			}
			ph.Hostile = NoisyNotStarted
			errs = append(errs, err)
		}
	}
	if name == PhaseIdle {
		// Warm up: the first calls pay for cold caches and sleeping peers.
		r.bystand(time.Now().Add(min(r.cfg.Noisy.Phase/8, 250*time.Millisecond)))
	}
	began := time.Now()
	calls := r.bystand(began.Add(r.cfg.Noisy.Phase))
	ph.Seconds = time.Since(began).Seconds()
	ph.RSSBytes = watch.now()
	hcancel()
	if t != nil {
		desc, err := t.stop()
		ph.Hostile = desc
		if err != nil {
			errs = append(errs, err)
		}
	}
	ph.PeakRSSBytes, ph.PeakFrom = watch.stop()
	if name == PhaseIdle {
		ns.idle, ns.idleRSS = calls, ph.RSSBytes
	}
	if ph.PeakRSSBytes > 0 && ns.idleRSS > 0 {
		ph.PeakOverIdleBytes = int64(ph.PeakRSSBytes) - int64(ns.idleRSS)
	}
	for i := range calls {
		for _, idle := range ns.idle {
			if idle.Transport == calls[i].Transport && idle.Call == calls[i].Call {
				calls[i].XIdleP99 = ratio(calls[i].Latency.P99, idle.Latency.P99)
			}
		}
	}
	ph.Calls = calls
	if err := errors.Join(errs...); err != nil {
		ph.Error = err.Error()
		return err
	}
	return nil
}

// callTally gathers one kind of bystander call.
type callTally struct {
	samples      []time.Duration
	failed, slow int
	firstErr     string
}

func (t *callTally) add(d time.Duration, err error) {
	if d > SlowCall {
		t.slow++
	}
	if err != nil {
		t.failed++
		if t.firstErr == "" {
			t.firstErr = err.Error()
		}
		return
	}
	if len(t.samples) < MaxSamples {
		t.samples = append(t.samples, d)
	}
}

// bystanderBlock is how long the bystander calls over one transport before
// it moves to the next: a twentieth of the phase, within bounds, so that
// each transport's calls cover the whole phase in slices, and a peer that
// went to sleep while the other transport had its turn is woken rarely.
func (r *runner) bystanderBlock() time.Duration {
	return min(max(r.cfg.Noisy.Phase/20, 10*time.Millisecond), 250*time.Millisecond)
}

// bystand makes the bystander's calls in turns until end (or the run is
// cancelled). A call still stuck NoisyGrace after end has its session cut,
// which fails it; a broken session is not called again this phase, and
// each turn it misses counts as a failure of each of its calls.
func (r *runner) bystand(end time.Time) []NoisyCalls {
	bs := r.noisy.bystanders
	tallies := make([]callTally, 2*len(bs))
	finished := make(chan struct{})
	var watchdog sync.WaitGroup
	watchdog.Go(func() {
		t := time.NewTimer(time.Until(end) + NoisyGrace)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			var wg sync.WaitGroup
			for _, b := range bs {
				wg.Go(func() { b.s.Close() })
			}
			wg.Wait()
		}
	})
	one := interpose.D1(1)
	calls := []func(b *bystander) error{
		func(b *bystander) error { return b.s.Ping() },
		func(b *bystander) error {
			if err := b.spin.Launch(b.st, one, one, 0, uint64(0)); err != nil {
				return err
			}
			return b.st.Synchronize()
		},
	}
	// Each bystander makes its calls in blocks (bystanderBlock).
	block := r.bystanderBlock()
	for time.Now().Before(end) && r.ctx.Err() == nil {
		for i, b := range bs {
			blockEnd := time.Now().Add(block)
			for {
				for j, call := range calls {
					t := &tallies[2*i+j]
					if b.s.Err() != nil {
						t.add(0, fmt.Errorf("session gone: %w", b.s.Err()))
						continue
					}
					t0 := time.Now()
					err := call(b)
					t.add(time.Since(t0), err)
				}
				if b.s.Err() != nil {
					time.Sleep(10 * time.Millisecond) // not a busy loop of failures
				}
				if now := time.Now(); !now.Before(end) || !now.Before(blockEnd) {
					break
				}
			}
		}
	}
	close(finished)
	watchdog.Wait()
	var out []NoisyCalls
	for i, b := range bs {
		for j, name := range []string{"ping", "launch+sync"} {
			t := tallies[2*i+j]
			d := Summarize(t.samples)
			d.CDF = nil
			out = append(out, NoisyCalls{Transport: b.tr, Call: name, Latency: d, Failed: t.failed, Slow: t.slow, FirstError: t.firstErr})
		}
	}
	return out
}

// goroutines runs a tenant's goroutines and waits for them, at most
// NoisyGrace once its context is done.
type goroutines struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func (g *goroutines) Go(f func() error) {
	g.wg.Go(func() {
		if err := f(); err != nil {
			g.mu.Lock()
			g.errs = append(g.errs, err)
			g.mu.Unlock()
		}
	})
}

// wait waits for the goroutines, giving up after NoisyGrace.
func (g *goroutines) wait() error {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(NoisyGrace):
		return fmt.Errorf("the other tenant did not stop within %v of the phase's end", NoisyGrace)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}

// onLoopback reports whether addr's host is a loopback address.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// shmOffer is the server's shared-memory endpoint, when the bystander
// reached it over shared memory; empty when not.
func (r *runner) shmOffer() string {
	reached := false
	for _, b := range r.noisy.bystanders {
		if b.tr == "shm" {
			reached = true
		}
	}
	if !reached {
		return ""
	}
	for _, o := range r.noisy.offers {
		if name, ep, ok := strings.Cut(o, ":"); ok && name == "shm" {
			return ep
		}
	}
	return ""
}
