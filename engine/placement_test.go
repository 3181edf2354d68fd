package engine_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
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
