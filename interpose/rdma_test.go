package interpose

import (
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

func TestRDMAEndpoint(t *testing.T) {
	tests := []struct {
		offers []string
		addr   string
		want   string
	}{
		{[]string{"tcp:10.0.0.5:7000", "rdma:10.0.0.5:40001"}, "10.0.0.5:7000", "10.0.0.5:40001"},
		{[]string{"rdma:[::]:40001"}, "gpu-08:7000", "gpu-08:40001"}, // listening everywhere: the host the client reached
		{[]string{"rdma:0.0.0.0:40001"}, "10.0.0.5:7000", "10.0.0.5:40001"},
		{[]string{"rdma::40001"}, "10.0.0.5:7000", "10.0.0.5:40001"},
		{[]string{"tcp:10.0.0.5:7000", "shm:@gpufabric-7000"}, "10.0.0.5:7000", ""},
		{[]string{"rdma:garbage"}, "10.0.0.5:7000", ""},
	}
	for _, tt := range tests {
		if got := rdmaEndpoint(api.HelloReply{Offers: tt.offers}, tt.addr); got != tt.want {
			t.Errorf("offers %v reached at %s: %q, want %q", tt.offers, tt.addr, got, tt.want)
		}
	}
}
