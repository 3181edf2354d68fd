package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

func init() {
	register("server", "run a GPU server: lend this host's GPUs to clients", runServer)
}

func runServer(ctx context.Context, args []string) error {
	fs := newFlags("server", "[flags]", "Serve this host's GPUs (or emulated ones) to gpufabric clients.")
	listen := fs.String("listen", envOr("GPUFABRIC_LISTEN", "127.0.0.1:7070"), "TCP address to listen on")
	backendName := fs.String("backend", "auto", "device backend: auto (cuda where a GPU and driver are present, else host), cuda, or host (CPU emulation)")
	devices := fs.Int("devices", 1, "emulated devices (host backend)")
	memory := fs.String("device-memory", "16GiB", "memory of each emulated device (host backend), e.g. 8GiB, 512MiB")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token clients must present (default $GPUFABRIC_TOKEN; none when empty)")
	minShare := fs.Float64("min-share", 1.0/20, "smallest fraction of a device a session may hold")
	shmPath := fs.String("shm", "auto", `Unix socket of the shared-memory transport for clients on this host ("@name" is Linux's abstract namespace); auto: @gpufabric-PORT; "off": none`)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	devs, err := openDevices(*backendName, *devices, *memory, log)
	if err != nil {
		return err
	}
	l, err := tcp.Listen(*listen, transport.Options{MaxPayload: 256 << 20})
	if err != nil {
		closeAll(devs)
		return err
	}
	listeners := []transport.Listener{l}
	offers := []string{tcp.Name + ":" + l.Addr()}
	if *shmPath != "off" {
		path := *shmPath
		if path == "auto" {
			_, port, _ := net.SplitHostPort(l.Addr())
			path = "@gpufabric-" + port
		}
		sl, err := shm.Listen(path, shm.Options{Options: transport.Options{MaxPayload: 256 << 20}})
		if err != nil {
			log.Warn("no shared-memory transport; clients on this host use TCP", "err", err)
		} else {
			listeners = append(listeners, sl)
			offers = append(offers, shm.Name+":"+path)
		}
	}
	pin, node := placement(log)
	srv, err := engine.NewServer(engine.Config{
		Token:    *token,
		MinShare: *minShare,
		Offers:   offers,
		Pin:      pin,
		Node:     node,
		Logger:   log,
	}, devs)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		closeAll(devs)
		return err
	}
	for _, d := range devs {
		info := d.Info()
		log.Info("device", "index", info.Index, "name", info.Name, "backend", info.Backend,
			"emulated", info.Emulated, "memory", humanize.IBytes(info.TotalMem))
	}
	log.Info("serving", "listen", l.Addr(), "offers", strings.Join(offers, " "), "devices", len(devs), "gomaxprocs", runtime.GOMAXPROCS(0))
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { served <- srv.Serve(l) }()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
	case err := <-served:
		if !errors.Is(err, engine.ErrServerClosed) {
			srv.Close()
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// openDevices opens the devices of the chosen backend.
func openDevices(name string, count int, memory string, log *slog.Logger) ([]backend.Device, error) {
	switch name {
	case "host":
		return openHost(count, memory)
	case "cuda", "auto":
		devs, err := openCUDA(log)
		if err == nil {
			log.Info("backend cuda: real GPUs found", "devices", len(devs))
			return devs, nil
		}
		if name == "cuda" {
			return nil, err
		}
		log.Info("backend host (CPU emulation): no usable GPU", "reason", err)
		return openHost(count, memory)
	}
	return nil, fmt.Errorf("--backend %q: want auto, cuda or host", name)
}

func openHost(count int, memory string) ([]backend.Device, error) {
	size, err := humanize.ParseBytes(memory)
	if err != nil {
		return nil, fmt.Errorf("--device-memory %q: %w", memory, err)
	}
	if count < 1 || count > 64 {
		return nil, fmt.Errorf("--devices %d: want 1 to 64", count)
	}
	var devs []backend.Device
	for i := range count {
		d, err := host.New(host.Config{Index: i, MemorySize: size})
		if err != nil {
			closeAll(devs)
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

func closeAll(devs []backend.Device) {
	for _, d := range devs {
		d.Close()
	}
}
