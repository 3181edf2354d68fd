package rdma

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// ClassDir is where the kernel lists RDMA devices.
const ClassDir = "/sys/class/infiniband"

// OpenFor opens device (the first libibverbs finds when "") on port 1 with
// the GID to reach peer by: from the port's GID table, on the interface
// the kernel routes peer through (ChooseGID). An invalid peer (a listener
// does not know its peers yet) takes the port's best IPv4 GID.
func OpenFor(peer netip.Addr, device string) (Device, GID, error) {
	if device == "" {
		names, err := Devices()
		if err != nil {
			return nil, GID{}, err
		}
		device = names[0]
	}
	table, err := ReadGIDTable(ClassDir, device, 1)
	if err != nil {
		return nil, GID{}, err
	}
	netdev := ""
	if peer.IsValid() {
		if netdev, err = RouteNetdev(peer); err != nil {
			return nil, GID{}, err
		}
	} else {
		peer = netip.IPv4Unspecified()
	}
	g, err := ChooseGID(table, netdev, peer)
	if err != nil {
		return nil, GID{}, err
	}
	dev, err := Open(device, OpenOptions{GIDIndex: g.Index})
	if err != nil {
		return nil, GID{}, err
	}
	return dev, g, nil
}

// DialAuto connects to an RDMA listener at addr through the device and GID
// that reach it (OpenFor); the connection owns the device and closes it.
func DialAuto(ctx context.Context, addr string, cfg Config) (*Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("rdma: dial %q: %w", addr, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("rdma: dial %q: %w", addr, err)
	}
	dev, _, err := OpenFor(ips[0], "")
	if err != nil {
		return nil, err
	}
	c, err := Dial(ctx, addr, dev, cfg)
	if err != nil {
		dev.Close()
		return nil, err
	}
	c.ownDev = dev
	return c, nil
}

// GIDForPeer returns a Config.PeerGID for device's port 1: the GID that
// reaches each peer, from the interface the kernel routes it through.
func GIDForPeer(device string) func(netip.Addr) (GID, error) {
	return func(peer netip.Addr) (GID, error) {
		table, err := ReadGIDTable(ClassDir, device, 1)
		if err != nil {
			return GID{}, err
		}
		netdev, err := RouteNetdev(peer)
		if err != nil {
			return GID{}, err
		}
		return ChooseGID(table, netdev, peer)
	}
}
