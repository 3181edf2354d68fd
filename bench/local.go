package bench

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/engine/probe"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// LocalDeviceMemory is the memory of the in-process server's one emulated
// device: room for the copy sweep's two 256 MiB buffers on two transports
// at once. The host backend reserves it lazily, so it costs only what is
// touched.
const LocalDeviceMemory = 2 << 30

// localServer is the in-process server a run starts when it is given no
// address: the host backend, on loopback, over TCP and (where the platform
// has it) shared memory, as `gpufabric server` wires it.
type localServer struct {
	srv       *engine.Server
	listeners []transport.Listener
	served    sync.WaitGroup
	addr      string
	// noShm says why shared memory is not offered; empty when it is.
	noShm string
	// tlsAddr is a second TCP listener's, with TLS; tlsClient trusts it.
	tlsAddr   string
	tlsClient *tls.Config
	probes    *probe.Probes // when asked for and loaded
}

// startLocal starts the server; minShare is the smallest share it grants
// (the many-tenant scenario's 1/N).
func startLocal(deviceMemory uint64, minShare float64, probes bool, log *slog.Logger) (*localServer, error) {
	dev, err := host.New(host.Config{Index: 0, MemorySize: deviceMemory})
	if err != nil {
		return nil, fmt.Errorf("bench: in-process server: %w", err)
	}
	opts := transport.Options{MaxPayload: 256 << 20}
	l, err := tcp.Listen("127.0.0.1:0", opts)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("bench: in-process server: %w", err)
	}
	listeners := []transport.Listener{l}
	offers := []string{tcp.Name + ":" + l.Addr()}
	ls := &localServer{addr: l.Addr()}
	_, port, _ := net.SplitHostPort(l.Addr())
	path := fmt.Sprintf("@gpufabric-bench-%d-%s", os.Getpid(), port)
	if sl, err := shm.Listen(path, shm.Options{Options: opts}); err != nil {
		ls.noShm = err.Error()
	} else {
		listeners = append(listeners, sl)
		offers = append(offers, shm.Name+":"+path)
	}
	if serverTLS, clientTLS, err := selfSigned(); err == nil {
		if tl, err := tcp.ListenTLS("127.0.0.1:0", serverTLS, opts); err == nil {
			listeners = append(listeners, tl)
			ls.tlsAddr, ls.tlsClient = tl.Addr(), clientTLS
		}
	}
	cfg := engine.Config{Name: "bench (in-process)", MinShare: minShare, Offers: offers, Logger: log}
	if probes {
		_, port, _ := net.SplitHostPort(l.Addr())
		n, _ := strconv.Atoi(port)
		cfg.Probes, cfg.ProbeError = probe.Open(probe.Options{Ports: []int{n}, PID: os.Getpid()})
		ls.probes = cfg.Probes
	}
	srv, err := engine.NewServer(cfg, []backend.Device{dev})
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		dev.Close()
		return nil, fmt.Errorf("bench: in-process server: %w", err)
	}
	ls.srv, ls.listeners = srv, listeners
	for _, l := range listeners {
		ls.served.Go(func() { srv.Serve(l) })
	}
	return ls, nil
}

// close stops the server, its listeners and its device. It closes the
// listeners itself too: one whose Serve has not started yet is not the
// server's to close.
func (ls *localServer) close() error {
	err := ls.srv.Close()
	for _, l := range ls.listeners {
		l.Close()
	}
	ls.served.Wait()
	ls.probes.Close()
	return err
}
