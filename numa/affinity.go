package numa

import "strconv"

// Affinity is how near two PCI devices are, by the route a DMA between
// them takes. Larger is nearer, so affinities compare with < and >.
type Affinity int

const (
	// AffinityRemote: different NUMA nodes (or unknown); traffic crosses
	// the socket interconnect.
	AffinityRemote Affinity = iota
	// AffinitySameNode: different root complexes of one NUMA node;
	// traffic crosses the CPU's internal fabric but not the sockets.
	AffinitySameNode
	// AffinitySameRootComplex: one host bridge, different root ports;
	// traffic turns around in the root complex.
	AffinitySameRootComplex
	// AffinitySamePCIeSwitch: at least one bridge below the host bridge in
	// common; peer-to-peer traffic never reaches the CPU.
	AffinitySamePCIeSwitch
)

func (a Affinity) String() string {
	switch a {
	case AffinityRemote:
		return "remote"
	case AffinitySameNode:
		return "same NUMA node"
	case AffinitySameRootComplex:
		return "same root complex"
	case AffinitySamePCIeSwitch:
		return "same PCIe switch"
	}
	return "Affinity(" + strconv.Itoa(int(a)) + ")"
}

// affinity classifies two devices and also returns how many elements of
// their PCI paths they share, which orders devices of equal affinity
// (two GPUs under one leaf switch are nearer than two under a tree of them).
func affinity(a, b PCIDevice) (Affinity, int) {
	common := 0
	for common < len(a.Path) && common < len(b.Path) && a.Path[common] == b.Path[common] {
		common++
	}
	switch {
	case common >= 2:
		return AffinitySamePCIeSwitch, common
	case common == 1:
		return AffinitySameRootComplex, common
	case a.NUMANode >= 0 && a.NUMANode == b.NUMANode:
		return AffinitySameNode, common
	}
	return AffinityRemote, common
}
