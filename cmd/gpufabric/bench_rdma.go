package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
)

// The verbs transport measured by itself between two hosts, for `make
// rdma-check`, beside perftest's ib_send_lat and ib_write_bw run on the
// same pair: one host runs `gpufabric bench --transport rdma --listen
// ADDR`, the other `gpufabric bench --transport rdma --server ADDR`. The
// client makes two connections: ping-pongs of empty frames on the first
// (the call lane's latency), payloads one way on the second (the bulk
// lane's bandwidth: RDMA WRITEs into the listener's staging).

type rdmaBench struct {
	device   string
	gidIndex int // -1: chosen from the route to the peer
	size     int
	total    int
	pings    int
}

// open opens the device with the GID for peer (see rdma.OpenFor).
func (b rdmaBench) open(peer netip.Addr) (rdma.Device, error) {
	if b.gidIndex >= 0 {
		name := b.device
		if name == "" {
			names, err := rdma.Devices()
			if err != nil {
				return nil, err
			}
			name = names[0]
		}
		return rdma.Open(name, rdma.OpenOptions{GIDIndex: b.gidIndex})
	}
	dev, g, err := rdma.OpenFor(peer, b.device)
	if err != nil {
		return nil, err
	}
	fmt.Printf("rdma: %s GID %d (%v, %s, %s)\n", dev.Name(), g.Index, g.Addr, g.Type, g.Netdev)
	return dev, nil
}

func (b rdmaBench) listen(ctx context.Context, addr string) error {
	dev, err := b.open(netip.Addr{})
	if err != nil {
		return err
	}
	defer dev.Close()
	l, err := rdma.Listen(addr, dev, rdma.Config{})
	if err != nil {
		return err
	}
	defer l.Close()
	context.AfterFunc(ctx, func() { l.Close() })
	fmt.Printf("rdma: listening on %s; run `gpufabric bench --transport rdma --server HOST:PORT` on the other host\n", l.Addr())
	for i := 0; ; i++ {
		c, err := l.Accept()
		if err != nil {
			return nil
		}
		serve := transport.Echo
		if i%2 == 1 {
			serve = transport.Sink
		}
		go func() {
			defer c.Close()
			if err := serve(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, rdma.ErrPeerGone) {
				fmt.Printf("rdma: %s: %v\n", c.Info().Remote, err)
			}
		}()
	}
}

func (b rdmaBench) run(ctx context.Context, server string) error {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("--server %q: %w", server, err)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("--server %q: %w", server, err)
	}
	dev, err := b.open(ips[0])
	if err != nil {
		return err
	}
	defer dev.Close()
	echo, err := rdma.Dial(ctx, server, dev, rdma.Config{})
	if err != nil {
		return err
	}
	defer echo.Close()
	st, err := transport.PingPong(echo, b.pings, 0)
	if err != nil {
		return err
	}
	fmt.Printf("rdma call lane: round trip p50 %v p99 %v (%d empty frames; ib_send_lat reports half a round trip)\n", st.P50, st.P99, st.Samples)
	sink, err := rdma.Dial(ctx, server, dev, rdma.Config{})
	if err != nil {
		return err
	}
	defer sink.Close()
	bps, err := transport.Bandwidth(sink, b.size, b.total)
	if err != nil {
		return err
	}
	fmt.Printf("rdma bulk lane: %.2f Gb/s (%d-byte payloads RDMA-written into the server's staging)\n", bps*8/1e9, b.size)
	s := sink.Stats()
	fmt.Printf("rdma copies: %.2f per payload byte by this side's CPU; %d payloads fell back to copying\n",
		float64(s.CopiedBytes)/float64(max(s.PayloadBytesSent, 1)), s.Fallbacks)
	return nil
}
