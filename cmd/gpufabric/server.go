package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/engine/probe"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

func init() {
	register("server", "run a GPU server: lend this host's GPUs to clients", runServer)
}

// serverOptions is what `gpufabric server` was asked, after flags and
// defaults.
type serverOptions struct {
	listen, backend, memory, shm, logLevel string
	devices                                int
	// TLS for TCP: the server's certificate and key, and the CA that
	// signs the client certificates it then requires.
	tlsCert, tlsKey, tlsClientCA string
	// probe: auto (load the eBPF probes where this host lets us), on
	// (fail without them) or off.
	probe string
	// metrics: the address of the Prometheus endpoint; none when empty.
	metrics string
	// limits holds the engine's configuration from the flags: the token,
	// the smallest share and the limits a tenant is held to (zero: the
	// engine's default).
	limits engine.Config
	// tokenOnCommandLine: --token was given as a flag, where every user of
	// the host can read it in the process list.
	tokenOnCommandLine bool
	// pool: the pool this server joins, if any (serverpool.go).
	pool *serverPool
	// slot: the host backend's address slot; -1 chooses (serverpool.go).
	slot int
}

func parseServerArgs(args []string) (*serverOptions, error) {
	fs := newFlags("server", "[flags]", "Serve this host's GPUs (or emulated ones) to gpufabric clients.")
	o := &serverOptions{}
	fs.StringVar(&o.listen, "listen", envOr("GPUFABRIC_LISTEN", "127.0.0.1:7070"), "TCP address to listen on")
	fs.StringVar(&o.metrics, "metrics", envOr("GPUFABRIC_METRICS", ""), "serve Prometheus metrics (devices, sessions, call stages, eBPF probes) at http://ADDR/metrics, e.g. 127.0.0.1:9400; none when empty")
	fs.StringVar(&o.backend, "backend", "auto", "device backend: auto (cuda where a GPU and driver are present, else host), cuda, or host (CPU emulation)")
	fs.IntVar(&o.devices, "devices", 1, "emulated devices (host backend)")
	fs.IntVar(&o.slot, "address-slot", -1, "host backend: the range of device addresses this server hands out, 0 to 255, so that a program using devices of several servers never sees one address twice (default: 0, or in a pool one the pool assigns; in a pool 1 to 255, refused when another server in the pool holds it)")
	fs.StringVar(&o.memory, "device-memory", "16GiB", "memory of each emulated device (host backend), e.g. 8GiB, 512MiB")
	token := fs.String("token", envOr("GPUFABRIC_TOKEN", ""), "token clients must present (default $GPUFABRIC_TOKEN; none when empty); prefer --token-file: a flag is visible in the process list")
	tokenFile := fs.String("token-file", envOr("GPUFABRIC_TOKEN_FILE", ""), "read the token clients must present from this file (its first line, trimmed), which must not be readable by group or others (chmod 600); $GPUFABRIC_TOKEN_FILE sets the default")
	fs.Float64Var(&o.limits.MinShare, "min-share", engine.DefaultMinShare, "smallest fraction of a device a session may hold")
	fs.StringVar(&o.shm, "shm", "auto", `Unix socket of the shared-memory transport for clients on this host ("@name" is Linux's abstract namespace); auto: @gpufabric-PORT; "off": none`)
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.probe, "probe", "off", "eBPF latency probes (scheduling, system calls, TCP) shown by smi --json, diag --probe and --metrics: auto (where the kernel and privileges allow), on (refuse to start without them) or off; they cost a synchronous TCP call 7-8 % more on a 2-vCPU VM (docs/latency.md)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve TCP over TLS with this certificate (PEM; with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "require every TCP client to present a certificate signed by this CA (PEM; with --tls-cert)")
	// The limits a tenant is held to; 0 is the engine's default, shown.
	fs.DurationVar(&o.limits.HandshakeTimeout, "handshake-timeout", 0, fmt.Sprintf("how long a new connection may take to say Hello before it is cut off (0: the default, %v)", engine.DefaultHandshakeTimeout))
	fs.IntVar(&o.limits.MaxConns, "max-conns", 0, fmt.Sprintf("connections served at once, authenticated or not; past it new ones are closed (0: the default, %d)", engine.DefaultMaxConns))
	fs.IntVar(&o.limits.MaxConnsPerPeer, "max-conns-per-peer", 0, fmt.Sprintf("connections of one peer (a uid over shared memory, an IP address over TCP) at once (0: the default, %d)", engine.DefaultMaxConnsPerPeer))
	fs.DurationVar(&o.limits.SlowConsumer, "slow-consumer", 0, fmt.Sprintf("how long a session's replies may wait for its client to read them before the session is cut off and its memory freed (0: the default, %v)", engine.DefaultSlowConsumer))
	fs.IntVar(&o.limits.MaxInflight, "max-inflight", 0, fmt.Sprintf("tasks and stream operations one session may have in flight; past it the server stops reading the session until they drain (0: the default, %d)", engine.DefaultMaxInflight))
	moduleSize := fs.String("max-module-size", "", fmt.Sprintf("largest module image a session may load, e.g. 64MiB (0: the default, %s)", humanize.IBytes(engine.DefaultMaxModuleImage)))
	fs.IntVar(&o.limits.MaxStreams, "max-streams", 0, fmt.Sprintf("streams one session may hold at once (0: the default, %d)", engine.DefaultMaxStreams))
	fs.IntVar(&o.limits.MaxEvents, "max-events", 0, fmt.Sprintf("events one session may hold at once (0: the default, %d)", engine.DefaultMaxEvents))
	fs.IntVar(&o.limits.MaxModules, "max-modules", 0, fmt.Sprintf("modules one session may hold at once (0: the default, %d)", engine.DefaultMaxModules))
	o.pool = addServerPoolFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, l := range []struct {
		name string
		v    int64
	}{
		{"handshake-timeout", int64(o.limits.HandshakeTimeout)}, {"max-conns", int64(o.limits.MaxConns)},
		{"max-conns-per-peer", int64(o.limits.MaxConnsPerPeer)}, {"slow-consumer", int64(o.limits.SlowConsumer)},
		{"max-inflight", int64(o.limits.MaxInflight)}, {"max-streams", int64(o.limits.MaxStreams)},
		{"max-events", int64(o.limits.MaxEvents)}, {"max-modules", int64(o.limits.MaxModules)},
	} {
		if l.v < 0 {
			return nil, fmt.Errorf("--%s: negative; 0 means the default", l.name)
		}
	}
	if *moduleSize != "" {
		n, err := humanize.ParseBytes(*moduleSize)
		if err != nil || n > math.MaxInt64 {
			return nil, fmt.Errorf("--max-module-size %q: want a size such as 256MiB", *moduleSize)
		}
		o.limits.MaxModuleImage = int64(n)
	}
	switch {
	case *tokenFile != "" && set["token"]:
		return nil, errors.New("--token and --token-file both given: the token comes from one place")
	case *tokenFile != "":
		t, err := readTokenFile(*tokenFile)
		if err != nil {
			return nil, err
		}
		o.limits.Token = t
	default:
		o.limits.Token = *token
		o.tokenOnCommandLine = set["token"] && *token != ""
	}
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case o.tlsClientCA != "" && o.tlsCert == "":
		return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked over TLS")
	}
	if err := o.pool.check(o); err != nil {
		return nil, err
	}
	if len(o.limits.Token) > shm.MaxTokenLen {
		return nil, fmt.Errorf("the token has %d bytes; at most %d", len(o.limits.Token), shm.MaxTokenLen)
	}
	return o, nil
}

// readTokenFile reads a token from its file: the first line, trimmed. The
// token is the one secret between a tenant and the GPUs, on hosts that
// other users share, so a file readable by group or others is refused, as
// ssh refuses such a private key: an operator learns of the leak here
// rather than from a stranger's session.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("--token-file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--token-file %s: mode %#o lets group or others read the token; chmod 600 it", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	token := strings.TrimSpace(line)
	if token == "" {
		return "", fmt.Errorf("--token-file %s: empty", path)
	}
	return token, nil
}

// lastReject is when a turned-away peer was last logged (unix nanoseconds).
var lastReject atomic.Int64

func runServer(ctx context.Context, args []string) error {
	o, err := parseServerArgs(args)
	if err != nil {
		return err
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if o.tokenOnCommandLine {
		log.Warn("--token is visible to every user of this host in the process list; use --token-file or $GPUFABRIC_TOKEN")
	}
	if o.slot > host.MaxSlot {
		return fmt.Errorf("--address-slot %d: want 0 to %d", o.slot, host.MaxSlot)
	}
	l, security, err := listenTCP(o)
	if err != nil {
		return err
	}
	if err := o.pool.open(ctx, log); err != nil {
		l.Close()
		return err
	}
	defer o.pool.close()
	// After the listen: a pool's address slot is claimed under the
	// server's name, whose default holds the port the listener got.
	devs, err := openDevices(o.backend, o.devices, o.memory, func() (int, error) { return o.pool.addressSlot(ctx, o.slot, l.Addr(), log) }, log)
	if err != nil {
		l.Close()
		return err
	}
	listeners := []transport.Listener{l}
	offers := []string{tcp.Name + ":" + l.Addr()}
	if o.shm != "off" {
		path := o.shm
		if path == "auto" {
			_, port, _ := net.SplitHostPort(l.Addr())
			path = "@gpufabric-" + port
		}
		// Peers of the server's own user (and root) are admitted by their
		// credentials; those of other users must present the token.
		sl, err := shm.Listen(path, shm.Options{
			Options:          transport.Options{MaxPayload: 256 << 20},
			Token:            o.limits.Token,
			HandshakeTimeout: o.limits.HandshakeTimeout,
			OnReject: func(peer string, err error) {
				// At most a line a second: a peer can be turned away as
				// fast as it can connect.
				now := time.Now().UnixNano()
				if last := lastReject.Load(); now-last >= int64(time.Second) && lastReject.CompareAndSwap(last, now) {
					log.Warn("shared memory: peer turned away (at most one such line a second)", "peer", peer, "err", err)
				}
			},
		})
		if err != nil {
			log.Warn("no shared-memory transport; clients on this host use TCP", "err", err)
		} else {
			listeners = append(listeners, sl)
			offers = append(offers, shm.Name+":"+path)
		}
	}
	if rl, offer, err := listenRDMA(l.Addr(), log); err != nil {
		log.Info("no RDMA transport; clients on other hosts use TCP", "err", err)
	} else {
		listeners = append(listeners, rl)
		offers = append(offers, offer)
	}
	pin, node := placement(log)
	cfg := o.limits
	cfg.Offers, cfg.Pin, cfg.Node, cfg.Logger = offers, pin, node, log
	if cfg.Probes, cfg.ProbeError, err = openProbes(o.probe, l.Addr(), log); err != nil {
		for _, l := range listeners {
			l.Close()
		}
		closeAll(devs)
		return err
	}
	defer cfg.Probes.Close()
	agent, leave, err := o.pool.join(ctx, l.Addr(), offers, devs, node, log)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		closeAll(devs)
		return err
	}
	defer leave()
	if agent != nil {
		cfg.Authorize = agent.Authorize
	}
	srv, err := engine.NewServer(cfg, devs)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		closeAll(devs)
		return err
	}
	if agent != nil {
		agent.SetRevoke(srv.Revoke)
		go reportHealth(ctx, agent, srv, log)
	}
	for _, d := range devs {
		info := d.Info()
		log.Info("device", "index", info.Index, "name", info.Name, "backend", info.Backend,
			"emulated", info.Emulated, "memory", humanize.IBytes(info.TotalMem))
	}
	stopMetrics, err := serveMetrics(o.metrics, srv, log)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopMetrics()
	log.Info("serving", "listen", l.Addr(), "tls", security, "offers", strings.Join(offers, " "), "devices", len(devs), "gomaxprocs", runtime.GOMAXPROCS(0))
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

// listenTCP listens for TCP clients, over TLS when a certificate is given.
// It says how clients are checked: "off", "server" (TLS, the server's
// certificate only) or "mutual" (client certificates required).
func listenTCP(o *serverOptions) (transport.Listener, string, error) {
	opts := transport.Options{MaxPayload: 256 << 20}
	if o.tlsCert == "" {
		l, err := tcp.Listen(o.listen, opts)
		return l, "off", err
	}
	cfg, err := tcp.ServerTLSConfig(o.tlsCert, o.tlsKey, o.tlsClientCA)
	if err != nil {
		return nil, "", fmt.Errorf("TLS: %w", err)
	}
	l, err := tcp.ListenTLS(o.listen, cfg, opts)
	if err != nil {
		return nil, "", err
	}
	if o.tlsClientCA != "" {
		return l, "mutual", nil
	}
	return l, "server", nil
}

// openDevices opens the devices of the chosen backend.
// slot gives the host backend's address slot; it is asked only for host
// devices, as the driver chooses real GPUs' addresses.
func openDevices(name string, count int, memory string, slot func() (int, error), log *slog.Logger) ([]backend.Device, error) {
	switch name {
	case "host":
		return openHost(count, memory, slot)
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
		return openHost(count, memory, slot)
	}
	return nil, fmt.Errorf("--backend %q: want auto, cuda or host", name)
}

func openHost(count int, memory string, claim func() (int, error)) ([]backend.Device, error) {
	size, err := humanize.ParseBytes(memory)
	if err != nil {
		return nil, fmt.Errorf("--device-memory %q: %w", memory, err)
	}
	if count < 1 || count > 64 {
		return nil, fmt.Errorf("--devices %d: want 1 to 64", count)
	}
	slot, err := claim()
	if err != nil {
		return nil, err
	}
	var devs []backend.Device
	for i := range count {
		d, err := host.New(host.Config{Index: i, MemorySize: size, Slot: slot})
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

// openProbes loads the eBPF probes as --probe asks, watching the TCP port
// of listen. With auto, probes that cannot load are logged and reported in
// the server's status (why), and the server runs without them.
func openProbes(mode, listen string, log *slog.Logger) (*probe.Probes, error, error) {
	switch mode {
	case "off":
		return nil, nil, nil
	case "auto", "on":
	default:
		return nil, nil, fmt.Errorf("--probe %q: want auto, on or off", mode)
	}
	var ports []int
	if _, port, err := net.SplitHostPort(listen); err == nil {
		if n, err := strconv.Atoi(port); err == nil {
			ports = append(ports, n)
		}
	}
	p, err := probe.Open(probe.Options{Ports: ports, PID: os.Getpid()})
	if err != nil {
		if mode == "on" {
			return nil, nil, fmt.Errorf("--probe on: %w", err)
		}
		log.Warn("running without eBPF probes", "err", err)
		return nil, err, nil
	}
	for name, err := range p.Disabled() {
		log.Warn("an eBPF probe could not load; the others run", "probe", name, "err", err)
	}
	log.Info("eBPF probes loaded", "ports", ports)
	return p, nil, nil
}
