package rdma

import (
	"errors"
	"net/netip"
	"testing"
)

// testdata/infiniband is shaped like /sys/class/infiniband: mlx5_0 a RoCE
// port with v1 and v2 GIDs for a link-local, an IPv4 and a global IPv6
// address on enp28s0np0 and one on a VLAN, and an unused entry; pvrdma0 a
// VMware adapter that offers RoCE v1 only.
func TestChooseGID(t *testing.T) {
	tests := []struct {
		device, netdev, peer string
		want                 int // GID index; -1: none
	}{
		{"mlx5_0", "enp28s0np0", "10.1.0.9", 3},        // v2, IPv4-mapped
		{"mlx5_0", "enp28s0np0", "2001:db8::9", 4},     // v2, global IPv6
		{"mlx5_0", "vlan100", "192.168.0.9", 5},        // the VLAN's own GID
		{"mlx5_0", "eth9", "10.9.9.9", -1},             // not this port's interface
		{"pvrdma0", "ens192", "10.0.0.9", 1},           // v1 only: the IPv4 one comes after the link-local
		{"mlx5_0", "", "10.1.0.9", 3},                  // no interface known: any of the port's
		{"mlx5_0", "enp28s0np0", "::ffff:10.1.0.9", 3}, // a mapped peer is an IPv4 peer
	}
	for _, tt := range tests {
		table, err := ReadGIDTable("testdata/infiniband", tt.device, 1)
		if err != nil {
			t.Fatal(err)
		}
		g, err := ChooseGID(table, tt.netdev, netip.MustParseAddr(tt.peer))
		switch {
		case tt.want < 0 && !errors.Is(err, ErrNoGID):
			t.Errorf("%s via %s to %s: got GID %d, %v; want ErrNoGID", tt.device, tt.netdev, tt.peer, g.Index, err)
		case tt.want >= 0 && (err != nil || g.Index != tt.want):
			t.Errorf("%s via %s to %s: got GID %d (%v %s), %v; want %d", tt.device, tt.netdev, tt.peer, g.Index, g.Addr, g.Type, err, tt.want)
		}
	}
}

func TestReadGIDTable(t *testing.T) {
	table, err := ReadGIDTable("testdata/infiniband", "mlx5_0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 6 {
		t.Fatalf("%d GIDs, want 6 (the zero entry skipped): %+v", len(table), table)
	}
	if g := table[3]; g.Addr != netip.MustParseAddr("::ffff:10.1.0.7") || g.Type != RoCEv2 || g.Netdev != "enp28s0np0" {
		t.Errorf("GID 3 = %+v", g)
	}
	if _, err := ReadGIDTable("testdata/infiniband", "absent", 1); err == nil {
		t.Error("a device that does not exist has a GID table")
	}
}
