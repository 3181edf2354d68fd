package numa_test

import (
	"fmt"
	"log"
	"os"
	"runtime"

	"github.com/gpufabric/gpufabric/numa"
)

// The dual-socket fixture is a two-socket server with four GPUs and two
// ConnectX NICs per socket, each NIC under a PCIe switch with two GPUs.
func ExampleTopology_NearestNIC() {
	// On a host the root is "/". Here it is a copy of the server's /sys,
	// unpacked from testdata/dual-socket.txtar.
	root, err := os.MkdirTemp("", "sysfs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := numa.UnpackSysfs("testdata/dual-socket.txtar", root); err != nil {
		log.Fatal(err)
	}

	topo, err := numa.Discover(root)
	if err != nil {
		log.Fatal(err)
	}
	for _, gpu := range topo.GPUs {
		nic, aff, _ := topo.NearestNIC(gpu.BusID)
		fmt.Printf("GPU %s node %d: %s (%s), %s\n", gpu.BusID, gpu.NUMANode, nic.Name, nic.RDMADevice, aff)
	}
	// Output:
	// GPU 0000:1a:00.0 node 0: enp28s0np0 (mlx5_0), same PCIe switch
	// GPU 0000:1b:00.0 node 0: enp28s0np0 (mlx5_0), same PCIe switch
	// GPU 0000:3d:00.0 node 0: enp63s0np0 (mlx5_1), same PCIe switch
	// GPU 0000:3e:00.0 node 0: enp63s0np0 (mlx5_1), same PCIe switch
	// GPU 0000:88:00.0 node 1: enp138s0np0 (mlx5_2), same PCIe switch
	// GPU 0000:89:00.0 node 1: enp138s0np0 (mlx5_2), same PCIe switch
	// GPU 0000:b1:00.0 node 1: enp179s0np0 (mlx5_3), same PCIe switch
	// GPU 0000:b2:00.0 node 1: enp179s0np0 (mlx5_3), same PCIe switch
}

// A shard serving one GPU runs on a locked thread pinned to the CPUs of the
// GPU's node, and takes its staging buffers from that node's memory.
func ExamplePinCurrentThread() {
	topo, err := numa.Discover("/")
	if err != nil {
		log.Fatal(err)
	}
	node, ok := topo.Node(topo.NodeOfPCI("00000000:3B:00.0")) // as NVML names it
	if !ok {
		node = topo.Nodes[0]
	}

	// The thread stays locked for the shard's life: unlocked, a pinned
	// thread would go back to the pool for any goroutine to run on.
	runtime.LockOSThread()
	if err := numa.PinCurrentThread(node.CPUs); err != nil {
		log.Printf("running unpinned: %v", err)
	}
	buf, err := numa.AllocOnNode(64<<20, node.ID)
	if err != nil {
		log.Fatal(err)
	}
	defer numa.FreeBuffer(buf)
}

func ExampleParseCPUList() {
	cpus, err := numa.ParseCPUList("0-3,8,10-11")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cpus, numa.FormatCPUList(cpus))
	// Output: [0 1 2 3 8 10 11] 0-3,8,10-11
}
