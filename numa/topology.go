package numa

import (
	"cmp"
	"slices"
)

// UnknownNode is the NUMA node of a device that the firmware places on no
// node, on a host with more than one node. (On a single-node host such a
// device is on node 0.)
const UnknownNode = -1

// Topology is a snapshot of a host's NUMA nodes and the PCI locality of its
// GPUs and network interfaces, as [Discover] read it. It does no I/O and
// is safe for concurrent reads. What its methods return shares its slices:
// copy before modifying.
type Topology struct {
	// Nodes are in ascending ID order; there is always at least one.
	Nodes []Node
	// GPUs are the NVIDIA display and 3D controllers, by bus ID.
	GPUs []PCIDevice
	// NICs are the network interfaces backed by a device (virtual ones
	// such as lo, veth and bridges have no locality and are left out),
	// and RDMA devices that have no network interface, by name.
	NICs []NIC
}

// Node is one NUMA node.
type Node struct {
	ID int
	// CPUs are ascending; a memory-only node has none.
	CPUs []int
	// Distances are the firmware's relative distances (10 is local) to
	// each node, in the order of Topology.Nodes.
	Distances []int
}

// PCIDevice is a PCI function and where it sits.
type PCIDevice struct {
	// BusID is the sysfs spelling, "0000:3b:00.0".
	BusID  string
	Vendor uint16
	Device uint16
	Class  uint32
	// NUMANode is the node of the device's root complex, or UnknownNode.
	NUMANode int
	// Path is the chain above the device, from the host bridge
	// ("pci0000:3a") through each bridge ("0000:3a:00.0", "0000:3b:00.0",
	// ...) down to, not including, the device itself.
	Path []string
}

// NIC is a network interface, or an RDMA device with none, and the PCI
// function behind it.
type NIC struct {
	// Name is the network interface ("enp28s0np0"); empty for an RDMA
	// device with no network interface (InfiniBand without IPoIB).
	Name string
	PCIDevice
	// RDMADevice is the verbs device on the same PCI function
	// ("mlx5_0"), or empty.
	RDMADevice string
}

// Node returns the node with the given ID.
func (t *Topology) Node(id int) (Node, bool) {
	i := slices.IndexFunc(t.Nodes, func(n Node) bool { return n.ID == id })
	if i < 0 {
		return Node{}, false
	}
	return t.Nodes[i], true
}

// NodeOfPCI returns the NUMA node of a GPU or NIC, given its bus ID in any
// case and in sysfs ("0000:3b:00.0") or NVML ("00000000:3B:00.0") form. It
// returns UnknownNode for a device the topology does not hold or whose node
// is unknown.
func (t *Topology) NodeOfPCI(busID string) int {
	d, ok := t.device(busID)
	if !ok {
		return UnknownNode
	}
	return d.NUMANode
}

// NearestNIC returns the NIC nearest to a GPU and how near it is. Among
// NICs of equal affinity it prefers the one that shares more of the GPU's
// PCI path, then one with an RDMA device, then the first by name. It
// reports false when the GPU is unknown or the host has no NIC.
func (t *Topology) NearestNIC(gpuBusID string) (NIC, Affinity, bool) {
	id, ok := canonicalBusID(gpuBusID)
	if !ok {
		return NIC{}, 0, false
	}
	g := slices.IndexFunc(t.GPUs, func(d PCIDevice) bool { return d.BusID == id })
	if g < 0 || len(t.NICs) == 0 {
		return NIC{}, 0, false
	}
	gpu := t.GPUs[g]
	// NICs are sorted by name, and MaxFunc keeps the first of equals.
	best := slices.MaxFunc(t.NICs, func(a, b NIC) int {
		aa, ad := affinity(gpu, a.PCIDevice)
		ba, bd := affinity(gpu, b.PCIDevice)
		return cmp.Or(cmp.Compare(aa, ba), cmp.Compare(ad, bd),
			cmp.Compare(rank(a.RDMADevice != ""), rank(b.RDMADevice != "")))
	})
	aff, _ := affinity(gpu, best.PCIDevice)
	return best, aff, true
}

// AffinityBetween returns the affinity of two devices the topology holds
// (GPUs or NICs, bus IDs in either form), such as two GPUs that might copy
// peer to peer.
func (t *Topology) AffinityBetween(busA, busB string) (Affinity, bool) {
	a, okA := t.device(busA)
	b, okB := t.device(busB)
	if !okA || !okB {
		return 0, false
	}
	aff, _ := affinity(a, b)
	return aff, true
}

// device finds a GPU or NIC by bus ID.
func (t *Topology) device(busID string) (PCIDevice, bool) {
	id, ok := canonicalBusID(busID)
	if !ok {
		return PCIDevice{}, false
	}
	if i := slices.IndexFunc(t.GPUs, func(d PCIDevice) bool { return d.BusID == id }); i >= 0 {
		return t.GPUs[i], true
	}
	if i := slices.IndexFunc(t.NICs, func(n NIC) bool { return n.BusID == id }); i >= 0 {
		return t.NICs[i].PCIDevice, true
	}
	return PCIDevice{}, false
}

func rank(b bool) int {
	if b {
		return 1
	}
	return 0
}
