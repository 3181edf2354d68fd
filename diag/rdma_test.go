package diag

import (
	"reflect"
	"testing"
)

// testdata/infiniband is shaped like /sys/class/infiniband: mlx5_0 a RoCE
// port whose GID table has a hole and a two-digit index, mlx5_1 an
// InfiniBand device with IPoIB, rxe_broken a device with no ports.
func TestReadRDMADevice(t *testing.T) {
	tests := []struct {
		name    string
		want    []RDMAPort
		wantErr bool
	}{
		{
			name: "mlx5_0",
			want: []RDMAPort{{
				Port: 1, State: "ACTIVE", LinkLayer: "Ethernet", Netdev: "enp28s0np0",
				GIDs:     []string{"fe80::ba59:9fff:fe00:0", "::ffff:10.1.0.7", "fe80::ba59:9fff:fe00:a"},
				GIDTypes: []string{"IB/RoCE v1", "RoCE v2", ""}, MTU: 1024,
			}},
		},
		{
			name: "mlx5_1",
			want: []RDMAPort{
				{Port: 1, State: "DOWN", LinkLayer: "InfiniBand", Netdev: "ib0", GIDs: []string{"fe80::c42:a103:70:1e5a"}, GIDTypes: []string{""}, MTU: 4096},
				{Port: 2, State: "ACTIVE", LinkLayer: "InfiniBand", Netdev: "ib0", GIDs: []string{}, GIDTypes: []string{}, MTU: 4096},
			},
		},
		{name: "rxe_broken", wantErr: true},
		{name: "absent", wantErr: true},
	}
	for _, tt := range tests {
		dev, err := readRDMADevice("testdata/infiniband", tt.name)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%s: readRDMADevice succeeded: %+v", tt.name, dev)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if dev.Name != tt.name || !reflect.DeepEqual(dev.Ports, tt.want) {
			t.Errorf("%s: got %+v, want ports %+v", tt.name, dev, tt.want)
		}
	}
}
