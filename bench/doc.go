// Package bench is the latency and throughput suite behind `gpufabric
// bench`: it measures what the fabric costs an application, and sets every
// figure beside its physical floor measured in the same run, on the same
// machine, with the ratio between them.
//
// # Scenarios
//
// Run measures, over each transport that reaches the server (TCP always;
// shared memory when the server is on this host):
//
//   - call latency: synchronous null calls (Session.Ping), their p50, p90,
//     p99 and p99.9 and CDF, beside a raw TCP ping-pong of 64-byte messages
//     (TCPPingPong) or a raw shared-memory ping-pong of two processes
//     spinning on atomic words in a memfd mapping (ShmPingPongProcesses;
//     ShmPingPong, two goroutines, where no second process can be started:
//     a program that runs the suite calls ServeFloorChild first thing);
//   - launch throughput: asynchronous launches of the spin(0) kernel from
//     one client, ended by a Synchronize, beside the synchronous call rate;
//   - copy bandwidth: synchronous HtoD, DtoH and DtoD copies from 4 KiB to
//     256 MiB in powers of 4, beside a raw TCP transfer of the same size
//     (TCPTransfer: TCP, round trip included) or one copy() of it (Memcpy:
//     shared memory, and DtoD);
//   - many tenants: 1, 2, 5, 10 and 20 clients at once, each holding 1/N of
//     one device and running a mixed stream of small operations (TenantOp),
//     with the aggregate and per-client rates, fairness (max/min and Jain's
//     index, see Fairness) and the operations' latency;
//   - noisy neighbours (opt-in: ScenarioNoisy, `gpufabric bench --noisy`):
//     a bystander's synchronous calls (a Ping, and a spin(0) launch with
//     its stream's Synchronize) over each transport, first alone, then
//     while another tenant floods launches of a long kernel, stops reading
//     its replies, loads huge module images, or holds thousands of idle
//     connections; per phase the bystander's p50, p99 and max beside the
//     idle p99, its failed and over-1-s calls, and the server's resident
//     memory at the phase's end and at its peak (/proc/PID/status of the
//     server process when it runs on this host, of this process for the
//     in-process server). Five phases of NoisyConfig.Phase, 4/5 of a step
//     by default;
//   - probe cost (opt-in: ScenarioProbeCost, `gpufabric bench --probe`):
//     the round trip and launch rate of one client against servers started
//     from Config.ServerBin in turn without and with --probe on
//     (ProbeCostPairs), each a process of its own so that nothing is loaded
//     while the unprobed side runs, as the ratio of the two.
//
// Each step of each scenario measures for Config.Step; a run has a bounded
// number of steps (about a dozen), so its length is proportional to it:
// about 30 seconds at the default 2s. Config.Scenarios chooses the
// scenarios (DefaultScenarios: all but the noisy neighbours).
//
// Without Config.Server, Run starts an in-process server on the host
// backend (a CPU emulation of a GPU) on loopback, with TCP and
// shared-memory listeners, so that the suite runs anywhere. With it, Run
// measures a real deployment; the floors are then the client host's own.
//
// # Results
//
// Results hold everything measured, with a description of the machine and
// the server. WriteJSON gives the machine-readable form (stable field
// names, base units: seconds, bytes, bytes per second; ratios 0–1 or
// "x_" multiples) and ReadResults reads it back, so results recorded on
// one machine can be rendered on another. WriteTable renders for people,
// WriteMarkdown for docs/benchmarks.md (UpdateSection replaces only the
// part of the file between BeginMarker and EndMarker), and Plot draws the
// charts with gonum.org/v1/plot as PNG and SVG.
//
// The floors are exported and return errors rather than failing a test, so
// that the benchmarks of other packages can set their figures beside the
// same floors.
//
// # What it does not do
//
// It asserts nothing about speed: it measures and reports. It does not
// start or stop remote servers (the probe-cost scenario's are local
// processes of its own), and it holds no results between runs.
package bench
