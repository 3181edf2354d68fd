package interpose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// Candidate is a transport that may reach the server, with what probing it
// measured: round-trip latency of a null call and bandwidth of echoed
// payloads, or why it failed.
type Candidate struct {
	Transport string
	Endpoint  string
	Latency   transport.Stats
	Bandwidth float64 // bytes per second, both ways averaged
	Err       error
}

// Selection is the outcome of choosing a transport.
type Selection struct {
	Candidates []Candidate
	// CallLane is the transport with the lowest measured latency, which
	// carries every call; BulkLane the one with the highest bandwidth, which
	// carries large payloads. When they differ the session has a second
	// connection for the bulk lane; on every host measured so far both pick
	// the same transport (shared memory on one host, TCP across hosts).
	CallLane, BulkLane string
	Reason             string
}

// String is the one-line summary the server logs and smi shows.
func (s Selection) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "call lane %s, bulk lane %s (%s)", s.CallLane, s.BulkLane, s.Reason)
	for _, c := range s.Candidates {
		if c.Err != nil {
			fmt.Fprintf(&b, "; %s failed: %v", c.Transport, c.Err)
		} else if c.Latency.Samples > 0 {
			fmt.Fprintf(&b, "; %s p50 %v p99 %v %.0f MB/s", c.Transport, c.Latency.P50, c.Latency.P99, c.Bandwidth/1e6)
		}
	}
	return b.String()
}

// Probing sizes: enough round trips for a stable median, and echoes large
// enough to reach each transport's bulk path (its eager limit is 64 KiB),
// while the whole probe stays within a few tens of milliseconds (50-65 on
// the development VM against a server in the same process, 32-43 with the
// 1 MiB echoes that chose wrongly; most of it is TCP's echoes): every
// process that initialises CUDA pays it. Echoes are 4 MiB, where shared memory's
// chunks pipeline; at 1 MiB both transports on one host are one copy in
// cache each way and measure alike. The first echo is not timed (it pays
// for buffers touched for the first time on both sides, a fixed cost that
// made a transport moving 10 GB/s measure below one moving 2), and the
// best of the others counts, as a preempted echo says nothing of the path.
const (
	probePings     = 64
	probeEchoSize  = 4 << 20
	probeEchoCount = 3
)

// bulkMargin is how much more bandwidth than the call lane's a transport
// must measure to carry the bulk lane apart from it.
const bulkMargin = 1.25

// ErrUnknownTransport is returned for a transport name Connect does not know.
var ErrUnknownTransport = errors.New("interpose: unknown transport")

// Connect opens a session on the best transport that reaches the server at
// addr: it says Hello over TCP, learns what the server offers, and when the
// server shares this host (their boot ids match) measures shared memory
// against TCP. The lowest latency wins the call lane, which carries every
// call; the highest bandwidth wins the bulk lane, which carries large
// copies' payloads on a second connection when it is another transport
// and moves a quarter more than the call lane's (bulkMargin).
// opts.Transport, or $GPUFABRIC_TRANSPORT, forces the call lane's
// transport; opts.BulkTransport, or $GPUFABRIC_BULK_TRANSPORT, the bulk
// lane's. The choice and its measurements are in Session.Selection and are
// told to the server.
func Connect(ctx context.Context, addr string, opts Options) (*Session, error) {
	forced, err := transportChoice(opts.Transport, "GPUFABRIC_TRANSPORT")
	if err != nil {
		return nil, err
	}
	forcedBulk, err := transportChoice(opts.BulkTransport, "GPUFABRIC_BULK_TRANSPORT")
	if err != nil {
		return nil, err
	}
	s, sel, endpoints, err := connectCallLane(ctx, addr, opts, forced)
	if err != nil {
		return nil, err
	}
	if forcedBulk != "" {
		sel.BulkLane = forcedBulk
		sel.Reason += "; bulk lane forced"
	}
	if sel.BulkLane != sel.CallLane {
		err := fmt.Errorf("no %s endpoint of the server reaches this host", sel.BulkLane)
		if endpoint := endpoints[sel.BulkLane]; endpoint != "" {
			err = s.joinBulk(ctx, sel.BulkLane, endpoint)
		}
		if err != nil {
			if forcedBulk != "" {
				s.Close()
				return nil, fmt.Errorf("interpose: bulk lane %s forced, but: %w", forcedBulk, err)
			}
			sel.Reason += fmt.Sprintf("; bulk lane %s failed (%v), so it is the call lane's", sel.BulkLane, err)
			sel.BulkLane = sel.CallLane
		}
	}
	s.settle(sel)
	return s, nil
}

// transportChoice is a forced transport from opt or, when that is empty,
// the environment variable env: "" for none.
func transportChoice(opt, env string) (string, error) {
	if opt == "" {
		opt = os.Getenv(env)
	}
	switch opt {
	case "", "auto":
		return "", nil
	case tcp.Name, shm.Name, rdma.Name:
		return opt, nil
	}
	return "", fmt.Errorf("%w %q: want tcp, shm, rdma or auto", ErrUnknownTransport, opt)
}

// connectCallLane opens the session on the call lane's transport, forced
// or measured, and returns it with the selection so far and the endpoint
// of each transport that reaches the server.
func connectCallLane(ctx context.Context, addr string, opts Options, forced string) (*Session, Selection, map[string]string, error) {
	endpoints := map[string]string{tcp.Name: addr}
	boot, err := Dial(ctx, addr, opts)
	if err != nil {
		return nil, Selection{}, nil, err
	}
	endpoint, reason := shmEndpoint(boot.hello)
	if endpoint != "" {
		endpoints[shm.Name] = endpoint
	}
	if ep := rdmaEndpoint(boot.hello, addr); ep != "" {
		endpoints[rdma.Name] = ep // for a bulk lane, when the call lane is forced
	}
	if forced == tcp.Name {
		return boot, Selection{CallLane: tcp.Name, BulkLane: tcp.Name, Reason: "forced"}, endpoints, nil
	}
	if forced == rdma.Name {
		s, ep, err := dialRDMA(ctx, boot.hello, addr, opts)
		boot.Close()
		if err != nil {
			return nil, Selection{}, nil, fmt.Errorf("interpose: RDMA forced: %w", err)
		}
		endpoints[rdma.Name] = ep
		return s, Selection{CallLane: rdma.Name, BulkLane: rdma.Name, Reason: "forced"}, endpoints, nil
	}
	if endpoint == "" && forced == shm.Name {
		boot.Close()
		return nil, Selection{}, nil, fmt.Errorf("interpose: shared memory forced, but %s", reason)
	}
	sessions := map[string]*Session{tcp.Name: boot}
	var failed []Candidate
	if endpoint == "" {
		failed = append(failed, Candidate{Transport: shm.Name, Err: errors.New(reason)})
	} else {
		fast, err := dialShm(ctx, endpoint, opts)
		if forced == shm.Name {
			boot.Close()
			if err != nil {
				return nil, Selection{}, nil, err
			}
			return fast, Selection{CallLane: shm.Name, BulkLane: shm.Name, Reason: "forced"}, endpoints, nil
		}
		if err != nil {
			delete(endpoints, shm.Name)
			failed = append(failed, Candidate{Transport: shm.Name, Endpoint: endpoint, Err: err})
		} else {
			sessions[shm.Name] = fast
		}
	}
	// RDMA is measured only when offered: a server without it says so in
	// its offers, and the candidate would be noise in every selection.
	if rdmaEndpoint(boot.hello, addr) != "" {
		if fast, ep, err := dialRDMA(ctx, boot.hello, addr, opts); err != nil {
			failed = append(failed, Candidate{Transport: rdma.Name, Endpoint: ep, Err: err})
		} else {
			sessions[rdma.Name], endpoints[rdma.Name] = fast, ep
		}
	}
	if len(sessions) == 1 {
		sel := Selection{CallLane: tcp.Name, BulkLane: tcp.Name, Candidates: failed}
		switch {
		case len(failed) == 1 && failed[0].Endpoint == "":
			sel.Reason = reason
		case len(failed) == 1 && failed[0].Transport == shm.Name:
			sel.Reason = "shared memory failed; TCP always works"
		default:
			sel.Reason = "no other transport reached the server; TCP always works"
		}
		return boot, sel, endpoints, nil
	}
	sel := measure(sessions, endpoints)
	sel.Candidates = append(sel.Candidates, failed...)
	keep := sessions[sel.CallLane]
	for _, s := range sessions {
		if s != keep {
			s.Close()
		}
	}
	return keep, sel, endpoints, nil
}

// Probe measures every transport that reaches the server at addr, as
// Connect would, and keeps no session: `gpufabric diag` shows the result.
func Probe(ctx context.Context, addr string, opts Options) (Selection, error) {
	boot, err := Dial(ctx, addr, opts)
	if err != nil {
		return Selection{}, err
	}
	defer boot.Close()
	sessions := map[string]*Session{tcp.Name: boot}
	endpoints := map[string]string{tcp.Name: addr}
	var failed []Candidate
	if endpoint, reason := shmEndpoint(boot.hello); endpoint == "" {
		failed = append(failed, Candidate{Transport: shm.Name, Err: errors.New(reason)})
	} else if fast, err := dialShm(ctx, endpoint, opts); err != nil {
		failed = append(failed, Candidate{Transport: shm.Name, Endpoint: endpoint, Err: err})
	} else {
		defer fast.Close()
		sessions[shm.Name], endpoints[shm.Name] = fast, endpoint
	}
	if rdmaEndpoint(boot.hello, addr) != "" { // as in connectCallLane
		if fast, endpoint, err := dialRDMA(ctx, boot.hello, addr, opts); err != nil {
			failed = append(failed, Candidate{Transport: rdma.Name, Endpoint: endpoint, Err: err})
		} else {
			defer fast.Close()
			sessions[rdma.Name], endpoints[rdma.Name] = fast, endpoint
		}
	}
	sel := measure(sessions, endpoints)
	sel.Candidates = append(sel.Candidates, failed...)
	return sel, nil
}

// shmEndpoint returns the server's shared-memory endpoint when this client
// can use it, or why not.
func shmEndpoint(h api.HelloReply) (endpoint, whyNot string) {
	var offered string
	for _, o := range h.Offers {
		if name, ep, ok := strings.Cut(o, ":"); ok && name == shm.Name {
			offered = ep
		}
	}
	switch mine := bootID(); {
	case offered == "":
		return "", "the server offers no shared memory"
	case mine == "" || h.BootID != mine:
		return "", "the server is on another host (boot ids differ)"
	}
	return offered, ""
}

func dialShm(ctx context.Context, endpoint string, opts Options) (*Session, error) {
	conn, err := opts.dialShm(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	return Open(ctx, conn, opts)
}

// measure probes each session's connection and picks the lanes.
func measure(sessions map[string]*Session, endpoints map[string]string) Selection {
	var sel Selection
	for _, name := range sortedKeys(sessions) {
		c := Candidate{Transport: name, Endpoint: endpoints[name]}
		c.Latency, c.Bandwidth, c.Err = probe(sessions[name])
		sel.Candidates = append(sel.Candidates, c)
	}
	sel.CallLane, sel.BulkLane, sel.Reason = pickLanes(sel.Candidates)
	return sel
}

// pickLanes gives the call lane to the candidate with the lowest median
// latency and the bulk lane to the one with the highest bandwidth, unless
// that one is not bulkMargin faster than the call lane's transport: a bulk
// lane apart from the call lane costs a second connection and, per copy,
// an announcement on the call lane. Failed candidates take no part; when
// all failed, TCP takes both lanes.
func pickLanes(candidates []Candidate) (call, bulk, reason string) {
	var bestLat time.Duration
	var bestBW, callBW float64
	for _, c := range candidates {
		if c.Err != nil {
			continue
		}
		if call == "" || c.Latency.P50 < bestLat {
			call, bestLat, callBW = c.Transport, c.Latency.P50, c.Bandwidth
		}
		if bulk == "" || c.Bandwidth > bestBW {
			bulk, bestBW = c.Transport, c.Bandwidth
		}
	}
	switch {
	case call == "":
		return tcp.Name, tcp.Name, "every probe failed; TCP always works"
	case bulk != call && bestBW < bulkMargin*callBW:
		return call, call, fmt.Sprintf("measured: lowest p50 latency wins the call lane, which keeps the bulk lane: no transport moves %.0f%% more", (bulkMargin-1)*100)
	}
	return call, bulk, "measured: lowest p50 latency wins the call lane, highest bandwidth the bulk lane"
}

func probe(s *Session) (transport.Stats, float64, error) {
	samples := make([]time.Duration, 0, probePings)
	for range probePings {
		t := time.Now()
		if err := s.Ping(); err != nil {
			return transport.Stats{}, 0, err
		}
		samples = append(samples, time.Since(t))
	}
	payload := make([]byte, probeEchoSize)
	back := make([]byte, probeEchoSize)
	var best time.Duration
	for i := range 1 + probeEchoCount {
		start := time.Now()
		if err := s.call(&api.Echo{}, nil, payload, back); err != nil {
			return transport.Stats{}, 0, err
		}
		if d := time.Since(start); i > 0 && (best == 0 || d < best) {
			best = d
		}
	}
	return transport.Percentiles(samples), float64(2*probeEchoSize) / best.Seconds(), nil
}

func sortedKeys(m map[string]*Session) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// settle records the selection and tells the server.
func (s *Session) settle(sel Selection) {
	s.selection = sel
	s.send(&api.Describe{Selection: sel.String()}, nil)
}

// Selection is how the session's transport was chosen.
func (s *Session) Selection() Selection { return s.selection }
