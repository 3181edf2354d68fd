package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startStore runs an embedded etcd in a temporary directory on free ports
// and returns a client of it; both end with the test.
func startStore(t testing.TB) *clientv3.Client {
	_, cli := startEmbedded(t)
	return cli
}

// startEmbedded is startStore that also returns the store.
func startEmbedded(t testing.TB) (*Embedded, *clientv3.Client) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli, err := Connect(context.Background(), StoreConfig{Endpoints: []string{e.ClientURL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return e, cli
}

// fakeServer registers a server of n devices of mem bytes each.
func fakeServer(t testing.TB, cli *clientv3.Client, name string, n int, mem uint64, ttl time.Duration) *Agent {
	t.Helper()
	info := Server{Name: name, Host: "host-" + name, Addr: "127.0.0.1:1", Offers: []string{"tcp:127.0.0.1:1"}}
	for i := range n {
		info.Devices = append(info.Devices, Device{Index: i, Name: "emulated", Memory: mem, Backend: "host", Node: i % 2, Health: "ok"})
	}
	a, err := Join(context.Background(), cli, info, ttl, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func newClient(t testing.TB, cli *clientv3.Client, who Identity) *Client {
	t.Helper()
	c, err := NewClient(context.Background(), cli, who)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// lease grants a lease of ttl that nobody keeps alive.
func lease(t testing.TB, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	l, err := cli.Grant(context.Background(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// held reads the bytes held on every device back from the store.
func held(t testing.TB, cli *clientv3.Client) map[string]uint64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), Prefix+"dev/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), Prefix+"dev/")
		dev, _, ok := strings.Cut(k, "/h/")
		if !ok {
			continue
		}
		var n uint64
		fmt.Sscan(string(kv.Value), &n)
		out[dev] += n
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const gib = 1 << 30

func TestReserveAndRelease(t *testing.T) {
	cli := startStore(t)
	fakeServer(t, cli, "a", 2, gib, time.Second)
	c := newClient(t, cli, Identity{User: "ann", Group: "lab"})
	ctx := context.Background()
	r, err := c.Reserve(ctx, Request{N: 2, Share: Share{Fraction: 0.5}, Lease: lease(t, cli, 30), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Holds) != 2 || r.Holds[0].Device == r.Holds[1].Device {
		t.Fatalf("holds %+v: want two different devices", r.Holds)
	}
	if h := held(t, cli); h["a/0"] != gib/2 || h["a/1"] != gib/2 {
		t.Fatalf("held %v: want half of each device", h)
	}
	// Half of each is left: a whole device does not fit, a half does.
	if _, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 1}, Lease: lease(t, cli, 30), Node: -1}); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("a whole device on a half-held pool: %v, want ErrNoCapacity", err)
	}
	other := newClient(t, cli, Identity{User: "bob"})
	if err := other.Release(ctx, r.ID); err == nil {
		t.Fatal("bob released ann's reservation")
	}
	if err := c.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if h := held(t, cli); len(h) != 0 {
		t.Fatalf("held after release: %v", h)
	}
	if err := c.Release(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second release: %v, want ErrNotFound", err)
	}
	if _, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 1}, Lease: lease(t, cli, 30), Node: -1}); err != nil {
		t.Fatalf("a whole device after release: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	cli := startStore(t)
	fakeServer(t, cli, "a", 1, gib, time.Second)
	c := newClient(t, cli, Identity{User: "ann"})
	l := lease(t, cli, 30)
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"no devices", Request{N: 0, Share: Share{Fraction: 1}, Lease: l}},
		{"too many devices", Request{N: 65, Share: Share{Fraction: 1}, Lease: l}},
		{"fraction above one", Request{N: 1, Share: Share{Fraction: 1.5}, Lease: l}},
		{"no share", Request{N: 1, Lease: l}},
		{"no lease", Request{N: 1, Share: Share{Fraction: 1}}},
		{"more devices than the pool", Request{N: 2, Share: Share{Fraction: 0.1}, Lease: l}},
		{"more bytes than a device", Request{N: 1, Share: Share{Bytes: 2 * gib}, Lease: l}},
	} {
		if _, err := c.Reserve(context.Background(), tc.req); err == nil {
			t.Errorf("%s: reserved", tc.name)
		}
	}
	if h := held(t, cli); len(h) != 0 {
		t.Fatalf("bad requests left holds: %v", h)
	}
}

func TestQuotas(t *testing.T) {
	cli := startStore(t)
	fakeServer(t, cli, "a", 4, gib, time.Second)
	ctx := context.Background()
	if err := SetQuota(ctx, cli, "user", "ann", Quota{MaxDevices: 2, MaxDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := SetQuota(ctx, cli, "group", "lab", Quota{MaxBytes: 3 * gib / 2}); err != nil {
		t.Fatal(err)
	}
	ann := newClient(t, cli, Identity{User: "ann", Group: "lab"})
	r, err := ann.Reserve(ctx, Request{N: 2, Share: Share{Fraction: 0.5}, Lease: lease(t, cli, 30), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Expires.Sub(r.Created); d != time.Hour {
		t.Fatalf("time limit %v: want the quota's hour", d)
	}
	if _, err := ann.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.1}, Lease: lease(t, cli, 30), Node: -1}); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "devices") {
		t.Fatalf("a third device: %v, want the device quota", err)
	}
	if _, err := ann.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.1}, Duration: 2 * time.Hour, Lease: lease(t, cli, 30), Node: -1}); !errors.Is(err, ErrQuota) {
		t.Fatalf("two hours: %v, want the duration quota", err)
	}
	bob := newClient(t, cli, Identity{User: "bob", Group: "lab"})
	if _, err := bob.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 1}, Lease: lease(t, cli, 30), Node: -1}); !errors.Is(err, ErrQuota) || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("a whole device past the group's memory: %v, want the memory quota", err)
	}
	if _, err := bob.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.5}, Lease: lease(t, cli, 30), Node: -1}); err != nil {
		t.Fatalf("half a device within the group's memory: %v", err)
	}
}

func TestTokens(t *testing.T) {
	cli := startStore(t)
	ctx := context.Background()
	tok, err := CreateToken(ctx, cli, Identity{User: "ann", Group: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	who, err := Identify(ctx, cli, tok)
	if err != nil || who.User != "ann" || who.Group != "lab" {
		t.Fatalf("Identify: %+v, %v", who, err)
	}
	resp, err := cli.Get(ctx, Prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key)+string(kv.Value), tok) {
			t.Fatalf("the token is stored in the clear at %s", kv.Key)
		}
	}
	for _, bad := range []string{"", "ann", tok + "x", tokenPrefix + "AAAA"} {
		if _, err := Identify(ctx, cli, bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Identify(%q): %v, want ErrBadToken", bad, err)
		}
	}
	if err := RevokeToken(ctx, cli, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := Identify(ctx, cli, tok); !errors.Is(err, ErrBadToken) {
		t.Fatalf("a revoked token: %v", err)
	}
	old, err := CreateToken(ctx, cli, Identity{User: "ann", Expires: time.Now().Add(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Identify(ctx, cli, old); !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired token: %v", err)
	}
	if _, err := CreateToken(ctx, cli, Identity{User: "a/b"}); err == nil {
		t.Fatal("a user name with a slash was accepted")
	}
}

func TestCapabilities(t *testing.T) {
	cli := startStore(t)
	a := fakeServer(t, cli, "a", 2, gib, time.Second)
	fakeServer(t, cli, "b", 1, gib, time.Second)
	c := newClient(t, cli, Identity{User: "ann"})
	ctx := context.Background()
	r, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.5}, Lease: lease(t, cli, 30), Node: -1, Host: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Holds[0].Server != "a" {
		t.Fatalf("placed on %s: want a, the client's host", r.Holds[0].Server)
	}
	capA, err := c.Capability(r, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Capability(r, "b"); err == nil {
		t.Fatal("a capability for a server the reservation does not use")
	}
	dev := r.Holds[0].Device
	g, err := a.Authorize(engine.AttachRequest{Session: 1, Credential: capA, Device: -1})
	if err != nil || g.Device != dev || g.Bytes != gib/2 || g.Key != r.ID {
		t.Fatalf("Authorize: %+v, %v", g, err)
	}
	// The same capability for a second session while the first holds it.
	if _, err := a.Authorize(engine.AttachRequest{Session: 2, Credential: capA, Device: -1}); !errors.Is(err, ErrBadCapability) || !strings.Contains(err.Error(), "already") {
		t.Fatalf("reused: %v", err)
	}
	// The session has the only device it backs.
	if _, err := a.Authorize(engine.AttachRequest{Session: 1, Credential: capA, Device: -1, Held: []int{dev}}); !errors.Is(err, ErrBadCapability) {
		t.Fatalf("a second device: %v", err)
	}
	g.Release()
	if _, err := a.Authorize(engine.AttachRequest{Session: 2, Credential: capA, Device: -1}); err != nil {
		t.Fatalf("after the first let go: %v", err)
	}

	tampered := forge(t, capA, func(cl *Claims) { cl.Bytes[0] = gib })
	otherKey := make([]byte, 32)
	foreign, _ := Capability(otherKey, r, "a")
	expired := r
	expired.Expires = time.Now().Add(-time.Second)
	expiredCap, _ := c.Capability(expired, "a")
	for _, tc := range []struct{ name, cred, want string }{
		{"none", "", "through the pool"},
		{"a server token", "s3cret", "through the pool"},
		{"garbage", capPrefix + "!!!", "malformed"},
		{"tampered", tampered, "signature"},
		{"another pool's", foreign, "signature"},
		{"expired", expiredCap, "time limit"},
	} {
		if _, err := a.Authorize(engine.AttachRequest{Session: 3, Credential: tc.cred, Device: -1}); !errors.Is(err, ErrBadCapability) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadCapability saying %q", tc.name, err, tc.want)
		}
	}
	if err := c.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(engine.AttachRequest{Session: 4, Credential: capA, Device: -1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after release: %v, want ErrNotFound", err)
	}
}

// forge re-signs nothing: it edits a capability's claims and keeps the
// old signature, as a client widening its grant would.
func forge(t *testing.T, capability string, edit func(*Claims)) string {
	t.Helper()
	body, sig, _ := strings.Cut(strings.TrimPrefix(capability, capPrefix), ".")
	c, err := ParseCapability(nil, capability, time.Now())
	_ = err // the nil key fails the signature; decode by hand
	raw, _ := decodeB64(body)
	if err := jsonUnmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	edit(&c)
	nb, _ := jsonMarshal(c)
	return capPrefix + encodeB64(nb) + "." + sig
}

func TestRevokeOnRelease(t *testing.T) {
	cli := startStore(t)
	a := fakeServer(t, cli, "a", 1, gib, time.Second)
	var mu sync.Mutex
	revoked := map[string]string{}
	a.SetRevoke(func(key string, reason error) int {
		mu.Lock()
		revoked[key] += reason.Error() + "\n"
		mu.Unlock()
		return 1
	})
	c := newClient(t, cli, Identity{User: "ann"})
	ctx := context.Background()
	r, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.5}, Lease: lease(t, cli, 30), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the server ends the released reservation's sessions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(revoked[r.ID], "released")
	})
	// A time limit: the server ends it when it passes, and frees it in the store.
	r, err = c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.5}, Duration: 300 * time.Millisecond, Lease: lease(t, cli, 30), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	capA, _ := c.Capability(r, "a")
	if _, err := a.Authorize(engine.AttachRequest{Session: 1, Credential: capA, Device: -1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the server ends the reservation at its time limit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(revoked[r.ID], "time limit")
	})
	eventually(t, 5*time.Second, "the expired reservation's capacity returns", func() bool { return len(held(t, cli)) == 0 })
}

func TestServerLeavesWithinTTL(t *testing.T) {
	cli := startStore(t)
	info := Server{Name: "doomed", Devices: []Device{{Index: 0, Memory: gib, Health: "ok"}}}
	a, err := Join(context.Background(), cli, info, time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(context.Background(), cli, info, time.Second, quiet); err == nil {
		t.Fatal("a second server took a live server's name")
	}
	c := newClient(t, cli, Identity{User: "ann"})
	r, err := c.Reserve(context.Background(), Request{N: 1, Share: Share{Fraction: 1}, Lease: lease(t, cli, 30), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Die: stop keeping the lease alive without revoking it.
	a.cancel()
	<-a.done
	died := time.Now()
	eventually(t, 10*time.Second, "the dead server leaves the pool", func() bool { return len(c.View().Snapshot().Servers) == 0 })
	t.Logf("left the pool %v after it died (TTL 1 s, raised by etcd to 2 s)", time.Since(died).Round(10*time.Millisecond))
	s := c.View().Snapshot()
	if lost := s.Lost(); len(lost) != 1 || lost[0] != r.ID {
		t.Fatalf("lost reservations %v: want [%s]", lost, r.ID)
	}
}

func TestChoosePolicies(t *testing.T) {
	mk := func(server string, idx int, free uint64, local int) candidate {
		return candidate{server: server, dev: &Device{Index: idx, Memory: 100}, free: free, local: local}
	}
	for _, tc := range []struct {
		name   string
		cands  []candidate
		n      int
		policy Policy
		want   []string
	}{
		{"least loaded", []candidate{mk("a", 0, 10, 0), mk("b", 0, 90, 0)}, 1, LeastLoaded, []string{"b/0"}},
		{"same host first", []candidate{mk("a", 0, 10, 1), mk("b", 0, 90, 0)}, 1, LeastLoaded, []string{"a/0"}},
		{"same node before same host", []candidate{mk("a", 0, 90, 1), mk("a", 1, 10, 2)}, 1, LeastLoaded, []string{"a/1"}},
		{"pack takes the fullest", []candidate{mk("a", 0, 10, 0), mk("b", 0, 90, 0)}, 1, Pack, []string{"a/0"}},
		{"one server for all", []candidate{mk("a", 0, 90, 0), mk("b", 0, 80, 0), mk("b", 1, 70, 0)}, 2, LeastLoaded, []string{"b/0", "b/1"}},
		{"spread over servers", []candidate{mk("a", 0, 90, 0), mk("a", 1, 85, 0), mk("b", 0, 50, 0)}, 2, Spread, []string{"a/0", "b/0"}},
		{"span when no server fits all", []candidate{mk("a", 0, 90, 0), mk("b", 0, 80, 0)}, 2, LeastLoaded, []string{"a/0", "b/0"}},
	} {
		got, err := choose(tc.cands, tc.n, tc.policy)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var names []string
		for _, c := range got {
			names = append(names, fmt.Sprintf("%s/%d", c.server, c.dev.Index))
		}
		if strings.Join(names, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: chose %v, want %v", tc.name, names, tc.want)
		}
	}
	if _, err := choose([]candidate{mk("a", 0, 90, 0)}, 2, LeastLoaded); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("two of one: %v", err)
	}
}

// TestChecker races many clients' request, release and kill cycles against
// a small pool and reads the store back throughout: no device is ever
// booked past its memory, and nothing is held once the clients are gone.
func TestChecker(t *testing.T) {
	cli := startStore(t)
	for _, s := range []string{"a", "b", "c"} {
		fakeServer(t, cli, s, 2, gib, time.Second)
	}
	clients, cycles := 12, 25
	if testing.Short() {
		cycles = 8
	}
	stop := make(chan struct{})
	var over atomic.Value
	var checks atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the checker
		defer wg.Done()
		for {
			for dev, n := range held(t, cli) {
				if n > gib {
					over.Store(fmt.Sprintf("device %s booked %d bytes of %d", dev, n, gib))
				}
			}
			checks.Add(1)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	var granted, refused, killed atomic.Int64
	var cwg sync.WaitGroup
	for i := range clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			c, err := NewClient(context.Background(), cli, Identity{User: fmt.Sprintf("u%d", i)})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			shares := []float64{0.25, 0.5, 0.3, 1}
			for j := range cycles {
				l, err := cli.Grant(context.Background(), 1)
				if err != nil {
					t.Error(err)
					return
				}
				r, err := c.Reserve(context.Background(), Request{N: 1 + j%2, Share: Share{Fraction: shares[(i+j)%len(shares)]}, Lease: l.ID, Node: -1, Policy: Policy(j % 3)})
				switch {
				case errors.Is(err, ErrNoCapacity):
					refused.Add(1)
					_, _ = cli.Revoke(context.Background(), l.ID)
					continue
				case err != nil:
					t.Error(err)
					return
				}
				granted.Add(1)
				if j%4 == 3 {
					killed.Add(1) // the client dies: its lease runs out unrenewed
					continue
				}
				if err := c.Release(context.Background(), r.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	cwg.Wait()
	eventually(t, 10*time.Second, "every hold is gone once the killed clients' leases run out", func() bool { return len(held(t, cli)) == 0 })
	close(stop)
	wg.Wait()
	if v := over.Load(); v != nil {
		t.Fatal(v)
	}
	t.Logf("%d granted, %d refused for want of room, %d killed; %d read-backs of the store", granted.Load(), refused.Load(), killed.Load(), checks.Load())
	if granted.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("the pool was never full or never lent (%d granted, %d refused): the test checks nothing", granted.Load(), refused.Load())
	}
}

// TestStoreUnreachable cuts the network between a client and the store:
// a new request fails with ErrUnavailable within its deadline instead of
// hanging, and so does a new connection.
func TestStoreUnreachable(t *testing.T) {
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	p := newCutProxy(t, strings.TrimPrefix(e.ClientURL, "http://"))
	cli, err := Connect(context.Background(), StoreConfig{Endpoints: []string{"http://" + p.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	fakeServer(t, cli, "a", 1, gib, time.Second)
	c := newClient(t, cli, Identity{User: "ann"})
	l := lease(t, cli, 30)
	p.cut()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.5}, Lease: l, Node: -1})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a request with the store cut off: %v, want ErrUnavailable", err)
	}
	if _, err := Connect(context.Background(), StoreConfig{Endpoints: []string{"http://" + p.addr()}, DialTimeout: 500 * time.Millisecond}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("connecting through the cut: %v", err)
	}
}

// cutProxy forwards TCP to the store until cut, then drops every
// connection and every new one, until restored: a network partition.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestRejoinAfterPartition cuts a server off the store for longer than its
// TTL: it leaves the pool; a reservation it served is released meanwhile.
// When the network returns the server joins again, says in its record
// that it lost its registration, and ends the sessions of the reservation
// that ended while it could not see.
func TestRejoinAfterPartition(t *testing.T) {
	cli := startStore(t)
	url := cli.Endpoints()[0]
	p := newCutProxy(t, strings.TrimPrefix(url, "http://"))
	scli, err := Connect(context.Background(), StoreConfig{Endpoints: []string{"http://" + p.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scli.Close() })
	a := fakeServer(t, scli, "a", 1, gib, time.Second)
	var mu sync.Mutex
	var reasons []string
	a.SetRevoke(func(key string, reason error) int {
		mu.Lock()
		reasons = append(reasons, reason.Error())
		mu.Unlock()
		return 1
	})
	c := newClient(t, cli, Identity{User: "ann"})
	ctx := context.Background()
	r, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 1}, Lease: lease(t, cli, 60), Node: -1})
	if err != nil {
		t.Fatal(err)
	}
	capA, _ := c.Capability(r, "a")
	if _, err := a.Authorize(engine.AttachRequest{Session: 1, Credential: capA, Device: -1}); err != nil {
		t.Fatal(err)
	}
	p.cut()
	eventually(t, 10*time.Second, "the cut-off server leaves the pool", func() bool { return len(c.View().Snapshot().Servers) == 0 })
	if err := c.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	p.restore()
	eventually(t, 30*time.Second, "the server joins again", func() bool { return len(c.View().Snapshot().Servers) == 1 })
	if s := c.View().Snapshot().Servers[0]; !strings.Contains(s.LastError, "registration lost") {
		t.Errorf("the rejoined server's last error: %q", s.LastError)
	}
	eventually(t, 10*time.Second, "the released reservation's sessions end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reasons) > 0 && strings.Contains(reasons[0], "out of reach")
	})
}

func TestUnhealthyDeviceIsNotPlaced(t *testing.T) {
	cli := startStore(t)
	a := fakeServer(t, cli, "a", 2, gib, time.Second)
	if err := a.UpdateHealth(context.Background(), map[int]string{0: "Xid 79: fallen off the bus"}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, cli, Identity{User: "ann"})
	eventually(t, 5*time.Second, "the view sees the health", func() bool {
		s := c.View().Snapshot()
		return len(s.Servers) == 1 && s.Servers[0].Devices[0].Health != "ok"
	})
	if _, err := c.Reserve(context.Background(), Request{N: 2, Share: Share{Fraction: 0.1}, Lease: lease(t, cli, 30), Node: -1}); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("two devices of a server with one unhealthy: %v", err)
	}
	r, err := c.Reserve(context.Background(), Request{N: 1, Share: Share{Fraction: 0.1}, Lease: lease(t, cli, 30), Node: -1})
	if err != nil || r.Holds[0].Device != 1 {
		t.Fatalf("one device: %+v, %v; want device 1", r.Holds, err)
	}
}
