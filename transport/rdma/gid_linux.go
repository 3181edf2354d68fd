package rdma

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// RouteNetdev returns the network interface the kernel routes peer
// through: the RoCE GIDs to reach it with are those of that interface.
func RouteNetdev(peer netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(net.IP(peer.Unmap().AsSlice()))
	if err != nil {
		return "", fmt.Errorf("rdma: route to %v: %w", peer, err)
	}
	if len(routes) == 0 {
		return "", fmt.Errorf("rdma: no route to %v", peer)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("rdma: route to %v: interface %d: %w", peer, routes[0].LinkIndex, err)
	}
	return link.Attrs().Name, nil
}
