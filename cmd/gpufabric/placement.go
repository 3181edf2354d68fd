package main

import (
	"fmt"
	"log/slog"

	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/numa"
)

// shardPlacement returns the engine's Pin hook: each shard's thread is
// pinned to the CPUs of its GPU's NUMA node, so the thread that drives a
// device, and the memory it touches first, sit next to it. Emulated devices
// have no PCI location and stay unpinned.
func shardPlacement(log *slog.Logger) func(backend.Info) error {
	topo, err := numa.Discover("/")
	if err != nil {
		log.Warn("no NUMA topology; shards run unpinned", "err", err)
		return nil
	}
	return func(info backend.Info) error {
		if info.PCIBusID == "" {
			return nil
		}
		node, ok := topo.Node(topo.NodeOfPCI(info.PCIBusID))
		if !ok {
			return fmt.Errorf("device %d (%s): NUMA node unknown", info.Index, info.PCIBusID)
		}
		if err := numa.PinCurrentThread(node.CPUs); err != nil {
			return fmt.Errorf("device %d: pin to node %d: %w", info.Index, node.ID, err)
		}
		log.Info("shard pinned", "device", info.Index, "pci", info.PCIBusID, "node", node.ID, "cpus", numa.FormatCPUList(node.CPUs))
		return nil
	}
}
