package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/probe"
	"github.com/gpufabric/gpufabric/transport"
)

// Config configures a Server.
type Config struct {
	// Name identifies the server to clients and in smi; the host name by default.
	Name string
	// Token, when set, must be presented by every client in its Hello.
	Token string
	// MinShare is the smallest fraction of a device a session may hold;
	// 1/20 by default.
	MinShare float64
	// MaxStaging bounds the bytes of host-to-device payloads one session may
	// have in flight on the server (read but not yet copied); a client past
	// it is simply not read from until its copies land. 256 MiB by default.
	MaxStaging int64
	// HandshakeTimeout bounds the time from accepting a connection to its
	// Hello: a peer that has not said who it is by then is cut off. 10 s by
	// default.
	HandshakeTimeout time.Duration
	// MaxConns bounds the connections served at once, authenticated or not;
	// MaxConnsPerPeer bounds those of one peer (transport.Info.Peer: a uid
	// for shared memory, an IP address for TCP). Past either, a connection
	// is closed at once with a log line. 4096 and 256 by default.
	MaxConns, MaxConnsPerPeer int
	// SlowConsumer is how long a session's replies may wait for its client
	// to read them before the session is cut off, its queued work dropped
	// and its memory freed, as nats-server cuts a slow consumer. 10 s by
	// default.
	SlowConsumer time.Duration
	// MaxInflight bounds the tasks one session may have queued on the
	// server and not yet run; past it the server stops reading the
	// session's connection until they drain, so the client's next call
	// blocks, as a real driver blocks a launch when its push buffer is
	// full. 1024 by default.
	MaxInflight int
	// MaxModuleImage bounds the size of one module image. 256 MiB by
	// default.
	MaxModuleImage int64
	// MaxStreams, MaxEvents and MaxModules bound the objects one session
	// may hold at once; past them creation fails with a CUDA error. 1024,
	// 65536 and 4096 by default.
	MaxStreams, MaxEvents, MaxModules int
	// Offers are the "transport:address" endpoints advertised in HelloReply.
	Offers []string
	// Pin, when set, is called on each shard's locked thread before it
	// serves, to place it (NUMA) near its device.
	Pin func(device backend.Info) error
	// Node, when set, gives the NUMA node of a device (negative: unknown).
	// A session's connection buffers (a shared-memory region's rings and
	// slabs) then move to the node of the first device the session
	// attaches, where the shard's thread copies out of them.
	Node func(device backend.Info) int
	// Probes, when set, are the eBPF probes the server reports in Status.
	// A shard that keeps an OS thread of its own (its backend binds a
	// context to a thread, as CUDA does) is tracked under ShardRole; on
	// the host backend the shard's goroutine moves between threads and
	// counts under probe.ProcessRole: locking it for the probes' sake cost
	// a third of the launch rate on two vCPUs. ProbeError, when Probes
	// could not be opened, says why, and Status reports it.
	Probes     *probe.Probes
	ProbeError error
	// Authorize, when set, must back every Attach (a server in a pool
	// checks the reservation's capability); see authorize.go.
	Authorize Authorizer
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
}

// What a Config field left at zero (or below) gets.
const (
	DefaultMinShare         = 1.0 / 20
	DefaultMaxStaging       = 256 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxConns         = 4096
	DefaultMaxConnsPerPeer  = 256
	DefaultSlowConsumer     = 10 * time.Second
	DefaultMaxInflight      = 1024
	DefaultMaxModuleImage   = 256 << 20
	DefaultMaxStreams       = 1024
	DefaultMaxEvents        = 65536
	DefaultMaxModules       = 4096
)

// orDefault sets *v to def when it is not positive.
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server is a GPU server: devices, their shards, and the sessions of the
// clients connected to it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	shards  []*shard
	bootID  string
	started time.Time

	stages      stageTimes // every session's sampled calls, by stage
	nextID      atomic.Uint64
	lastRefusal atomic.Int64 // unix nanoseconds of the last refusal logged

	mu        sync.Mutex
	sessions  map[uint64]*session
	listeners map[transport.Listener]struct{}
	conns     int            // connections served, authenticated or not
	perPeer   map[string]int // connections by transport.Info.Peer
	closed    bool
	ipc       ipcRegistry    // exported memory: calls_ipc.go
	quit      chan struct{}  // closed by Close: wakes accept loops backing off
	wg        sync.WaitGroup // sessions
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("engine: server closed")

// NewServer starts a shard for each device. The server owns the devices and
// closes them in Close.
func NewServer(cfg Config, devices []backend.Device) (*Server, error) {
	if len(devices) == 0 {
		return nil, errors.New("engine: no devices")
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	orDefault(&cfg.MinShare, DefaultMinShare)
	orDefault(&cfg.MaxStaging, DefaultMaxStaging)
	orDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&cfg.MaxConns, DefaultMaxConns)
	orDefault(&cfg.MaxConnsPerPeer, DefaultMaxConnsPerPeer)
	orDefault(&cfg.SlowConsumer, DefaultSlowConsumer)
	orDefault(&cfg.MaxInflight, DefaultMaxInflight)
	orDefault(&cfg.MaxModuleImage, DefaultMaxModuleImage)
	orDefault(&cfg.MaxStreams, DefaultMaxStreams)
	orDefault(&cfg.MaxEvents, DefaultMaxEvents)
	orDefault(&cfg.MaxModules, DefaultMaxModules)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		bootID:    BootID(),
		started:   time.Now(),
		sessions:  map[uint64]*session{},
		listeners: map[transport.Listener]struct{}{},
		perPeer:   map[string]int{},
		quit:      make(chan struct{}),
	}
	for i, dev := range devices {
		var pin func() error
		if cfg.Pin != nil {
			info := dev.Info()
			pin = func() error { return cfg.Pin(info) }
		}
		sh := newShard(i, dev, pin, s.log)
		sh.probes = cfg.Probes
		sh.locked = sh.info.ThreadAffine
		if cfg.Node != nil {
			sh.node = cfg.Node(sh.info)
		}
		errs := make(chan error, 1)
		go sh.run(errs)
		for err := range errs {
			s.log.Warn("shard placement failed; running unpinned", "device", i, "err", err)
		}
		s.shards = append(s.shards, sh)
	}
	go s.watch()
	return s, nil
}

// watch cuts off sessions whose client has not read a reply for the
// slow-consumer deadline: their writes wait on them, and their memory and
// queued work would otherwise be held for as long as they like.
func (s *Server) watch() {
	period := min(max(s.cfg.SlowConsumer/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			s.mu.Lock()
			sessions := make([]*session, 0, len(s.sessions))
			for _, sess := range s.sessions {
				sessions = append(sessions, sess)
			}
			s.mu.Unlock()
			for _, sess := range sessions {
				if w := sess.out.waiting(now); w > s.cfg.SlowConsumer {
					sess.log.Warn("cutting off a slow consumer", "waited", w.Round(time.Millisecond), "deadline", s.cfg.SlowConsumer)
					sess.cut(errSlowConsumer)
				}
			}
		}
	}
}

// BootID identifies this boot of this host: two processes that see the same
// boot id share a host and can share memory.
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		h, _ := os.Hostname()
		return "host:" + h
	}
	return strings.TrimSpace(string(b))
}

// Serve accepts connections on l and serves a session on each until l is
// closed or the server is. No peer can end it: an accept that fails for
// any reason other than a closed listener (a peer that hung up mid
// handshake, the file descriptor limit) is logged and retried after a
// back-off, as net/http's Serve does.
func (s *Server) Serve(l transport.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err == nil {
			delay = 0
			s.ServeConn(c)
			continue
		}
		select {
		case <-s.quit:
			return ErrServerClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("engine: accept on %s: %w", l.Addr(), err)
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		s.log.Warn("accept failed; retrying", "listener", l.Addr(), "err", err, "retry_in", delay)
		select {
		case <-time.After(delay):
		case <-s.quit:
			return ErrServerClosed
		}
	}
}

// ServeConn serves one session on c in the background. A connection past
// the server's caps (MaxConns, MaxConnsPerPeer) is closed at once.
func (s *Server) ServeConn(c transport.Conn) {
	peer := peerOf(c.Info())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	if s.conns >= s.cfg.MaxConns || s.perPeer[peer] >= s.cfg.MaxConnsPerPeer {
		total, mine := s.conns, s.perPeer[peer]
		s.mu.Unlock()
		c.Close()
		s.refused(peer, total, mine)
		return
	}
	s.conns++
	s.perPeer[peer]++
	sess := newSession(s, s.nextID.Add(1), c)
	sess.peer = peer
	s.sessions[sess.id] = sess
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		sess.serve()
	}()
}

// refused logs a connection refused at the caps, at most once a second, so
// that a flood of connections cannot flood the log too.
func (s *Server) refused(peer string, total, mine int) {
	now := time.Now().UnixNano()
	last := s.lastRefusal.Load()
	if now-last < int64(time.Second) || !s.lastRefusal.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("connection refused: too many connections", "peer", peer,
		"connections", total, "max_conns", s.cfg.MaxConns,
		"peer_connections", mine, "max_conns_per_peer", s.cfg.MaxConnsPerPeer)
}

// peerOf is the identity connection caps count by: the transport's peer
// (a uid, an IP address), else the remote address.
func peerOf(info transport.Info) string {
	if info.Peer != "" {
		return info.Peer
	}
	if host, _, err := net.SplitHostPort(info.Remote); err == nil {
		return info.Transport + ":" + host
	}
	return info.Transport + ":" + info.Remote
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		s.conns--
		if s.perPeer[sess.peer]--; s.perPeer[sess.peer] <= 0 {
			delete(s.perPeer, sess.peer)
		}
	}
	s.mu.Unlock()
	for _, sh := range s.shards {
		sh.queue.forget(sess.id)
	}
}

// Close stops accepting, ends every session (freeing what each held), waits
// for them, and closes the devices.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.closed = true
	close(s.quit)
	for l := range s.listeners {
		l.Close()
	}
	for _, sess := range s.sessions {
		sess.cut(ErrServerClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	var errs []error
	for _, sh := range s.shards {
		close(sh.stop)
		<-sh.done
		errs = append(errs, sh.dev.Close())
	}
	return errors.Join(errs...)
}

// Shutdown is Close bounded by ctx: sessions still running when ctx ends
// are cut off.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Status reports the server's devices and sessions.
func (s *Server) Status() api.Status {
	st := api.Status{Server: s.cfg.Name, Version: api.Version, Started: s.started, Stages: s.stages.summary(), Probes: s.probeStatus(), GoRunQueue: goRunQueue()}
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	perDevice := make([]uint64, len(s.shards))
	for _, sess := range sessions {
		ss := sess.status()
		ss.TCP = connProbe(st.Probes, sess.conn.Info().Local, ss.Remote)
		for _, d := range ss.Devices {
			perDevice[d.Device] += d.UsedBytes
		}
		st.Sessions = append(st.Sessions, ss)
	}
	sortSessions(st.Sessions)
	for i, sh := range s.shards {
		free, total := sh.memInfo()
		sh.ledger.mu.Lock()
		reserved, nsess := sh.ledger.reserved, sh.ledger.sessions
		sh.ledger.mu.Unlock()
		ds := api.DeviceStatus{
			Index: i, Name: sh.info.Name, UUID: formatUUID(sh.info.UUID),
			Backend: sh.info.Backend, Emulated: sh.info.Emulated, PCIBusID: sh.info.PCIBusID,
			TotalBytes: total, FreeBytes: free, ReservedBytes: reserved,
			SessionBytes: perDevice[i], Sessions: nsess,
			Utilization: -1, TemperatureC: -1, PowerWatts: -1, Healthy: true,
		}
		if used := total - free; used > perDevice[i] {
			ds.OtherBytes = used - perDevice[i]
		}
		if m, ok := sh.dev.(backend.Monitor); ok {
			if t, err := m.Telemetry(); err == nil {
				ds.Utilization, ds.TemperatureC, ds.PowerWatts = t.Utilization, t.TemperatureC, t.PowerWatts
				ds.Healthy, ds.Health = t.Healthy, t.Health
			}
		}
		st.Devices = append(st.Devices, ds)
	}
	return st
}

// formatUUID writes a UUID as CUDA and nvidia-smi do: GPU-xxxxxxxx-xxxx-....
func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return "GPU-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
