// Package numa describes where things are on a host: its NUMA nodes with
// their CPUs and distances, the NUMA node and PCI path of each GPU and
// network interface, and which NIC is nearest to each GPU. It also pins
// threads to CPUs and allocates buffers placed on a node.
//
// # Discovery
//
// [Discover] reads a sysfs tree and returns a [Topology], a snapshot that
// does no further I/O. The root is "/" in production; tests point it at
// fixtures unpacked from testdata/*.txtar into real sysfs-shaped trees of
// files and relative symlinks.
//
//	topo, err := numa.Discover("/")
//	nic, aff, ok := topo.NearestNIC("00000000:3B:00.0") // NVML's form is fine
//
// A host that reports no NUMA information (a VM, a laptop, a kernel without
// CONFIG_NUMA) is described as a single node 0 that holds every online CPU;
// that is what the kernel itself does, and it keeps callers free of a
// "no NUMA" special case. Devices whose node is unknown on a single-node
// host are on node 0; on a multi-node host they are [UnknownNode].
//
// # Affinity
//
// A NIC's [Affinity] to a GPU is read from their PCI paths, in the order
// that decides how a DMA between them travels: below the same PCIe switch
// (peer to peer, never touching the CPU), below the same root complex, on
// the same NUMA node, or across the socket interconnect.
//
// # Placement
//
// [PinCurrentThread] pins a thread to a node's CPUs; [AllocOnNode] allocates
// a buffer there; [MoveToNode] moves memory allocated before its user was
// known (a shared-memory connection's region, once its session names a
// device), and [PolicyOf] reads back what the kernel set. They are Linux
// only; elsewhere they return an error that matches [ErrNotSupported].
// Placement is a hint: a buffer whose memory policy the kernel refuses is
// still a working buffer.
//
// The package does not discover GPUs through NVML or open any device; it
// only reads sysfs. Which GPU a CUDA ordinal names is the backend's concern.
package numa
