package diag

import (
	"errors"
	"fmt"
	"os"

	"github.com/gpufabric/gpufabric/numa"
)

// ErrNotSupported is matched by the error of CollectHost on systems other
// than Linux, where only the hostname is collected.
var ErrNotSupported = errors.New("not supported on this platform")

// CollectHost describes this machine. What cannot be read is recorded in
// the report's Warnings and the rest is still collected, so the error is
// nil on Linux; elsewhere it matches ErrNotSupported and the report holds
// what little is portable.
func CollectHost() (HostReport, error) {
	r := HostReport{
		NUMANodes:   []NUMANode{},
		NICs:        []NIC{},
		RDMADevices: []RDMADevice{},
		GPUs:        []GPU{},
		Warnings:    []string{},
	}
	if h, err := os.Hostname(); err != nil {
		r.warn(fmt.Errorf("hostname: %w", err))
	} else {
		r.Hostname = h
	}
	err := collectPlatform(&r)
	return r, err
}

func (r *HostReport) warn(err error) { r.Warnings = append(r.Warnings, err.Error()) }

// addTopology fills the NUMA nodes and GPUs from a discovered topology.
func (r *HostReport) addTopology(topo *numa.Topology) {
	for _, n := range topo.Nodes {
		r.NUMANodes = append(r.NUMANodes, NUMANode{ID: n.ID, CPUs: numa.FormatCPUList(n.CPUs), Distances: n.Distances})
	}
	for _, g := range topo.GPUs {
		gpu := GPU{PCIBusID: g.BusID, NUMANode: g.NUMANode}
		if nic, aff, ok := topo.NearestNIC(g.BusID); ok {
			gpu.NearestNIC, gpu.NearestRDMADevice, gpu.Affinity = nic.Name, nic.RDMADevice, aff.String()
		}
		r.GPUs = append(r.GPUs, gpu)
	}
}

// nicLocality returns where the topology puts a network interface or RDMA
// device; virtual interfaces are on no node.
func nicLocality(topo *numa.Topology, match func(numa.NIC) bool) (node int, bus, rdma string) {
	if topo != nil {
		for _, n := range topo.NICs {
			if match(n) {
				return n.NUMANode, n.BusID, n.RDMADevice
			}
		}
	}
	return numa.UnknownNode, "", ""
}
