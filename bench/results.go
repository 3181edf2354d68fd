package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// SchemaVersion is Results.Schema: it changes when a field is renamed,
// removed or changes meaning, never when one is added.
const SchemaVersion = 1

// Results is everything one run measured. Its JSON form is the
// machine-readable output: field names are stable, units are base units
// (seconds, bytes, bytes per second), and a ratio is either 0–1 or an
// "x_" figure (a multiple of its reference).
type Results struct {
	Schema  int       `json:"schema"`
	Started time.Time `json:"started"`
	// Elapsed is the wall time of the whole run, setup included.
	Elapsed float64   `json:"elapsed_seconds"`
	Config  RunConfig `json:"config"`
	Machine Machine   `json:"machine"`
	Server  Server    `json:"server"`
	// Skipped are the transports that could not be measured, and why.
	Skipped []Skip `json:"skipped,omitempty"`
	// Errors are the steps that failed; the rest of the run went on.
	Errors  []string  `json:"errors,omitempty"`
	Latency []Latency `json:"latency"`
	Launch  []Launch  `json:"launch"`
	// CopyFloors are measured once per size and shared by the copy sweeps.
	CopyFloors []CopyFloor `json:"copy_floors"`
	Copy       []Copy      `json:"copy"`
	Tenants    *Tenants    `json:"tenants,omitempty"`
	// Noisy is the noisy-neighbour scenario, run only when asked for.
	Noisy *Noisy `json:"noisy,omitempty"`
	// ProbeCost is what the server's eBPF probes cost, run only when
	// asked for.
	ProbeCost *ProbeCost `json:"probe_cost,omitempty"`
}

// RunConfig is how the run was asked for.
type RunConfig struct {
	StepSeconds  float64  `json:"step_seconds"`
	Transports   []string `json:"transports"`
	Clients      []int    `json:"clients"`
	MaxCopyBytes int64    `json:"max_copy_bytes"`
	// Scenarios are the scenarios run; empty for DefaultScenarios (runs
	// recorded before scenarios could be chosen).
	Scenarios []string `json:"scenarios,omitempty"`
}

// Machine describes the client host the run measured from (and, for an
// in-process server, the server host too).
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes uint64 `json:"memory_bytes"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
}

// Server describes the server measured.
type Server struct {
	// Address is the TCP address the run connected to.
	Address string `json:"address"`
	// InProcess is true when the run started its own server on the host
	// backend, false for --server.
	InProcess bool   `json:"in_process"`
	Name      string `json:"name"`
	Devices   int    `json:"devices"`
	// Backend, Emulated, Device and DeviceMemoryBytes describe the device
	// the scenarios ran on.
	Backend           string `json:"backend"`
	Emulated          bool   `json:"emulated"`
	Device            string `json:"device"`
	DeviceMemoryBytes uint64 `json:"device_memory_bytes"`
	// Floors says where the floors were measured.
	Floors string `json:"floors"`
}

// Skip is a transport not measured.
type Skip struct {
	Transport string `json:"transport"`
	Reason    string `json:"reason"`
}

// Latency is the call latency over one transport: synchronous null round
// trips (Session.Ping) beside the transport's floor.
type Latency struct {
	Transport string `json:"transport"`
	Call      Dist   `json:"call"`
	// CallsPerSecond is the rate of back-to-back synchronous calls.
	CallsPerSecond float64 `json:"calls_per_second"`
	FloorName      string  `json:"floor_name"`
	Floor          Dist    `json:"floor"`
	// XFloor is the median call over the median floor round trip.
	XFloor float64 `json:"x_floor"`
	// Breakdown is where the calls' time went, when the server tells.
	Breakdown *CallBreakdown `json:"breakdown,omitempty"`
}

// CallBreakdown is where a step's synchronous calls spent their time, from
// the server's stage clocks (one call in 64) and, when the server has
// them, its eBPF probes.
type CallBreakdown struct {
	// ServerMean is the calls' mean time in the server; OutsideMean the
	// mean round trip less it: transport, kernels and client library.
	ServerMean  float64 `json:"server_mean_seconds"`
	OutsideMean float64 `json:"outside_mean_seconds"`
	// RunQueueMean is the server threads' mean wait for a CPU after a
	// wake-up over the step (eBPF); 0 without probes.
	RunQueueMean float64 `json:"runqueue_mean_seconds,omitempty"`
	// GoRunQueueMean is the server's goroutines' mean wait for a thread
	// over the step (the Go runtime's sampled histogram).
	GoRunQueueMean float64 `json:"go_runqueue_mean_seconds,omitempty"`
	// Probes says why the kernel's side is missing, when it is.
	Probes string `json:"probes,omitempty"`
}

// Launch is the rate of asynchronous kernel launches from one client.
type Launch struct {
	Transport string `json:"transport"`
	Launches  int    `json:"launches"`
	// LaunchesPerSecond counts from the first launch to the end of the
	// Synchronize that follows the last.
	LaunchesPerSecond float64 `json:"launches_per_second"`
	// SyncCallsPerSecond is Latency.CallsPerSecond of the same transport,
	// and XSync the launch rate over it.
	SyncCallsPerSecond float64 `json:"sync_calls_per_second"`
	XSync              float64 `json:"x_sync"`
}

// CopyFloor is a floor's bandwidth at each copy size.
type CopyFloor struct {
	Name        string       `json:"name"` // "tcp" or "memcpy"
	Description string       `json:"description"`
	Points      []FloorPoint `json:"points"`
}

// FloorPoint is a floor's bandwidth at one size.
type FloorPoint struct {
	Bytes          int64   `json:"bytes"`
	BytesPerSecond float64 `json:"bytes_per_second"`
}

// Copy is a synchronous copy sweep over sizes, one direction on one
// transport.
type Copy struct {
	Transport string `json:"transport"`
	Direction string `json:"direction"` // "HtoD", "DtoH", "DtoD", "HtoD pinned" or "DtoH pinned"
	// Floor names the CopyFloor its points are set beside.
	Floor  string      `json:"floor"`
	Points []CopyPoint `json:"points"`
}

// CopyPoint is the bandwidth of copies of one size.
type CopyPoint struct {
	Bytes               int64   `json:"bytes"`
	Copies              int     `json:"copies"`
	BytesPerSecond      float64 `json:"bytes_per_second"`
	FloorBytesPerSecond float64 `json:"floor_bytes_per_second"`
	XFloor              float64 `json:"x_floor"`
}

// Tenants is the many-tenant scenario: N clients sharing one device, each
// holding 1/N of it and running the same mixed stream of operations.
type Tenants struct {
	Transport string `json:"transport"`
	Device    int    `json:"device"`
	// Op describes one operation.
	Op    string       `json:"op"`
	Steps []TenantStep `json:"steps"`
}

// TenantStep is one tenant count.
type TenantStep struct {
	Clients int     `json:"clients"`
	Share   float64 `json:"share"`
	// OpsPerSecond is the aggregate rate; PerClient each client's.
	OpsPerSecond float64   `json:"ops_per_second"`
	PerClient    []float64 `json:"per_client_ops_per_second"`
	MeanClient   float64   `json:"mean_client_ops_per_second"`
	MinClient    float64   `json:"min_client_ops_per_second"`
	MaxClient    float64   `json:"max_client_ops_per_second"`
	// FairnessMaxOverMin is the fastest client's rate over the slowest's
	// (1 is fair; 0 when a client made no progress); JainIndex is Jain's
	// fairness index, 1/N to 1 (1 is fair).
	FairnessMaxOverMin float64 `json:"fairness_max_over_min"`
	JainIndex          float64 `json:"jain_index"`
	// OpLatency is every client's operations together, without the CDF.
	OpLatency Dist   `json:"op_latency"`
	Error     string `json:"error,omitempty"`
}

// Noisy is the noisy-neighbour scenario: a bystander tenant makes
// synchronous calls, first alone on the server, then while another tenant
// misbehaves in one way per phase. Every figure is set beside the same
// call's figure in the idle phase.
type Noisy struct {
	// Bystander describes the bystander's calls, made in turns from one
	// goroutine, over each transport measured.
	Bystander string `json:"bystander"`
	// RSSOf says whose memory the RSS figures are: the server process's
	// (found by its listening socket or given), or this process's, which
	// holds the in-process server and the clients too; "not read: why"
	// when it could not be.
	RSSOf string `json:"rss_of"`
	// ServerPID is the process whose memory was read; 0 when none.
	ServerPID int `json:"server_pid"`
	// Targets are the goals the figures are set beside (not asserted).
	Targets string       `json:"targets"`
	Phases  []NoisyPhase `json:"phases"`
}

// NoisyPhase is one phase: what the other tenant did, and the bystander's
// calls meanwhile.
type NoisyPhase struct {
	// Name is short ("idle", "launch flood", ...); Hostile says what the
	// other tenant did, with its figures.
	Name    string  `json:"name"`
	Hostile string  `json:"hostile"`
	Seconds float64 `json:"seconds"`
	// Calls are the bystander's, one entry per transport and call.
	Calls []NoisyCalls `json:"calls"`
	// RSSBytes is the server's resident memory at the end of the phase,
	// before the other tenant let go; PeakRSSBytes the most it held during
	// the phase (VmHWM, reset at the phase's start where the kernel allows,
	// else the highest of samples every 20 ms). 0 when unknown.
	RSSBytes     uint64 `json:"rss_bytes"`
	PeakRSSBytes uint64 `json:"peak_rss_bytes"`
	// PeakFrom says how PeakRSSBytes was found: "hwm" or "sampled".
	PeakFrom string `json:"peak_from,omitempty"`
	// PeakOverIdleBytes is PeakRSSBytes less the RSS at the end of the
	// idle phase: what the other tenant cost the server, at most.
	PeakOverIdleBytes int64 `json:"peak_over_idle_bytes"`
	// Error is what went wrong with the phase's setup or the other tenant
	// (the bystander's failures are counted in Calls).
	Error string `json:"error,omitempty"`
}

// NoisyCalls are the bystander's calls of one kind over one transport in
// one phase.
type NoisyCalls struct {
	Transport string `json:"transport"`
	Call      string `json:"call"` // "ping" or "launch+sync"
	// Latency is that of the calls that succeeded, without the CDF.
	Latency Dist `json:"latency"`
	// XIdleP99 is Latency.P99 over the same call's p99 in the idle phase.
	XIdleP99 float64 `json:"x_idle_p99"`
	// Failed counts calls that returned an error, Slow those that took
	// over SlowCall (succeeded or not).
	Failed int `json:"failed"`
	Slow   int `json:"slow"`
	// FirstError is the first failure's message.
	FirstError string `json:"first_error,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResults reads Results written by WriteJSON, as recorded by an
// earlier run (possibly on another machine): to render or plot them again.
func ReadResults(rd io.Reader) (*Results, error) {
	var r Results
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("bench: reading results: %w", err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("bench: results of schema %d; this build reads %d", r.Schema, SchemaVersion)
	}
	return &r, nil
}

// ProbeCost is what loading the eBPF probes into a server costs its
// calls: one client's round trips and launches against pairs of servers
// started without and with probes (ProbeCostPairs), each a separate
// process.
type ProbeCost struct {
	// Servers counts the servers measured, half of them with probes.
	Servers int `json:"servers"`
	// Loaded says which probe programs the probed servers ran.
	Loaded     string         `json:"loaded"`
	Transports []ProbeCostRow `json:"transports"`
	Targets    string         `json:"targets"`
}

// ProbeCostRow is the probes' cost over one transport.
type ProbeCostRow struct {
	Transport string `json:"transport"`
	// CallOff and CallOn are the synchronous null calls' round trips,
	// every server's samples pooled.
	CallOff Dist `json:"call_off"`
	CallOn  Dist `json:"call_on"`
	// XCall is the median over the pairs of servers of the median round
	// trip with probes over the one without; XCallRange the least and
	// greatest pair's.
	XCall      float64    `json:"x_call"`
	XCallRange [2]float64 `json:"x_call_range"`
	// LaunchOff and LaunchOn are the median asynchronous launch rates.
	LaunchOff float64 `json:"launches_per_second_off"`
	LaunchOn  float64 `json:"launches_per_second_on"`
	// XLaunch is the median over the pairs of the launch rate with probes
	// over the one without; XLaunchRange the least and greatest pair's.
	XLaunch      float64    `json:"x_launch"`
	XLaunchRange [2]float64 `json:"x_launch_range"`
	// Pairs are each pair's figures, in the order measured: on a machine
	// whose loopback round trip has two modes (the development VM's has,
	// 8 and 16 µs), they show which mode each server ran in.
	Pairs []ProbeCostPair `json:"pairs,omitempty"`
}

// ProbeCostPair is one pair of servers' median round trip (seconds) and
// launch rate, without and with probes.
type ProbeCostPair struct {
	CallOff   float64 `json:"call_p50_off"`
	CallOn    float64 `json:"call_p50_on"`
	LaunchOff float64 `json:"launches_per_second_off"`
	LaunchOn  float64 `json:"launches_per_second_on"`
}
