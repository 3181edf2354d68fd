package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startCluster starts an n-member etcd cluster in this process, each
// member in its own temporary directory on free ports.
func startCluster(t testing.TB, n int) []*Embedded {
	t.Helper()
	var peers, clients, initial []string
	for i := range n {
		peers = append(peers, freeAddr(t))
		clients = append(clients, freeAddr(t))
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, peers[i]))
	}
	members := make([]*Embedded, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { // together: a member is ready only once a quorum is up
			defer wg.Done()
			members[i], errs[i] = StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Name: fmt.Sprintf("m%d", i), Listen: clients[i], Peer: peers[i], Cluster: strings.Join(initial, ",")})
		}()
	}
	wg.Wait()
	for i, m := range members {
		if m != nil {
			t.Cleanup(m.Close)
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	return members
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestClusterLosesAMember kills one member of a 3-member store in the
// middle of racing reservations: reservations keep being granted, and no
// device is ever booked past its memory.
func TestClusterLosesAMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	members := startCluster(t, 3)
	var eps []string
	var proxies []*cutProxy
	for _, m := range members {
		// Clients reach each member through a proxy, so that its death
		// drops their connections at once, as a crashed machine's would.
		p := newCutProxy(t, strings.TrimPrefix(m.ClientURL, "http://"))
		proxies = append(proxies, p)
		eps = append(eps, "http://"+p.addr())
	}
	cli, err := Connect(context.Background(), StoreConfig{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	for _, s := range []string{"a", "b"} {
		fakeServer(t, cli, s, 2, gib, 2*time.Second)
	}
	var before atomic.Int64 // reservations granted before the kill
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := NewClient(context.Background(), cli, Identity{User: fmt.Sprintf("u%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			l := lease(t, cli, 60)
			after := 0
			for after < 10 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.25}, Lease: l, SharedLease: true, Node: -1})
				if err == nil {
					err = End(ctx, cli, r)
				}
				cancel()
				select {
				case <-killed:
					if err == nil {
						after++
					}
				default:
					if err == nil {
						before.Add(1)
					}
				}
				if err != nil && !errors.Is(err, ErrNoCapacity) {
					t.Logf("client %d: %v (retrying)", i, err)
				}
			}
		}()
	}
	eventually(t, 20*time.Second, "reservations before the kill", func() bool { return before.Load() >= 8 })
	// The member dies: its raft stops and its clients' connections drop.
	members[0].etcd.Server.HardStop()
	proxies[0].cut()
	close(killed)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("reservations stopped after a member of three died")
	}
	for dev, n := range held(t, cli) {
		if n > gib {
			t.Fatalf("device %s booked %d bytes of %d", dev, n, gib)
		}
	}
}
