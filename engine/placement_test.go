package engine_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// placingConn is a connection that can move its buffers, as a shared-memory
// one can; it records where it was asked to.
type placingConn struct {
	transport.Conn
	mu    sync.Mutex
	nodes []int
}

func (c *placingConn) PlaceOnNode(node int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append(c.nodes, node)
	return nil
}

func (c *placingConn) placed() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.nodes...)
}

// placingListener hands out placingConns.
type placingListener struct {
	transport.Listener
	accepted chan *placingConn
}

func (l *placingListener) Accept() (transport.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pc := &placingConn{Conn: c}
	l.accepted <- pc
	return pc, nil
}

// A session's connection buffers follow the first device it attaches, and
// only that one; devices on no known node move nothing.
func TestConnectionFollowsFirstDevice(t *testing.T) {
	tests := []struct {
		name   string
		nodes  []int // of devices 0, 1, 2
		attach []int // device indices, in order
		want   []int
	}{
		{"first device's node", []int{0, 1, 1}, []int{1, 0}, []int{1}},
		{"device 0", []int{3, 1, 1}, []int{0, 2}, []int{3}},
		{"unknown node", []int{-1, 1, 1}, []int{0, 1}, nil},
		{"no device", []int{0, 1, 1}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var devs []backend.Device
			for i := range tt.nodes {
				d, err := host.New(host.Config{Index: i, MemorySize: 16 << 20})
				if err != nil {
					t.Fatal(err)
				}
				devs = append(devs, d)
			}
			srv, err := engine.NewServer(engine.Config{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Node:   func(info backend.Info) int { return tt.nodes[info.Index] },
			}, devs)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			tl, err := tcp.Listen("127.0.0.1:0", transport.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l := &placingListener{Listener: tl, accepted: make(chan *placingConn, 1)}
			go srv.Serve(l)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := interpose.Dial(ctx, tl.Addr(), interpose.Options{Client: t.Name()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			conn := <-l.accepted
			for _, i := range tt.attach {
				if _, err := s.Attach(i, interpose.Share{Fraction: 0.5}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Ping(); err != nil { // the move is done before the next call is read
				t.Fatal(err)
			}
			if got := conn.placed(); !slices.Equal(got, tt.want) {
				t.Errorf("buffers placed on nodes %v, want %v", got, tt.want)
			}
		})
	}
}

// Over shared memory the region itself moves: the kernel reports the
// device's node as the preferred one on the region's mappings
// (/proc/self/numa_maps: client and server share this process here). A
// shared-memory bulk lane's region moves too, when the session's own
// connection is TCP.
func TestSharedMemoryRegionFollowsDevice(t *testing.T) {
	for _, tr := range []string{"shm", "tcp+shm"} {
		t.Run(tr, func(t *testing.T) {
			f := newFixtureWith(t, engine.Config{Node: func(backend.Info) int { return 0 }}, 1, 16<<20)
			f.transport = tr
			s := f.dial(t)
			if got := regionPolicies(t); slices.Contains(got, "prefer:0") {
				t.Fatalf("region policies before any device is attached: %v", got)
			}
			if _, err := s.Attach(0, interpose.Share{Fraction: 0.5}); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(); err != nil {
				t.Fatal(err)
			}
			if got := regionPolicies(t); !slices.Contains(got, "prefer:0") {
				t.Fatalf("region policies after attaching a device on node 0: %v, want prefer:0", got)
			}
		})
	}
}

// regionPolicies lists the memory policy of each shared-memory region
// mapped in this process.
func regionPolicies(t *testing.T) []string {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/numa_maps")
	if err != nil {
		t.Skipf("no NUMA maps: %v", err)
	}
	var policies []string
	for line := range strings.Lines(string(maps)) {
		if fields := strings.Fields(line); len(fields) > 2 && strings.Contains(line, "gpufabric-shm") {
			policies = append(policies, fields[1])
		}
	}
	if len(policies) == 0 {
		t.Fatal("no shared-memory region in /proc/self/numa_maps")
	}
	return policies
}
