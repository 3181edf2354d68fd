package api

import "time"

// Status is the server's state as ServerStatus returns it (JSON in the
// reply's payload): what `gpufabric smi` shows. Sizes are bytes, ratios 0–1.
type Status struct {
	Server   string          `json:"server"`
	Version  uint16          `json:"version"`
	Started  time.Time       `json:"started"`
	Devices  []DeviceStatus  `json:"devices"`
	Sessions []SessionStatus `json:"sessions"`
	// Stages break every session's synchronous calls down by where in the
	// server their time went (sampled, since the server started).
	Stages []StageHistogram `json:"stages,omitempty"`
	// Probes is what the eBPF probes counted; nil when the server was not
	// asked to load them.
	Probes *ProbeStatus `json:"probes,omitempty"`
	// GoRunQueue is how long the server's goroutines waited, runnable,
	// for a thread to run them, since it started (the Go runtime's own
	// sampled histogram, /sched/latencies; its sum estimated). Readers,
	// writers, stream workers and the host backend's shards are
	// goroutines, which the eBPF probes cannot tell apart.
	GoRunQueue *Histogram `json:"go_runqueue,omitempty"`
}

// DeviceStatus is one device of the server.
type DeviceStatus struct {
	Index         int    `json:"index"`
	Name          string `json:"name"`
	UUID          string `json:"uuid"`
	Backend       string `json:"backend"`
	Emulated      bool   `json:"emulated"`
	PCIBusID      string `json:"pci_bus_id,omitempty"`
	TotalBytes    uint64 `json:"total_bytes"`
	FreeBytes     uint64 `json:"free_bytes"`     // as the device reports it
	ReservedBytes uint64 `json:"reserved_bytes"` // sum of the shares of attached sessions
	SessionBytes  uint64 `json:"session_bytes"`  // allocated by sessions of this server
	OtherBytes    uint64 `json:"other_bytes"`    // in use but not by our sessions (other processes, the driver)
	Sessions      int    `json:"sessions"`
	// Live state where the backend reports it; negative when unknown.
	Utilization  float64 `json:"utilization"`
	TemperatureC float64 `json:"temperature_celsius"`
	PowerWatts   float64 `json:"power_watts"`
	Healthy      bool    `json:"healthy"`
	Health       string  `json:"health,omitempty"`
}

// SessionStatus is one session and what it holds.
type SessionStatus struct {
	ID        uint64                `json:"id"`
	Client    string                `json:"client"`
	Remote    string                `json:"remote"`
	Transport string                `json:"transport"`
	Selection string                `json:"selection,omitempty"`
	Started   time.Time             `json:"started"`
	Devices   []SessionDeviceStatus `json:"devices"`
	Streams   int                   `json:"streams"`
	Events    int                   `json:"events"`
	Modules   int                   `json:"modules"`
	// Inflight is the work the session has queued on the server and not
	// seen finish: tasks waiting for a shard and operations on its streams.
	Inflight int64 `json:"inflight"`
	// Outbox is how long the session's replies have waited for its client
	// to read them; zero when none wait.
	Outbox time.Duration `json:"outbox_wait_ns"`
	// StagingBytes is the session's staging budget in use: payloads being
	// received or waiting to be copied to a device.
	StagingBytes int64 `json:"staging_bytes"`
	// Stages break the session's synchronous calls down by where in the
	// server their time went (sampled; cumulative since the session began).
	Stages []StageHistogram `json:"stages,omitempty"`
	// TCP is the session's connection as the server's probes saw it.
	TCP *ConnProbe `json:"tcp,omitempty"`
}

// SessionDeviceStatus is a session's hold on one device.
type SessionDeviceStatus struct {
	Ordinal     uint32 `json:"ordinal"`
	Device      int    `json:"device"`
	QuotaBytes  uint64 `json:"quota_bytes"`
	UsedBytes   uint64 `json:"used_bytes"`
	Allocations int    `json:"allocations"`
}

// Histogram is a log2 histogram of durations in nanoseconds: Buckets[b]
// counts the values v with 2^b <= v < 2^(b+1) (bucket 0 also holds 0);
// trailing empty buckets are left out. Sum is the values' total, so the
// mean is exact; quantiles are as precise as a bucket, a factor of 2.
type Histogram struct {
	Buckets []uint64 `json:"buckets,omitempty"`
	Count   uint64   `json:"count"`
	Sum     uint64   `json:"sum_ns"`
}

// Stage names the part of a call's time in the server a StageHistogram
// measures, in the order a call passes them.
const (
	// StageDispatch: from the call's frame read off the connection to its
	// work handed to a shard (or answered, for calls the reader answers).
	StageDispatch = "dispatch"
	// StageQueued: handed to the shard to the shard running it: the wait
	// behind other work on the device's shard, other tenants' included.
	StageQueued = "queued"
	// StageDevice: the shard running it to its reply being ready: the
	// device's work, and the wait behind earlier work on the same stream.
	StageDevice = "device"
	// StageReply: the reply ready to the reply written, or queued for the
	// session's writer when the client is not reading.
	StageReply = "reply"
	// StageServer: the frame read to the reply written: the whole of the
	// call's time in the server.
	StageServer = "server"
)

// StageHistogram is one stage's times over a sample of a session's
// synchronous calls (one in 64, by sequence number).
type StageHistogram struct {
	Stage string    `json:"stage"`
	Times Histogram `json:"times"`
}

// ProbeStatus is what the server's eBPF probes have counted since they
// were loaded: scheduling and system calls by thread role, and the TCP
// connections of its listening ports.
type ProbeStatus struct {
	// Error says why the server has no probes; empty when it has them.
	Error string `json:"error,omitempty"`
	// Disabled names the probes that could not load, with why.
	Disabled map[string]string `json:"disabled,omitempty"`
	Roles    []RoleHistogram   `json:"roles,omitempty"`
	Conns    []ConnProbe       `json:"conns,omitempty"`
}

// RoleHistogram is one metric of the server's threads of one role
// ("shard": a device's shard thread; "process": every other thread).
type RoleHistogram struct {
	Role   string    `json:"role"`
	Metric string    `json:"metric"` // runqueue, offcpu, syscall_read, ...
	Times  Histogram `json:"times"`
}

// ConnProbe is one TCP connection as the kernel saw it.
type ConnProbe struct {
	Local       string    `json:"local"`
	Remote      string    `json:"remote"`
	SRTT        Histogram `json:"srtt"` // the smoothed RTT at each segment received
	LastSRTT    int64     `json:"last_srtt_ns"`
	SendQueue   uint32    `json:"send_queue_bytes"`
	RecvQueue   uint32    `json:"recv_queue_bytes"`
	Retransmits uint64    `json:"retransmits"`
}
