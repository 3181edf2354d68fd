package main

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
)

// listenRDMA listens for verbs connections beside TCP, on the TCP
// listener's host and a port of its own, when this host has an RDMA
// device; the offer tells clients where. The device stays open for the
// server's life.
func listenRDMA(tcpAddr string, log *slog.Logger) (transport.Listener, string, error) {
	dev, g, err := rdma.OpenFor(netip.Addr{}, "")
	if err != nil {
		return nil, "", err
	}
	host, _, _ := net.SplitHostPort(tcpAddr)
	l, err := rdma.Listen(net.JoinHostPort(host, "0"), dev, rdma.Config{
		Options: transport.Options{MaxPayload: 256 << 20},
		Logger:  log,
		// Each client is answered from the GID of the interface that
		// routes to it, not only the one chosen here for IPv4.
		PeerGID: rdma.GIDForPeer(dev.Name()),
	})
	if err != nil {
		dev.Close()
		return nil, "", err
	}
	log.Info("RDMA transport", "device", dev.Name(), "gid", g.Addr, "gid_index", g.Index, "gid_type", g.Type, "netdev", g.Netdev, "control", l.Addr())
	return l, rdma.Name + ":" + l.Addr(), nil
}
