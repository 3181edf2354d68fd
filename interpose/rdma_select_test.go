package interpose_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// rdmaServer is a server offering TCP and RDMA, the latter over an
// emulated fabric; it returns the address and a device on the same fabric
// for clients.
func rdmaServer(t *testing.T) (addr string, client rdma.Device) {
	t.Helper()
	dev, err := host.New(host.Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fab := rdma.NewEmulation()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rl, err := rdma.Listen("127.0.0.1:0", fab.Open("emu-server", rdma.EmuOptions{}), rdma.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Offered as a server listening everywhere offers it: the client
	// puts in the host it reached the server at.
	_, port, _ := net.SplitHostPort(rl.Addr())
	offers := []string{"tcp:" + l.Addr(), "rdma:[::]:" + port}
	srv, err := engine.NewServer(engine.Config{Offers: offers, Logger: quiet}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })
	return l.Addr(), fab.Open("emu-client", rdma.EmuOptions{})
}

// TestConnectMeasuresRDMA: a server that offers RDMA has it measured
// beside TCP, and the lanes go to the winners; forced, it carries the
// session, large copies included.
func TestConnectMeasuresRDMA(t *testing.T) {
	addr, dev := rdmaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{RDMADevice: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sel := s.Selection()
	measured := map[string]bool{}
	for _, c := range sel.Candidates {
		measured[c.Transport] = c.Err == nil && c.Latency.Samples > 0
	}
	if !measured["tcp"] || !measured["rdma"] {
		t.Fatalf("candidates %+v: want tcp and rdma measured", sel.Candidates)
	}
	if s.Transport().Transport != sel.CallLane {
		t.Fatalf("call lane %s, session over %s", sel.CallLane, s.Transport().Transport)
	}
	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}

	forced, err := interpose.Connect(ctx, addr, interpose.Options{RDMADevice: dev, Transport: "rdma"})
	if err != nil {
		t.Fatal(err)
	}
	defer forced.Close()
	if got := forced.Transport().Transport; got != "rdma" {
		t.Fatalf("forced rdma, got %s", got)
	}
	// Copies of every size: in the messages, written into the server's
	// staging, written by the server into ours; split into chunks too.
	d, err := forced.Attach(interpose.AnyDevice, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{100, 20 << 10, 1 << 20, 9<<20 + 3, 3 << 20} {
		p, err := d.Alloc(uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		src := make([]byte, n)
		if i == 4 { // as the interposer does for cuMemAllocHost memory
			if err := forced.PinHost(src); err != nil {
				t.Fatal(err)
			}
			defer forced.UnpinHost(src)
		}
		for i := range src {
			src[i] = byte(i*7 + n)
		}
		if err := d.CopyHtoD(p, src); err != nil {
			t.Fatalf("%d bytes to the device: %v", n, err)
		}
		dst := make([]byte, n)
		if err := d.CopyDtoH(dst, p); err != nil {
			t.Fatalf("%d bytes from the device: %v", n, err)
		}
		if !bytes.Equal(dst, src) {
			t.Fatalf("%d bytes came back different", n)
		}
	}
}

// TestRDMABulkLane: calls over TCP, large copies' payloads over RDMA.
func TestRDMABulkLane(t *testing.T) {
	addr, dev := rdmaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{RDMADevice: dev, Transport: "tcp", BulkTransport: "rdma"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sel := s.Selection(); sel.CallLane != "tcp" || sel.BulkLane != "rdma" {
		t.Fatalf("lanes %s and %s, want tcp and rdma: %s", sel.CallLane, sel.BulkLane, sel.Reason)
	}
	d, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12<<20 + 5
	p, err := d.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i * 31)
	}
	if err := d.CopyHtoD(p, src); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, n)
	if err := d.CopyDtoH(dst, p); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, src) {
		t.Fatal("the copy came back different over the RDMA bulk lane")
	}
}
