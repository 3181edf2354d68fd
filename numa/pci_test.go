package numa

import (
	"slices"
	"testing"
)

func TestCanonicalBusID(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for invalid
	}{
		{"0000:3b:00.0", "0000:3b:00.0"},
		{"0000:3B:00.0", "0000:3b:00.0"},
		{"00000000:3B:00.0", "0000:3b:00.0"}, // NVML
		{"3b:00.0", "0000:3b:00.0"},
		{"10000:e1:00.0", "10000:e1:00.0"}, // Intel VMD domain
		{"0000:3b:1f.7", "0000:3b:1f.7"},
		{"0000:3b:20.0", ""}, // device is 5 bits
		{"0000:3b:00.8", ""}, // function is 3 bits
		{"0000:3b:00", ""},
		{"pci0000:3b", ""},
		{"", ""},
		{"0:0:0:0.0", ""},
	}
	for _, tt := range tests {
		got, ok := canonicalBusID(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("canonicalBusID(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestPCILocation(t *testing.T) {
	tests := []struct {
		path      string
		wantBus   string
		wantChain []string
	}{
		{
			path:      "/sys/devices/pci0000:17/0000:17:00.0/0000:18:00.0/0000:19:02.0/0000:1c:00.0",
			wantBus:   "0000:1c:00.0",
			wantChain: []string{"pci0000:17", "0000:17:00.0", "0000:18:00.0", "0000:19:02.0"},
		},
		{
			// A virtio NIC hangs off its PCI function.
			path:      "/sys/devices/pci0000:00/0000:00:03.0/virtio0",
			wantBus:   "0000:00:03.0",
			wantChain: []string{"pci0000:00"},
		},
		{
			// Behind Intel VMD, a second host bridge inside the first.
			path:      "/sys/devices/pci0000:00/0000:00:0e.0/pci10000:e0/10000:e0:06.0/10000:e1:00.0",
			wantBus:   "10000:e1:00.0",
			wantChain: []string{"pci0000:00", "0000:00:0e.0", "pci10000:e0", "10000:e0:06.0"},
		},
		{path: "/sys/devices/platform/fe300000.ethernet", wantBus: ""},
	}
	for _, tt := range tests {
		bus, chain := pciLocation(tt.path)
		if bus != tt.wantBus || !slices.Equal(chain, tt.wantChain) {
			t.Errorf("pciLocation(%q) = %q, %q; want %q, %q", tt.path, bus, chain, tt.wantBus, tt.wantChain)
		}
	}
}

func TestIsGPU(t *testing.T) {
	tests := []struct {
		name   string
		class  uint32
		vendor uint16
		want   bool
	}{
		{"H100 (3D controller)", 0x030200, 0x10de, true},
		{"GeForce (VGA)", 0x030000, 0x10de, true},
		{"NVIDIA HD audio", 0x040300, 0x10de, false},
		{"NVSwitch", 0x068000, 0x10de, false},
		{"ASPEED BMC VGA", 0x030000, 0x1a03, false},
		{"Intel iGPU", 0x030000, 0x8086, false},
	}
	for _, tt := range tests {
		if got := isGPU(tt.class, tt.vendor); got != tt.want {
			t.Errorf("%s: isGPU(%#06x, %#04x) = %v, want %v", tt.name, tt.class, tt.vendor, got, tt.want)
		}
	}
}
