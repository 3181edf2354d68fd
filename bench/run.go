package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// Defaults for Config.
const (
	DefaultStep        = 2 * time.Second
	DefaultMaxCopySize = 256 << 20
	// MinCopySize is the smallest copy measured; sizes go up from it in
	// powers of 4.
	MinCopySize = 4 << 10
)

// MaxClients bounds a tenant count: each client holds a connection, and
// over shared memory each connection maps a region of some tens of MiB.
const MaxClients = 100

// DefaultClients are the tenant counts of the many-tenant scenario; 20 is
// as many as the server's smallest share (1/20 by default) allows.
var DefaultClients = []int{1, 2, 5, 10, 20}

// Transports are the transports a run knows, in the order it measures
// them.
var Transports = []string{tcp.Name, shm.Name, TLS}

// Scenario names, as Config.Scenarios lists them.
const (
	ScenarioLatency = "latency" // call latency, with the round-trip floors
	ScenarioLaunch  = "launch"  // launch throughput (beside the sync call rate, when latency runs)
	ScenarioCopy    = "copy"    // copy bandwidth, with the copy floors
	ScenarioTenants = "tenants" // many tenants sharing a device
	ScenarioNoisy   = "noisy"   // a bystander beside misbehaving tenants; opt-in
	// ScenarioProbeCost measures the eBPF probes' cost on servers it
	// starts from Config.ServerBin; opt-in.
	ScenarioProbeCost = "probe-cost"
)

// Scenarios are every scenario, in the order a run measures them;
// DefaultScenarios those a run measures unless told otherwise.
var (
	Scenarios        = []string{ScenarioLatency, ScenarioLaunch, ScenarioCopy, ScenarioTenants, ScenarioNoisy, ScenarioProbeCost}
	DefaultScenarios = []string{ScenarioLatency, ScenarioLaunch, ScenarioCopy, ScenarioTenants}
)

// Config configures a run. The zero value measures an in-process server
// with the defaults.
type Config struct {
	// Server is the TCP address of a running GPU server; empty starts an
	// in-process server on the host backend on loopback.
	Server string
	// Token is presented to a server that requires one.
	Token string
	// Transports restricts the run to these transports; nil measures every
	// one that reaches the server.
	Transports []string
	// Clients are the tenant counts of the many-tenant scenario;
	// DefaultClients when nil.
	Clients []int
	// Step is how long each step of each scenario measures; DefaultStep
	// when 0. A run has a bounded number of steps (about a dozen), so its
	// length is proportional to Step.
	Step time.Duration
	// MaxCopySize caps the copy sweep; DefaultMaxCopySize when 0.
	MaxCopySize int
	// Scenarios are the scenarios to run (see Scenarios);
	// DefaultScenarios when nil.
	Scenarios []string
	// Noisy tunes the noisy-neighbour scenario.
	Noisy NoisyConfig
	// Probe loads eBPF probes into the in-process server (engine/probe),
	// for the latency breakdown; without the privileges the run goes on
	// and says why.
	Probe bool
	// ServerBin is the gpufabric binary, which the probe-cost scenario
	// starts as servers without and with probes.
	ServerBin string
	// Progress, when set, is called as each step starts.
	Progress func(Progress)
	// Logger receives the in-process server's logs; they are dropped when
	// it is nil.
	Logger *slog.Logger
}

// Progress tells where a run is.
type Progress struct {
	Step, Steps int // Step counts from 1
	Name        string
	// Expected is about how long the step takes.
	Expected time.Duration
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Step <= 0 {
		cfg.Step = DefaultStep
	}
	if cfg.MaxCopySize == 0 {
		cfg.MaxCopySize = DefaultMaxCopySize
	}
	if cfg.MaxCopySize < MinCopySize {
		return cfg, fmt.Errorf("bench: largest copy %d bytes is below the smallest, %d", cfg.MaxCopySize, MinCopySize)
	}
	if cfg.Transports == nil {
		cfg.Transports = Transports
	}
	for _, t := range cfg.Transports {
		if !slices.Contains(Transports, t) {
			return cfg, fmt.Errorf("bench: unknown transport %q: want one of %v", t, Transports)
		}
	}
	if cfg.Clients == nil {
		cfg.Clients = DefaultClients
	}
	for _, n := range cfg.Clients {
		if n < 1 || n > MaxClients {
			return cfg, fmt.Errorf("bench: %d clients: want 1 to %d", n, MaxClients)
		}
	}
	if cfg.Scenarios == nil {
		cfg.Scenarios = DefaultScenarios
	}
	for _, sc := range cfg.Scenarios {
		if !slices.Contains(Scenarios, sc) {
			return cfg, fmt.Errorf("bench: unknown scenario %q: want some of %v", sc, Scenarios)
		}
	}
	var err error
	if cfg.Noisy, err = cfg.Noisy.withDefaults(cfg.Step); err != nil {
		return cfg, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg, nil
}

// CopySizes are the sizes of the copy sweep up to max: MinCopySize and up
// in powers of 4.
func CopySizes(max int) []int {
	var sizes []int
	for n := MinCopySize; n <= max; n *= 4 {
		sizes = append(sizes, n)
	}
	return sizes
}

// Run runs every scenario and returns what it measured. A step that fails
// is recorded in Results.Errors and the run goes on; the error returned
// then joins them. Results are nil only when the run could not start
// (bad Config, no server, no transport reaches it). Cancelling ctx ends
// the current step early and skips the rest.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, ctx: ctx, sizes: CopySizes(cfg.MaxCopySize), clients: map[string]*client{}}
	res := &Results{
		Schema:  SchemaVersion,
		Started: time.Now().UTC().Round(time.Second),
		Config: RunConfig{
			StepSeconds:  cfg.Step.Seconds(),
			Transports:   cfg.Transports,
			Clients:      cfg.Clients,
			MaxCopyBytes: int64(r.sizes[len(r.sizes)-1]),
		},
		Machine: DescribeMachine(),
	}
	if !slices.Equal(cfg.Scenarios, DefaultScenarios) {
		res.Config.Scenarios = cfg.Scenarios
	}
	r.res = res
	start := time.Now()
	defer func() { res.Elapsed = time.Since(start).Seconds() }()

	r.addr = cfg.Server
	if r.addr == "" {
		// A server's smallest share is 1/20 by default; this one grants
		// whatever the tenant counts ask.
		minShare := 1.0 / 20
		for _, n := range cfg.Clients {
			minShare = min(minShare, 1/float64(n))
		}
		ls, err := startLocal(LocalDeviceMemory, minShare, cfg.Probe, cfg.Logger)
		if err != nil {
			return nil, err
		}
		defer ls.close()
		r.addr, r.noShm = ls.addr, ls.noShm
		r.tlsAddr, r.tlsCfg = ls.tlsAddr, ls.tlsClient
		res.Server.InProcess = true
		res.Server.Floors = "measured in this process, beside the in-process server, over the same loopback"
	} else {
		res.Server.Floors = "measured on this client's loopback: the server is elsewhere, so they bound the client host's part only"
	}
	res.Server.Address = r.addr
	defer r.closeClients()
	defer r.closeNoisy()
	if err := r.setup(); err != nil {
		return nil, err
	}

	steps := r.plan()
	var errs []error
	for i, s := range steps {
		if ctx.Err() != nil {
			// The step it cut short keeps what it measured.
			errs = append(errs, ctx.Err())
			break
		}
		if cfg.Progress != nil {
			expected := cfg.Step
			if s.expected > 0 {
				expected = s.expected
			}
			cfg.Progress(Progress{Step: i + 1, Steps: len(steps), Name: s.name, Expected: expected})
		}
		if err := s.run(); err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%s: %w", s.name, err)
			res.Errors = append(res.Errors, err.Error())
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// runner is one run's state.
type runner struct {
	cfg     Config
	ctx     context.Context
	res     *Results
	addr    string
	noShm   string
	tlsAddr string      // the in-process server's TLS listener
	tlsCfg  *tls.Config // and what trusts it
	sizes   []int
	device  int                // the device every scenario uses
	order   []string           // the transports measured, in order
	clients map[string]*client // one single-client session per transport

	pingFloor     map[string]Dist   // the round-trip floor of each transport
	pingFloorName map[string]string // and what it was
	noisy         *noisyState       // the noisy-neighbour scenario's, once it has started
	bufs          [2][]byte         // see buffers
}

// step is one measurement of a scenario, about cfg.Step long unless
// expected says otherwise.
type step struct {
	name     string
	run      func() error
	expected time.Duration
}

func (r *runner) runs(scenario string) bool { return slices.Contains(r.cfg.Scenarios, scenario) }

// setup connects once over each transport to learn which reach the
// server, describes the server and its device, and keeps the sessions for
// the single-client scenarios.
func (r *runner) setup() error {
	for _, tr := range r.cfg.Transports {
		if tr == shm.Name && r.noShm != "" {
			r.res.Skipped = append(r.res.Skipped, Skip{tr, r.noShm})
			continue
		}
		if tr == TLS && r.tlsAddr == "" {
			r.res.Skipped = append(r.res.Skipped, Skip{tr, "measured against the in-process server only, which presents a certificate made for the run"})
			continue
		}
		s, err := r.connect(tr)
		if err != nil {
			r.res.Skipped = append(r.res.Skipped, Skip{tr, err.Error()})
			continue
		}
		r.clients[tr] = &client{tr: tr, s: s}
		r.order = append(r.order, tr)
	}
	if len(r.order) == 0 {
		// Connect says Hello over TCP before it tries shared memory, so
		// one unreachable server fails every transport the same way.
		var why []string
		for _, s := range r.res.Skipped {
			if !slices.Contains(why, s.Reason) {
				why = append(why, s.Reason)
			}
		}
		return fmt.Errorf("bench: no transport reaches %s: %s", r.addr, strings.Join(why, "; "))
	}
	first := r.clients[r.order[0]].s
	st, err := first.Status()
	if err != nil {
		return fmt.Errorf("bench: server status: %w", err)
	}
	if len(st.Devices) == 0 {
		return fmt.Errorf("bench: the server at %s has no devices", r.addr)
	}
	// The device with the most memory not yet shared out: the scenarios all
	// run on it, the many-tenant one sharing it out entirely.
	best := st.Devices[0]
	for _, d := range st.Devices[1:] {
		if d.TotalBytes-d.ReservedBytes > best.TotalBytes-best.ReservedBytes {
			best = d
		}
	}
	r.device = best.Index
	r.res.Server.Name = st.Server
	r.res.Server.Devices = len(st.Devices)
	r.res.Server.Backend = best.Backend
	r.res.Server.Emulated = best.Emulated
	r.res.Server.Device = best.Name
	r.res.Server.DeviceMemoryBytes = best.TotalBytes
	// Each single-client session holds room for the copy sweep: two
	// buffers of the largest size (source and destination of DtoD).
	// A server refuses a share below its smallest (1/20 of the device by
	// default): a small sweep asks for that much.
	need := 2*uint64(r.res.Config.MaxCopyBytes) + 8<<20
	share := interpose.Share{Bytes: max(need, (best.TotalBytes+19)/20)}
	for _, tr := range r.order {
		if err := r.clients[tr].attach(r.ctx, r.device, share); err != nil {
			return fmt.Errorf("bench: %s session: %w", tr, err)
		}
	}
	return nil
}

// plan lists the steps of the scenarios asked for: the floors, then per
// transport the latency, launch and copy scenarios, then the tenant
// counts, then the noisy neighbours.
func (r *runner) plan() []step {
	var steps []step
	if r.runs(ScenarioLatency) {
		steps = append(steps, step{name: "floors: round trips", run: r.pingFloors})
		for _, tr := range r.order {
			steps = append(steps, step{name: "call latency " + tr, run: func() error { return r.latency(tr) }})
		}
	}
	if r.runs(ScenarioLaunch) {
		for _, tr := range r.order {
			steps = append(steps, step{name: "launch throughput " + tr, run: func() error { return r.launch(tr) }})
		}
	}
	if r.runs(ScenarioCopy) {
		steps = append(steps, step{name: "floors: copies", run: r.copyFloors})
		for _, tr := range r.order {
			steps = append(steps, step{name: "copy bandwidth " + tr, run: func() error { return r.copies(tr) }})
		}
	}
	if r.runs(ScenarioTenants) {
		// The tenants share the device out entirely: the single-client
		// sessions go first.
		tr := r.tenantTransport()
		r.res.Tenants = &Tenants{Transport: tr, Device: r.device, Op: TenantOp}
		for i, n := range r.cfg.Clients {
			steps = append(steps, step{name: fmt.Sprintf("tenants %d over %s", n, tr), run: func() error {
				if i == 0 {
					r.closeClients()
				}
				return r.tenants(tr, n)
			}})
		}
	}
	if r.runs(ScenarioNoisy) {
		steps = append(steps, r.noisySteps()...)
	}
	if r.runs(ScenarioProbeCost) {
		steps = append(steps, step{name: "probe cost: servers without and with probes", run: r.probeCost, expected: r.probeCostExpected()})
	}
	return steps
}

// tenantTransport is the transport the many-tenant scenario runs over:
// shared memory where it reaches the server (the transport Connect would
// choose on the server's host), else TCP.
func (r *runner) tenantTransport() string {
	if slices.Contains(r.order, shm.Name) {
		return shm.Name
	}
	return r.order[0]
}

func (r *runner) connect(tr string) (*interpose.Session, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	if tr == TLS {
		return interpose.Connect(ctx, r.tlsAddr, interpose.Options{
			Token:     r.cfg.Token,
			Client:    "gpufabric bench " + tr,
			Transport: tcp.Name,
			TLS:       r.tlsCfg,
		})
	}
	return interpose.Connect(ctx, r.addr, interpose.Options{
		Token:     r.cfg.Token,
		Client:    "gpufabric bench " + tr,
		Transport: tr,
	})
}

func (r *runner) closeClients() {
	for tr, c := range r.clients {
		c.close()
		delete(r.clients, tr)
	}
}

// client is one session with its device and the spin kernel.
type client struct {
	tr   string
	s    *interpose.Session
	dev  *interpose.Device
	spin *interpose.Function
}

// attach attaches the device with share and loads the kernels. A share
// refused for want of memory is asked again for a few seconds: the shares
// of sessions just closed return to the device once the server has freed
// what they held.
func (c *client) attach(ctx context.Context, device int, share interpose.Share) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		dev, err := c.s.Attach(device, share)
		if err == nil {
			c.dev = dev
			break
		}
		if !errors.Is(err, api.ErrOutOfMemory) || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("attach device %d: %w", device, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mod, err := c.dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		return fmt.Errorf("load kernels: %w", err)
	}
	if c.spin, err = mod.Function("spin"); err != nil {
		return fmt.Errorf("kernel spin: %w", err)
	}
	return nil
}

func (c *client) close() {
	if c.s != nil {
		c.s.Close()
	}
}
