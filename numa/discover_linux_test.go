package numa

import (
	"os"
	"testing"
)

// TestDiscoverHost reads this machine's sysfs. Whatever it has (no GPU, no
// NUMA, a VM), Discover must describe it rather than fail.
func TestDiscoverHost(t *testing.T) {
	if _, err := os.Stat("/sys/devices/system/cpu"); err != nil {
		t.Skipf("no sysfs mounted: %v", err)
	}
	topo, err := Discover("/")
	if err != nil {
		t.Fatal(err)
	}
	cpus := 0
	for _, n := range topo.Nodes {
		cpus += len(n.CPUs)
		t.Logf("node %d: CPUs %s, distances %v", n.ID, FormatCPUList(n.CPUs), n.Distances)
	}
	if cpus == 0 {
		t.Errorf("no node holds a CPU: %+v", topo.Nodes)
	}
	for _, g := range topo.GPUs {
		nic, aff, _ := topo.NearestNIC(g.BusID)
		t.Logf("GPU %s node %d, nearest NIC %q (%v)", g.BusID, g.NUMANode, nic.Name, aff)
	}
	for _, n := range topo.NICs {
		t.Logf("NIC %q %s node %d RDMA %q path %v", n.Name, n.BusID, n.NUMANode, n.RDMADevice, n.Path)
	}
}
