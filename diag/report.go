package diag

import (
	"encoding/json"
	"math"
	"time"
)

// Report is everything `gpufabric diag` shows.
type Report struct {
	Host HostReport `json:"host"`
	// Server is present when diag was pointed at a GPU server.
	Server *ServerReport `json:"server,omitempty"`
	// Breakdown is present when diag was asked (--probe) where a call's
	// latency goes on that server.
	Breakdown *Breakdown `json:"breakdown,omitempty"`
}

// HostReport describes the machine diag runs on. The lists are never nil
// when made by CollectHost, so that JSON shows [] for "none found".
type HostReport struct {
	Hostname string `json:"hostname"`
	// Kernel is the release, as uname -r prints it.
	Kernel string `json:"kernel"`
	Arch   string `json:"arch"`
	// BootID changes at every boot; peers that share one share a kernel.
	BootID      string       `json:"boot_id"`
	NUMANodes   []NUMANode   `json:"numa_nodes"`
	NICs        []NIC        `json:"nics"`
	RDMADevices []RDMADevice `json:"rdma_devices"`
	GPUs        []GPU        `json:"gpus"`
	// Warnings are the parts that could not be collected, and why.
	Warnings []string `json:"warnings"`
}

// NUMANode is one NUMA node of the host.
type NUMANode struct {
	ID int `json:"id"`
	// CPUs are in the kernel's list format ("0-31,64-95"): short, and
	// what cpuset files, taskset and numactl take.
	CPUs string `json:"cpus"`
	// Distances are to each node in NUMANodes order; 10 is local.
	Distances []int `json:"distances"`
}

// NIC is one network interface, virtual ones included.
type NIC struct {
	Name string `json:"name"`
	// Type is the kernel's link kind: "device", "veth", "bridge", ...
	Type      string   `json:"type"`
	OperState string   `json:"oper_state"`
	MAC       string   `json:"mac"`
	MTU       int      `json:"mtu"`
	Addresses []string `json:"addresses"` // CIDR notation
	// SpeedBitsPerSec is the negotiated link speed; 0 when the driver
	// reports none (virtual links, links that are down).
	SpeedBitsPerSec int64 `json:"speed_bits_per_second,omitempty"`
	// NUMANode is -1 for interfaces with no device behind them.
	NUMANode   int    `json:"numa_node"`
	PCIBusID   string `json:"pci_bus_id,omitempty"`
	RDMADevice string `json:"rdma_device,omitempty"`
}

// RDMADevice is one verbs device.
type RDMADevice struct {
	Name     string     `json:"name"`
	NUMANode int        `json:"numa_node"`
	PCIBusID string     `json:"pci_bus_id,omitempty"`
	Ports    []RDMAPort `json:"ports"`
}

// RDMAPort is one port of an RDMA device.
type RDMAPort struct {
	Port int `json:"port"`
	// State is the port state without its number: "ACTIVE", "DOWN", ...
	State string `json:"state"`
	// LinkLayer is "InfiniBand" or "Ethernet" (RoCE).
	LinkLayer string `json:"link_layer"`
	// GIDs are the port's valid GIDs in index order, as IPv6 addresses.
	GIDs []string `json:"gids"`
	// GIDTypes are their types, in the same order: "RoCE v2", "IB/RoCE v1",
	// or "" where the kernel does not say (InfiniBand).
	GIDTypes []string `json:"gid_types"`
	// MTU is the largest RDMA path MTU the port's interface carries, in
	// bytes: 4096 on InfiniBand, on RoCE the largest of 256..4096 that fits
	// the interface's MTU with the RoCE v2 headers; 0 when unknown.
	MTU int `json:"mtu,omitempty"`
	// Netdev is the network interface the port's traffic uses, if any.
	Netdev string `json:"netdev,omitempty"`
}

// GPU is one GPU of the host as PCI sees it, and the NIC nearest to it.
type GPU struct {
	PCIBusID string `json:"pci_bus_id"`
	NUMANode int    `json:"numa_node"`
	// NearestNIC is the interface name, NearestRDMADevice the verbs
	// device; either may be empty (an InfiniBand port without IPoIB has
	// no interface).
	NearestNIC        string `json:"nearest_nic,omitempty"`
	NearestRDMADevice string `json:"nearest_rdma_device,omitempty"`
	// Affinity says how near, in numa.Affinity's words.
	Affinity string `json:"affinity,omitempty"`
}

// ServerReport is what connecting to one GPU server found.
type ServerReport struct {
	Address    string      `json:"address"`
	Candidates []Candidate `json:"candidates"`
	// CallLane carries calls (lowest latency), BulkLane large copies
	// (highest bandwidth): each names a Candidate's Transport.
	CallLane string `json:"call_lane"`
	BulkLane string `json:"bulk_lane"`
	// Reason says why those lanes were chosen, or what overrode them.
	Reason string `json:"reason"`
}

// Candidate is one transport offered for a connection, as measured.
type Candidate struct {
	Transport string // "shm", "rdma", "tcp"
	Endpoint  string
	// LatencyP50 and LatencyP99 are round-trip times of a ping.
	LatencyP50           time.Duration
	LatencyP99           time.Duration
	BandwidthBytesPerSec float64
	// Error is why the candidate failed; empty when it was measured.
	Error string
}

// candidateJSON is Candidate with durations in seconds, so that JSON
// carries base units as the metrics do.
type candidateJSON struct {
	Transport            string  `json:"transport"`
	Endpoint             string  `json:"endpoint"`
	LatencyP50Seconds    float64 `json:"latency_p50_seconds"`
	LatencyP99Seconds    float64 `json:"latency_p99_seconds"`
	BandwidthBytesPerSec float64 `json:"bandwidth_bytes_per_second"`
	Error                string  `json:"error,omitempty"`
}

// MarshalJSON writes latencies in seconds.
func (c Candidate) MarshalJSON() ([]byte, error) {
	return json.Marshal(candidateJSON{
		Transport:            c.Transport,
		Endpoint:             c.Endpoint,
		LatencyP50Seconds:    c.LatencyP50.Seconds(),
		LatencyP99Seconds:    c.LatencyP99.Seconds(),
		BandwidthBytesPerSec: c.BandwidthBytesPerSec,
		Error:                c.Error,
	})
}

// UnmarshalJSON reads what MarshalJSON writes, so a report saved as JSON
// can be rendered again.
func (c *Candidate) UnmarshalJSON(b []byte) error {
	var j candidateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Candidate{
		Transport:            j.Transport,
		Endpoint:             j.Endpoint,
		LatencyP50:           seconds(j.LatencyP50Seconds),
		LatencyP99:           seconds(j.LatencyP99Seconds),
		BandwidthBytesPerSec: j.BandwidthBytesPerSec,
		Error:                j.Error,
	}
	return nil
}

// seconds converts to a Duration, rounding to the nanosecond so that
// values that went through a float come back exact.
func seconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}
