package numa

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The fixtures, testdata/*.txtar, unpack into sysfs trees as the kernel
// lays them out: class and bus entries are relative symlinks into
// /sys/devices (see fixture_test.go).
func TestDiscoverFixtures(t *testing.T) {
	type node struct {
		id        int
		cpus      string
		distances []int
	}
	type gpu struct {
		bus      string
		node     int
		path     []string
		nearest  string // NIC name
		affinity Affinity
	}
	type nic struct {
		name, bus string
		node      int
		rdma      string
	}
	tests := []struct {
		fixture string
		nodes   []node
		gpus    []gpu
		nics    []nic
	}{
		{
			fixture: "dual-socket",
			nodes: []node{
				{0, "0-31", []int{10, 21}},
				{1, "32-63", []int{21, 10}},
			},
			gpus: []gpu{
				{"0000:1a:00.0", 0, []string{"pci0000:17", "0000:17:00.0", "0000:18:00.0", "0000:19:00.0"}, "enp28s0np0", AffinitySamePCIeSwitch},
				{"0000:1b:00.0", 0, []string{"pci0000:17", "0000:17:00.0", "0000:18:00.0", "0000:19:01.0"}, "enp28s0np0", AffinitySamePCIeSwitch},
				{"0000:3d:00.0", 0, []string{"pci0000:3a", "0000:3a:00.0", "0000:3b:00.0", "0000:3c:00.0"}, "enp63s0np0", AffinitySamePCIeSwitch},
				{"0000:3e:00.0", 0, []string{"pci0000:3a", "0000:3a:00.0", "0000:3b:00.0", "0000:3c:01.0"}, "enp63s0np0", AffinitySamePCIeSwitch},
				{"0000:88:00.0", 1, []string{"pci0000:85", "0000:85:00.0", "0000:86:00.0", "0000:87:00.0"}, "enp138s0np0", AffinitySamePCIeSwitch},
				{"0000:89:00.0", 1, []string{"pci0000:85", "0000:85:00.0", "0000:86:00.0", "0000:87:01.0"}, "enp138s0np0", AffinitySamePCIeSwitch},
				{"0000:b1:00.0", 1, []string{"pci0000:ae", "0000:ae:00.0", "0000:af:00.0", "0000:b0:00.0"}, "enp179s0np0", AffinitySamePCIeSwitch},
				{"0000:b2:00.0", 1, []string{"pci0000:ae", "0000:ae:00.0", "0000:af:00.0", "0000:b0:01.0"}, "enp179s0np0", AffinitySamePCIeSwitch},
			},
			nics: []nic{
				{"enp138s0np0", "0000:8a:00.0", 1, "mlx5_2"},
				{"enp179s0np0", "0000:b3:00.0", 1, "mlx5_3"},
				{"enp28s0np0", "0000:1c:00.0", 0, "mlx5_0"},
				{"enp63s0np0", "0000:3f:00.0", 0, "mlx5_1"},
			},
		},
		{
			// numa_node is -1 but there is one node, so everything is on it.
			fixture: "laptop",
			nodes:   []node{{0, "0-7", []int{10}}},
			gpus: []gpu{
				{"0000:01:00.0", 0, []string{"pci0000:00", "0000:00:01.0"}, "wlp2s0", AffinitySameRootComplex},
			},
			nics: []nic{{"wlp2s0", "0000:02:00.0", 0, ""}},
		},
		{
			// No node directory: one node 0 with the online CPUs.
			fixture: "vm",
			nodes:   []node{{0, "0-3", []int{10}}},
			gpus: []gpu{
				{"0000:00:04.0", 0, []string{"pci0000:00"}, "eth0", AffinitySameRootComplex},
			},
			nics: []nic{{"eth0", "0000:00:03.0", 0, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			topo, err := Discover(sysfsFixture(t, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if len(topo.Nodes) != len(tt.nodes) {
				t.Fatalf("got %d nodes, want %d: %+v", len(topo.Nodes), len(tt.nodes), topo.Nodes)
			}
			for i, want := range tt.nodes {
				got := topo.Nodes[i]
				if got.ID != want.id || FormatCPUList(got.CPUs) != want.cpus || !slices.Equal(got.Distances, want.distances) {
					t.Errorf("node %d = {%d %s %v}, want %+v", i, got.ID, FormatCPUList(got.CPUs), got.Distances, want)
				}
			}

			if len(topo.GPUs) != len(tt.gpus) {
				t.Fatalf("got %d GPUs, want %d: %+v", len(topo.GPUs), len(tt.gpus), topo.GPUs)
			}
			for i, want := range tt.gpus {
				got := topo.GPUs[i]
				if got.BusID != want.bus || got.NUMANode != want.node || !slices.Equal(got.Path, want.path) || got.Vendor != 0x10de {
					t.Errorf("GPU %d = %+v, want %+v", i, got, want)
				}
				if n := topo.NodeOfPCI(want.bus); n != want.node {
					t.Errorf("NodeOfPCI(%s) = %d, want %d", want.bus, n, want.node)
				}
				nic, aff, ok := topo.NearestNIC(want.bus)
				if !ok || nic.Name != want.nearest || aff != want.affinity {
					t.Errorf("NearestNIC(%s) = %s, %v, %v; want %s, %v", want.bus, nic.Name, aff, ok, want.nearest, want.affinity)
				}
			}

			if len(topo.NICs) != len(tt.nics) {
				t.Fatalf("got %d NICs, want %d: %+v", len(topo.NICs), len(tt.nics), topo.NICs)
			}
			for i, want := range tt.nics {
				got := topo.NICs[i]
				if got.Name != want.name || got.BusID != want.bus || got.NUMANode != want.node || got.RDMADevice != want.rdma {
					t.Errorf("NIC %d = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func TestAffinityBetween(t *testing.T) {
	topo, err := Discover(sysfsFixture(t, "dual-socket"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		a, b   string
		want   Affinity
		wantOK bool
	}{
		{"0000:1a:00.0", "0000:1b:00.0", AffinitySamePCIeSwitch, true}, // two GPUs under one switch
		{"0000:1a:00.0", "0000:1c:00.0", AffinitySamePCIeSwitch, true},
		{"00000000:1A:00.0", "0000:1C:00.0", AffinitySamePCIeSwitch, true}, // NVML spelling, upper case
		{"0000:1a:00.0", "0000:3d:00.0", AffinitySameNode, true},
		{"0000:1a:00.0", "0000:3f:00.0", AffinitySameNode, true},
		{"0000:1a:00.0", "0000:88:00.0", AffinityRemote, true},
		{"0000:b3:00.0", "0000:1c:00.0", AffinityRemote, true},
		{"0000:1a:00.0", "0000:02:00.0", 0, false}, // the BMC's VGA is not a GPU we hold
		{"0000:1a:00.0", "not-a-bus-id", 0, false},
	}
	for _, tt := range tests {
		got, ok := topo.AffinityBetween(tt.a, tt.b)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("AffinityBetween(%s, %s) = %v, %v; want %v, %v", tt.a, tt.b, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNodeOfPCI(t *testing.T) {
	topo, err := Discover(sysfsFixture(t, "dual-socket"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		bus  string
		want int
	}{
		{"0000:88:00.0", 1},
		{"00000000:88:00.0", 1},
		{"0000:8A:00.0", 1}, // a NIC
		{"88:00.0", 1},
		{"0000:1b:00.0", 0},
		{"0000:99:00.0", UnknownNode},
		{"", UnknownNode},
	}
	for _, tt := range tests {
		if got := topo.NodeOfPCI(tt.bus); got != tt.want {
			t.Errorf("NodeOfPCI(%q) = %d, want %d", tt.bus, got, tt.want)
		}
	}
}

func TestAffinity(t *testing.T) {
	dev := func(node int, path ...string) PCIDevice { return PCIDevice{NUMANode: node, Path: path} }
	tests := []struct {
		name string
		a, b PCIDevice
		want Affinity
	}{
		{"leaf switch", dev(0, "pci0000:17", "0000:17:00.0", "0000:18:00.0", "0000:19:00.0"),
			dev(0, "pci0000:17", "0000:17:00.0", "0000:18:00.0", "0000:19:02.0"), AffinitySamePCIeSwitch},
		{"root port only", dev(0, "pci0000:00", "0000:00:01.0"), dev(0, "pci0000:00", "0000:00:1c.0"), AffinitySameRootComplex},
		{"on the host bridge", dev(0, "pci0000:00"), dev(0, "pci0000:00"), AffinitySameRootComplex},
		{"same node", dev(0, "pci0000:17"), dev(0, "pci0000:3a"), AffinitySameNode},
		{"other node", dev(0, "pci0000:17"), dev(1, "pci0000:85"), AffinityRemote},
		{"unknown nodes are not the same node", dev(UnknownNode, "pci0000:17"), dev(UnknownNode, "pci0000:85"), AffinityRemote},
		{"no PCI path", dev(0), dev(0), AffinitySameNode},
	}
	for _, tt := range tests {
		got, _ := affinity(tt.a, tt.b)
		back, _ := affinity(tt.b, tt.a)
		if got != tt.want || back != tt.want {
			t.Errorf("%s: affinity = %v (reversed %v), want %v", tt.name, got, back, tt.want)
		}
	}
}

func TestAffinityString(t *testing.T) {
	tests := []struct {
		a    Affinity
		want string
	}{
		{AffinitySamePCIeSwitch, "same PCIe switch"},
		{AffinitySameRootComplex, "same root complex"},
		{AffinitySameNode, "same NUMA node"},
		{AffinityRemote, "remote"},
		{Affinity(9), "Affinity(9)"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("Affinity(%d).String() = %q, want %q", int(tt.a), got, tt.want)
		}
	}
}

func TestNearestNICTieBreak(t *testing.T) {
	gpu := PCIDevice{BusID: "0000:01:00.0", NUMANode: 0, Path: []string{"pci0000:00", "0000:00:01.0", "0000:01:00.0"}}
	tests := []struct {
		name     string
		nics     []NIC
		want     string
		wantAff  Affinity
		wantOK   bool
		gpuBusID string
	}{
		{
			name: "affinity first",
			nics: []NIC{
				{Name: "a", PCIDevice: PCIDevice{BusID: "0000:80:00.0", NUMANode: 1, Path: []string{"pci0000:80"}}, RDMADevice: "mlx5_1"},
				{Name: "b", PCIDevice: PCIDevice{BusID: "0000:40:00.0", NUMANode: 0, Path: []string{"pci0000:40"}}},
			},
			want: "b", wantAff: AffinitySameNode, wantOK: true,
		},
		{
			name: "then the longer shared path",
			nics: []NIC{
				{Name: "a", PCIDevice: PCIDevice{BusID: "0000:05:00.0", NUMANode: 0, Path: []string{"pci0000:00", "0000:00:01.0", "0000:02:00.0"}}, RDMADevice: "mlx5_0"},
				{Name: "b", PCIDevice: PCIDevice{BusID: "0000:06:00.0", NUMANode: 0, Path: []string{"pci0000:00", "0000:00:01.0", "0000:01:00.0"}}},
			},
			want: "b", wantAff: AffinitySamePCIeSwitch, wantOK: true,
		},
		{
			name: "then RDMA",
			nics: []NIC{
				{Name: "a", PCIDevice: PCIDevice{BusID: "0000:40:00.0", NUMANode: 0, Path: []string{"pci0000:40"}}},
				{Name: "b", PCIDevice: PCIDevice{BusID: "0000:41:00.0", NUMANode: 0, Path: []string{"pci0000:41"}}, RDMADevice: "mlx5_0"},
			},
			want: "b", wantAff: AffinitySameNode, wantOK: true,
		},
		{
			name: "then the first by name",
			nics: []NIC{
				{Name: "a", PCIDevice: PCIDevice{BusID: "0000:40:00.0", NUMANode: 0, Path: []string{"pci0000:40"}}},
				{Name: "b", PCIDevice: PCIDevice{BusID: "0000:41:00.0", NUMANode: 0, Path: []string{"pci0000:41"}}},
			},
			want: "a", wantAff: AffinitySameNode, wantOK: true,
		},
		{name: "no NICs", wantOK: false},
		{
			name:     "unknown GPU",
			nics:     []NIC{{Name: "a", PCIDevice: PCIDevice{BusID: "0000:40:00.0"}}},
			gpuBusID: "0000:09:00.0",
			wantOK:   false,
		},
	}
	for _, tt := range tests {
		topo := &Topology{Nodes: []Node{{ID: 0}, {ID: 1}}, GPUs: []PCIDevice{gpu}, NICs: tt.nics}
		bus := tt.gpuBusID
		if bus == "" {
			bus = gpu.BusID
		}
		nic, aff, ok := topo.NearestNIC(bus)
		if nic.Name != tt.want || aff != tt.wantAff || ok != tt.wantOK {
			t.Errorf("%s: NearestNIC = %q, %v, %v; want %q, %v, %v", tt.name, nic.Name, aff, ok, tt.want, tt.wantAff, tt.wantOK)
		}
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name string
		root func(t *testing.T) string
		want string // in the error
	}{
		{"missing root", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }, "no such file"},
		{"no CPU information", func(t *testing.T) string { return t.TempDir() }, "no NUMA nodes and no CPU list"},
		{"malformed cpulist", func(t *testing.T) string {
			root := t.TempDir()
			dir := filepath.Join(root, "sys/devices/system/node/node0")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "cpulist"), []byte("0-x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return root
		}, "node 0: invalid CPU list"},
		{"symlink out of the root", func(t *testing.T) string {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "sys/devices/system/cpu"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "sys/devices/system/cpu/online"), []byte("0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, "sys/bus/pci/devices"), 0o755); err != nil {
				t.Fatal(err)
			}
			outside := t.TempDir()
			if err := os.Symlink(outside, filepath.Join(root, "sys/bus/pci/devices/0000:00:00.0")); err != nil {
				t.Fatal(err)
			}
			return root
		}, "outside the sysfs root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := Discover(tt.root(t))
			if err == nil {
				t.Fatalf("Discover succeeded: %+v", topo)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "numa: ") {
				t.Errorf("Discover error %q, want it to say %q", err, tt.want)
			}
		})
	}
}
