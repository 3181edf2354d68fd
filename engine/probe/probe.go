// Package probe is how the engine watches its own latency with eBPF: where
// the time of a remoted call goes between the network, the server's threads
// waiting for a CPU, and its system calls. It loads small BPF programs
// (bpf/*.c, built by bpf2go and committed) on the scheduler, system-call and
// TCP tracepoints, each keeping log2 histograms in bounded BPF maps that
// Snapshot reads; nothing is sent per event and no program waits, so a
// probe never blocks the engine. What it costs (BenchmarkSyscallOverhead,
// BenchmarkWakeupOverhead): on a KVM Xeon with kernel 6.18, about 100 ns
// per system call of a tracked thread (72 ns becomes 172 ns for getppid),
// about 40 ns per system call of any other thread on the machine once the
// syscall probes are attached, and about 1 µs per cross-CPU hand-off
// between two tracked threads (two wake-ups, four system calls: 8.5 µs
// becomes 9.5 µs).
//
// # Using it
//
// Open loads the programs, each on its own: one the verifier rejects on some
// kernel is left out alone, with the verifier's reason in Disabled (the
// caller logs it; formatted with %+v a rejection gives the verifier's whole
// log, with %v its last lines). Open fails only when no BPF can load at all, and says
// what is missing (CAP_BPF and CAP_PERFMON, BTF, a locked-down kernel); a
// server that gets that error runs as before without probes.
//
// Threads are attributed by role: Track(tid, role) registers an OS thread
// (a shard's thread, locked with runtime.LockOSThread, calls unix.Gettid on
// itself and registers as "shard"; a thread a goroutine happens to run on
// is not worth registering, since Go moves goroutines between threads).
// Process(pid) counts every other thread of the server under the role
// "process", which is where readers, writers and stream workers (ordinary
// goroutines) show. Options.Ports (or WatchPort) names the server's
// listening ports: every TCP connection with that local port (the
// server's side of its clients' connections) is watched.
//
// Snapshot returns cumulative counters; subtract an earlier snapshot
// (Snapshot.Sub, Histogram.Sub) to see an interval.
//
// # What each histogram measures
//
// All values are nanoseconds, in log2 buckets: Buckets[b] counts values in
// [2^b, 2^(b+1)) ns, so bucket 10 is 1-2 µs, 20 is 1-2 ms, 30 is 1-2 s.
// Mean is exact (Sum/Count); Quantile interpolates inside a bucket and is
// good to within a factor of 2.
//
//   - RunQueue (per role): from the moment a thread became runnable (a
//     sched_wakeup or sched_wakeup_new, or a sched_switch that preempted it
//     while runnable) to the sched_switch that put it on a CPU. This is the
//     time a thread wanted a CPU and had none: a few µs on an idle machine;
//     tens of µs to ms means CPU contention (a hog on the shard's CPU, too
//     many busy threads for the cores). A shard's run-queue delay adds to
//     every call it runs.
//   - OffCPU (per role): from being switched out to being switched back in:
//     blocked time plus run-queue delay. For a shard it is its idle time
//     between bursts of work; compare with RunQueue to see how much of it
//     was waiting for a CPU rather than for work.
//   - SyscallRead, SyscallWrite, SyscallFutex, SyscallEpoll, SyscallOther
//     (per role): sys_enter to sys_exit, per class of call, blocking
//     included. Go's network I/O is non-blocking, so long reads or writes
//     on sockets are rare and mean copying large payloads; long epoll waits
//     are the netpoller idle; futex time is Go threads parking and waking
//     each other (the scheduler handing work between threads). Count per
//     second here is the system-call rate, each call being a kernel
//     crossing the engine pays.
//   - ConnStats.SRTT (per TCP connection): the kernel's smoothed round-trip
//     time, sampled at each segment the socket receives in ESTABLISHED
//     (tracepoint tcp:tcp_probe). It is the network's share of a
//     synchronous call's latency (plus the peer's delayed ACKs). SendQueue
//     (bytes written but not acknowledged) and RecvQueue (bytes received but
//     not yet read by the engine) are the latest values: a growing
//     RecvQueue means the engine reads slower than the client sends; a
//     growing SendQueue, that the client or the network is slow to take
//     replies. Retransmits counts tcp:tcp_retransmit_skb: loss.
//
// Attribution to a session comes from the connection (its client port)
// for TCP; the scheduler and system-call histograms are per role.
package probe

import (
	"errors"
	"net/netip"
	"time"
)

// ProcessRole is the role every thread of the process given to Process
// counts under, unless it is tracked under another.
const ProcessRole = "process"

// Programs are the BPF programs Open loads, each on its own.
var Programs = []string{
	"sched_wakeup", "sched_wakeup_new", "sched_switch", // bpf/sched.c
	"sys_enter", "sys_exit", // bpf/syscalls.c
	"tcp_probe", "tcp_retransmit_skb", // bpf/tcp.c
}

// ErrSkipped is the reason Disabled gives for a program Options.Skip named.
var ErrSkipped = errors.New("probe: skipped by Options.Skip")

// Options configures Open.
type Options struct {
	// Ports are TCP ports: every connection whose local port is one of
	// them is watched (the server's listening ports: the server's side of
	// its clients' connections).
	Ports []int
	// PID, when not zero, is passed to Process.
	PID int
	// Skip names programs (of Programs) not to load.
	Skip []string

	// breakProgram, in tests, names a program whose code is replaced by
	// code the verifier rejects.
	breakProgram string
}

// Snapshot is what the probes have counted since Open.
type Snapshot struct {
	// Roles maps each role ever tracked to its histograms.
	Roles map[string]map[Metric]Histogram
	// Conns are the watched TCP connections the kernel has seen, at most
	// 4096 (least recently seen evicted first).
	Conns []ConnStats
}

// ConnStats is one TCP connection's state.
type ConnStats struct {
	Local, Remote netip.AddrPort
	// SRTT holds the smoothed RTT at each segment received.
	SRTT Histogram
	// LastSRTT is the latest smoothed RTT.
	LastSRTT time.Duration
	// SendQueue is bytes written and not yet acknowledged, RecvQueue bytes
	// received and not yet read, SendCwnd the congestion window in
	// segments: latest values.
	// They are read as the kernel's tcp_probe sees them, as a segment
	// arrives and before it is processed, so SendQueue still counts what
	// that segment acknowledges.
	SendQueue, RecvQueue, SendCwnd uint32
	// Retransmits counts retransmitted segments.
	Retransmits uint64
	// LastSeen is when the kernel last reported on the connection.
	LastSeen time.Time
}

// Hist returns role's histogram of m, empty when there is none.
func (s Snapshot) Hist(role string, m Metric) Histogram {
	return s.Roles[role][m]
}

// Conn returns the connection with that local and remote address.
func (s Snapshot) Conn(local, remote netip.AddrPort) (ConnStats, bool) {
	for _, c := range s.Conns {
		if c.Local == local && c.Remote == remote {
			return c, true
		}
	}
	return ConnStats{}, false
}

// Sub returns what was counted between earlier and s: histograms and
// retransmits subtracted, latest values kept.
func (s Snapshot) Sub(earlier Snapshot) Snapshot {
	d := Snapshot{Roles: make(map[string]map[Metric]Histogram, len(s.Roles))}
	for role, ms := range s.Roles {
		dm := make(map[Metric]Histogram, len(ms))
		for m, h := range ms {
			dm[m] = h.Sub(earlier.Roles[role][m])
		}
		d.Roles[role] = dm
	}
	for _, c := range s.Conns {
		if e, ok := earlier.Conn(c.Local, c.Remote); ok {
			c.SRTT = c.SRTT.Sub(e.SRTT)
			c.Retransmits = sub(c.Retransmits, e.Retransmits)
		}
		d.Conns = append(d.Conns, c)
	}
	return d
}
