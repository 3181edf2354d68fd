package interpose

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
)

// rdmaEndpoint returns the server's RDMA control address, with the
// address the client reached the server at when the server listens on
// every interface; "" when it offers none.
func rdmaEndpoint(h api.HelloReply, addr string) string {
	for _, o := range h.Offers {
		name, ep, ok := strings.Cut(o, ":")
		if !ok || name != rdma.Name {
			continue
		}
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return ""
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host, _, _ = net.SplitHostPort(addr)
		}
		return net.JoinHostPort(host, port)
	}
	return ""
}

// dialRDMA opens a session over the verbs transport the server offers.
func dialRDMA(ctx context.Context, h api.HelloReply, addr string, opts Options) (*Session, string, error) {
	endpoint := rdmaEndpoint(h, addr)
	if endpoint == "" {
		return nil, "", errors.New("the server offers no RDMA")
	}
	conn, err := opts.dialRDMA(ctx, endpoint)
	if err != nil {
		return nil, endpoint, err
	}
	s, err := Open(ctx, conn, opts)
	return s, endpoint, err
}

// dialRDMA dials a server's RDMA control endpoint through o.RDMADevice, or
// the device and GID that route to it.
func (o Options) dialRDMA(ctx context.Context, endpoint string) (transport.Conn, error) {
	cfg := rdma.Config{Options: o.Conn}
	if o.RDMADevice != nil {
		return rdma.Dial(ctx, endpoint, o.RDMADevice, cfg)
	}
	return rdma.DialAuto(ctx, endpoint, cfg)
}
