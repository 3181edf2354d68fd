package main

import (
	"fmt"
	"log/slog"

	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/numa"
)

// placement returns the engine's Pin and Node hooks: each shard's thread
// is pinned to the CPUs of its GPU's NUMA node, so the thread that drives a
// device, and the memory it touches first, sit next to it; and a session's
// shared-memory buffers follow its first device there. Emulated devices
// have no PCI location: they stay unpinned, on no particular node.
func placement(log *slog.Logger) (pin func(backend.Info) error, node func(backend.Info) int) {
	topo, err := numa.Discover("/")
	if err != nil {
		log.Warn("no NUMA topology; shards run unpinned", "err", err)
		return nil, nil
	}
	node = func(info backend.Info) int {
		if info.PCIBusID == "" {
			return numa.UnknownNode
		}
		return topo.NodeOfPCI(info.PCIBusID)
	}
	pin = func(info backend.Info) error {
		if info.PCIBusID == "" {
			return nil
		}
		n, ok := topo.Node(node(info))
		if !ok {
			return fmt.Errorf("device %d (%s): NUMA node unknown", info.Index, info.PCIBusID)
		}
		if err := numa.PinCurrentThread(n.CPUs); err != nil {
			return fmt.Errorf("device %d: pin to node %d: %w", info.Index, n.ID, err)
		}
		log.Info("shard pinned", "device", info.Index, "pci", info.PCIBusID, "node", n.ID, "cpus", numa.FormatCPUList(n.CPUs))
		return nil
	}
	return pin, node
}
