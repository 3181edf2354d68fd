package interpose

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/gpufabric/gpufabric/engine/api"
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

// dialRDMA opens a session over the verbs transport the server offers,
// through the device and GID that reach it.
func dialRDMA(ctx context.Context, h api.HelloReply, addr string, opts Options) (*Session, string, error) {
	endpoint := rdmaEndpoint(h, addr)
	if endpoint == "" {
		return nil, "", errors.New("the server offers no RDMA")
	}
	conn, err := rdma.DialAuto(ctx, endpoint, rdma.Config{Options: opts.Conn})
	if err != nil {
		return nil, endpoint, err
	}
	s, err := Open(ctx, conn, opts)
	return s, endpoint, err
}
