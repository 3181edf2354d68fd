//go:build !linux

package rdma

import (
	"fmt"
	"net/netip"
)

// RouteNetdev is not supported off Linux.
func RouteNetdev(peer netip.Addr) (string, error) {
	return "", fmt.Errorf("%w: routes are read with netlink, on linux only", ErrUnavailable)
}
