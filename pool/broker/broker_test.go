package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/pool"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const gib = 1 << 30

// fixture is an embedded store with its broker, a root client of the
// store for the test's own reads, and an admin client of the broker.
type fixture struct {
	p      *Pool
	root   *clientv3.Client
	admin  *Client
	dir    string
	joined *clientv3.Client // the servers' client, made at the first server
}

func start(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	p, err := Start(context.Background(), pool.EmbeddedConfig{Dir: dir, Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	pw, err := os.ReadFile(filepath.Join(dir, "root-password"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := pool.Connect(context.Background(), pool.StoreConfig{Endpoints: []string{p.Store.ClientURL}, Username: pool.RootUser, Password: strings.TrimSpace(string(pw)), DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	f := &fixture{p: p, root: root, dir: dir}
	f.admin = f.client(p.AdminToken)
	return f
}

func (f *fixture) client(token string) *Client {
	c := NewClient([]string{f.p.Store.ClientURL}, nil, token)
	return c
}

// user issues a token for user (group lab) and returns a client with it.
func (f *fixture) user(t testing.TB, user string) *Client {
	t.Helper()
	tok, err := f.admin.CreateToken(context.Background(), pool.Identity{User: user, Group: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	return f.client(tok)
}

// server joins a fake server of n devices of mem bytes the way a real
// one does: a server token exchanged at the broker for the servers'
// store credentials. The servers share one client: each connection
// costs a bcrypt comparison, seconds under the race detector.
func (f *fixture) server(t testing.TB, name string, n int, mem uint64) *pool.Agent {
	t.Helper()
	ctx := context.Background()
	if f.joined == nil {
		tok, err := f.admin.CreateToken(ctx, pool.Identity{User: "servers", Role: pool.RoleServer})
		if err != nil {
			t.Fatal(err)
		}
		cred, err := f.client(tok).Join(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cli, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{f.p.Store.ClientURL}, Username: cred.Username, Password: cred.Password, DialTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		f.joined = cli
	}
	cli := f.joined
	info := pool.Server{Name: name, Host: "host-" + name, Addr: "127.0.0.1:1"}
	for i := range n {
		info.Devices = append(info.Devices, pool.Device{Index: i, Name: "emulated", Memory: mem, Backend: "host", Node: -1, Health: "ok"})
	}
	a, err := pool.Join(ctx, cli, info, 2*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// held reads the bytes held on every device back from the store.
func (f *fixture) held(t testing.TB) map[string]uint64 {
	t.Helper()
	resp, err := f.root.Get(context.Background(), pool.Prefix+"dev/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, kv := range resp.Kvs {
		dev, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), pool.Prefix+"dev/"), "/h/")
		if !ok {
			continue
		}
		var n uint64
		fmt.Sscan(string(kv.Value), &n)
		out[dev] += n
	}
	return out
}

func total(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func req(n int, fraction float64) Request {
	return Request{N: n, Fraction: fraction, TTL: 10 * time.Second, Node: -1}
}

// TestReserveThroughBroker: a user's token reserves; the capabilities the
// broker signed are accepted by the server they name; release frees the
// capacity at once.
func TestReserveThroughBroker(t *testing.T) {
	f := start(t)
	a := f.server(t, "s0", 2, gib)
	ann := f.user(t, "ann")
	ctx := context.Background()
	g, err := ann.Reserve(ctx, req(2, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Reservation.Holds) != 2 || g.Reservation.User != "ann" || len(g.Servers) != 1 || g.Servers[0].Name != "s0" {
		t.Fatalf("grant: %+v", g)
	}
	if got := total(f.held(t)); got != gib {
		t.Errorf("held after reserve: %d bytes, want %d", got, gib)
	}
	grant, err := a.Authorize(engine.AttachRequest{Credential: g.Capabilities["s0"], Device: -1, Session: 1})
	if err != nil {
		t.Fatalf("the server refused the broker's capability: %v", err)
	}
	grant.Release()
	if g2, err := ann.Reservation(ctx, g.Reservation.ID); err != nil || g2.Capabilities["s0"] == "" {
		t.Errorf("looking the reservation up: %+v, %v", g2, err)
	}
	if err := ann.Release(ctx, g.Reservation.ID); err != nil {
		t.Fatal(err)
	}
	if got := total(f.held(t)); got != 0 {
		t.Errorf("held after release: %d bytes", got)
	}
	if _, err := a.Authorize(engine.AttachRequest{Credential: g.Capabilities["s0"], Device: -1, Session: 2}); !errors.Is(err, pool.ErrBadCapability) {
		t.Errorf("a released reservation's capability: %v", err)
	}
	if err := ann.Release(ctx, g.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("releasing twice: %v", err)
	}
}

// TestStoreNotWritableByClients: with the broker's store, a client with
// no credentials, or wrong ones, can neither write nor read; the servers'
// role cannot mint tokens, set quotas or replace the key.
func TestStoreNotWritableByClients(t *testing.T) {
	f := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{f.p.Store.ClientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Put(ctx, pool.Prefix+"tokens/x", `{"user":"mallory"}`); err == nil {
		t.Error("a client without credentials wrote a token")
	}
	if _, err := anon.Get(ctx, pool.Prefix+"key"); err == nil {
		t.Error("a client without credentials read the pool key")
	}
	if _, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{f.p.Store.ClientURL}}); !errors.Is(err, pool.ErrStoreAuth) {
		t.Errorf("connecting without credentials: %v, want %v", err, pool.ErrStoreAuth)
	}
	if _, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{f.p.Store.ClientURL}, Username: pool.RootUser, Password: "guess"}); !errors.Is(err, pool.ErrStoreAuth) {
		t.Errorf("root with a wrong password: %v, want %v", err, pool.ErrStoreAuth)
	}
	srv, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{f.p.Store.ClientURL}, Username: f.p.Server.Username, Password: f.p.Server.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, k := range []string{"tokens/x", "quota/user/ann", "key", "usage/user/ann"} {
		if _, err := srv.Put(ctx, pool.Prefix+k, "{}"); err == nil {
			t.Errorf("the servers' role wrote %s", k)
		}
	}
	if _, err := srv.Get(ctx, pool.Prefix+"key"); err != nil {
		t.Errorf("the servers' role cannot read the pool key: %v", err)
	}
	// The passwords and the admin token are the owner's alone.
	for _, name := range []string{"root-password", "server-password", AdminTokenFile} {
		st, err := os.Stat(filepath.Join(f.dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", name, st.Mode(), err)
		}
	}
}

// TestRestart: a store started again on its data directory keeps its
// authentication, passwords, admin token and tokens.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := pool.EmbeddedConfig{Dir: dir, Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"}
	p, err := Start(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewClient([]string{p.Store.ClientURL}, nil, p.AdminToken).CreateToken(ctx, pool.Identity{User: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	admin := p.AdminToken
	p.Close()
	p, err = Start(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.AdminToken != admin {
		t.Error("the admin token changed at a restart")
	}
	if _, err := NewClient([]string{p.Store.ClientURL}, nil, tok).Pool(ctx); err != nil {
		t.Error(err)
	}
	if _, err := NewClient([]string{p.Store.ClientURL}, nil, tok).Reserve(ctx, req(1, 1)); !errors.Is(err, pool.ErrNoCapacity) {
		t.Errorf("a token from before the restart: %v, want no capacity (no servers)", err)
	}
}

// TestTokensRefused: forged, revoked, expired, missing and wrong-role
// tokens are refused with a message that says which.
func TestTokensRefused(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ctx := context.Background()
	revoked, err := f.admin.CreateToken(ctx, pool.Identity{User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.admin.RevokeToken(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Second)
	expiring, err := f.admin.CreateToken(ctx, pool.Identity{User: "eve", Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	serverTok, err := f.admin.CreateToken(ctx, pool.Identity{User: "servers", Role: pool.RoleServer})
	if err != nil {
		t.Fatal(err)
	}
	userTok, err := f.admin.CreateToken(ctx, pool.Identity{User: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the token to expire", func() bool { return time.Now().After(expires) })
	for _, tc := range []struct {
		name, token string
		want        error
		says        string
	}{
		{"none", "", pool.ErrBadToken, "no token given"},
		{"forged", "gftok_" + strings.Repeat("A", 43), pool.ErrBadToken, "issued no such token, or revoked it"},
		{"not a token", "hunter2", pool.ErrBadToken, "not a pool token"},
		{"revoked", revoked, pool.ErrBadToken, "issued no such token, or revoked it"},
		{"expired", expiring, pool.ErrBadToken, "expired at"},
		{"a server's", serverTok, ErrForbidden, "a server's token"},
		{"the admin's", f.p.AdminToken, pool.ErrBadToken, "not a pool token"},
	} {
		_, err := f.client(tc.token).Reserve(ctx, req(1, 0.1))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	if _, err := f.client(userTok).Join(ctx); !errors.Is(err, ErrForbidden) {
		t.Errorf("a user's token joining as a server: %v", err)
	}
	for _, tok := range []string{userTok, serverTok, "", "gfadm_guess"} {
		if _, err := f.client(tok).CreateToken(ctx, pool.Identity{User: "mallory"}); !errors.Is(err, pool.ErrBadToken) || !strings.Contains(err.Error(), "admin token") {
			t.Errorf("creating a token with %q: %v", tok, err)
		}
		if err := f.client(tok).SetQuota(ctx, "user", "ann", pool.Quota{MaxDevices: 100}); !errors.Is(err, pool.ErrBadToken) {
			t.Errorf("setting a quota with %q: %v", tok, err)
		}
	}
	if _, err := f.admin.CreateToken(ctx, pool.Identity{User: "x", Role: "admin"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a token of role admin: %v", err)
	}
	if _, err := f.admin.CreateToken(ctx, pool.Identity{User: "a/b"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a token for user a/b: %v", err)
	}
	if err := f.admin.RevokeToken(ctx, revoked); !errors.Is(err, pool.ErrBadToken) {
		t.Errorf("revoking twice: %v", err)
	}
	if total(f.held(t)) != 0 {
		t.Error("a refused request left a hold")
	}
}

// TestOwnReservationsOnly: another user can neither renew, look up nor
// release ann's reservation.
func TestOwnReservationsOnly(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ann, bob := f.user(t, "ann"), f.user(t, "bob")
	ctx := context.Background()
	g, err := ann.Reserve(ctx, req(1, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	id := g.Reservation.ID
	if _, err := bob.KeepAlive(ctx, id); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob renewing ann's: %v", err)
	}
	if _, err := bob.Reservation(ctx, id); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob looking ann's up: %v", err)
	}
	if err := bob.Release(ctx, id); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob releasing ann's: %v", err)
	}
	if total(f.held(t)) == 0 {
		t.Error("ann's reservation is gone")
	}
	for _, bad := range []string{"", "../key", "a b"} {
		if _, err := ann.KeepAlive(ctx, bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("id %q: %v", bad, err)
		}
	}
}

// TestQuotaThroughBroker: the broker refuses what passes a quota set by
// the admin, and says which limit.
func TestQuotaThroughBroker(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 4, gib)
	ctx := context.Background()
	if err := f.admin.SetQuota(ctx, "user", "ann", pool.Quota{MaxDevices: 2}); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.SetQuota(ctx, "group", "lab", pool.Quota{MaxBytes: gib}); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.SetQuota(ctx, "team", "x", pool.Quota{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("a quota of a team: %v", err)
	}
	ann, bob := f.user(t, "ann"), f.user(t, "bob")
	if _, err := ann.Reserve(ctx, req(3, 0.1)); !errors.Is(err, pool.ErrQuota) || !strings.Contains(err.Error(), "quota is 2") {
		t.Errorf("3 devices past a quota of 2: %v", err)
	}
	if _, err := ann.Reserve(ctx, req(2, 0.25)); err != nil {
		t.Fatal(err)
	}
	// The group's memory: ann holds half a GiB; bob may take the other half only.
	if _, err := bob.Reserve(ctx, req(1, 0.75)); !errors.Is(err, pool.ErrQuota) || !strings.Contains(err.Error(), "group lab") {
		t.Errorf("bob past the group's memory: %v", err)
	}
	if _, err := bob.Reserve(ctx, req(1, 0.5)); err != nil {
		t.Errorf("bob within the group's memory: %v", err)
	}
	if got := total(f.held(t)); got != gib {
		t.Errorf("held: %d, want %d", got, gib)
	}
}

// TestKilledClientFreesWithinTTL: a holder that renews keeps its
// reservation past the TTL; one that stops (killed) loses it within the
// TTL.
func TestKilledClientFreesWithinTTL(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ann := f.user(t, "ann")
	ctx := context.Background()
	r := req(1, 1)
	// Long enough that a loaded machine (the race detector, other
	// packages' tests) renews in time.
	r.TTL = 3 * time.Second
	g, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	renewedUntil := time.Now().Add(2 * r.TTL)
	for time.Now().Before(renewedUntil) {
		a, err := ann.KeepAlive(ctx, g.Reservation.ID)
		if err != nil || a.TTL < time.Second {
			t.Fatalf("keep-alive %v after the reservation: %+v, %v", time.Until(renewedUntil), a, err)
		}
		time.Sleep(r.TTL / 3)
	}
	if total(f.held(t)) != gib {
		t.Fatal("a renewed reservation was lost")
	}
	stopped := time.Now()
	eventually(t, r.TTL+3*time.Second, "the holds of a holder that stopped renewing to vanish", func() bool { return total(f.held(t)) == 0 })
	t.Logf("freed %v after the last keep-alive (TTL %v)", time.Since(stopped).Round(10*time.Millisecond), r.TTL)
	if _, err := ann.KeepAlive(ctx, g.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("renewing a reservation whose lease ran out: %v", err)
	}
}

// TestTimeLimitEndedByServerRole: a server with the servers' role ends a
// reservation at its time limit (deletes it from the store), which the
// role must allow.
func TestTimeLimitEndedByServerRole(t *testing.T) {
	f := start(t)
	a := f.server(t, "s0", 1, gib)
	ann := f.user(t, "ann")
	r := req(1, 0.5)
	r.Duration = time.Second
	g, err := ann.Reserve(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(engine.AttachRequest{Credential: g.Capabilities["s0"], Device: -1, Session: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the server to end the reservation at its time limit", func() bool { return total(f.held(t)) == 0 })
}

// TestUnreachable: a broker out of reach fails a call at once with the
// text scripts look for.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = NewClient([]string{"http://" + addr}, nil, "gftok_x").Reserve(context.Background(), req(1, 1))
	if !errors.Is(err, pool.ErrUnavailable) || !strings.Contains(err.Error(), "pool store unreachable") {
		t.Errorf("%v", err)
	}
}

// TestBrokerChecker races users reserving, renewing and releasing
// through the broker, and holders that vanish, while a checker reads every
// hold back from the store: no device is ever booked past its memory, and
// nothing is held at the end.
func TestBrokerChecker(t *testing.T) {
	f := start(t)
	const devMem = 1000
	for i := range 3 {
		f.server(t, fmt.Sprintf("s%d", i), 2, devMem)
	}
	users := make([]*Client, 6)
	for i := range users {
		users[i] = f.user(t, fmt.Sprintf("u%d", i))
	}
	stop := make(chan struct{})
	var checks atomic.Int64
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for dev, n := range f.held(t) {
				if n > devMem {
					t.Errorf("device %s booked %d of %d bytes", dev, n, devMem)
				}
			}
			checks.Add(1)
		}
	}()
	var reserved, refused atomic.Int64
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				// The lease is granted before the placement, which races
				// five others: 5 s leaves room on a loaded machine.
				r := Request{N: 1 + j%2, Bytes: uint64(300 + 100*(i%3)), TTL: 5 * time.Second, Node: -1, Policy: pool.Policy(j % 3)}
				g, err := u.Reserve(ctx, r)
				if errors.Is(err, pool.ErrNoCapacity) {
					refused.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				reserved.Add(1)
				if j%5 == 4 {
					continue // the holder "dies": its lease runs out
				}
				if _, err := u.KeepAlive(ctx, g.Reservation.ID); err != nil {
					t.Error(err)
				}
				if err := u.Release(ctx, g.Reservation.ID); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-checked
	eventually(t, 20*time.Second, "every hold to end", func() bool { return total(f.held(t)) == 0 })
	t.Logf("%d reserved, %d refused for capacity, %d checks", reserved.Load(), refused.Load(), checks.Load())
	if reserved.Load() == 0 || checks.Load() == 0 {
		t.Error("the race did not happen")
	}
}

// TestOtherMembersSkipped: given a cluster's URLs, a client passes over a
// member that serves no broker (a plain etcd answers 404) to the one that
// does, and says so when none does.
func TestOtherMembersSkipped(t *testing.T) {
	f := start(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	c := NewClient([]string{plain.URL, f.p.Store.ClientURL}, nil, "")
	if _, err := c.Pool(context.Background()); err != nil {
		t.Errorf("past a member without a broker: %v", err)
	}
	_, err := NewClient([]string{plain.URL}, nil, "").Pool(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no pool broker") {
		t.Errorf("no member with a broker: %v", err)
	}
}

// TestAdoptAfterRestart: a broker started again (here, a second one on
// the same store, the first closed) adopts the leases its holders go on
// renewing, and still revokes them one TTL after their last renewal.
func TestAdoptAfterRestart(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ann := f.user(t, "ann")
	ctx := context.Background()
	r := req(1, 1)
	r.TTL = 4 * time.Second // room for a slow renewal on a loaded machine
	g, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	// The second broker is made first: under the race detector following
	// the pool takes longer than the lease.
	again, err := New(ctx, f.p.root, f.p.Server, f.p.AdminToken, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	f.p.Broker.Close() // it keeps the lease alive no more
	srv := httptest.NewServer(again)
	defer srv.Close()
	renewer := NewClient([]string{srv.URL}, nil, ann.token)
	until := time.Now().Add(2 * r.TTL)
	for time.Now().Before(until) {
		if _, err := renewer.KeepAlive(ctx, g.Reservation.ID); err != nil {
			t.Fatalf("renewing through the broker started again: %v", err)
		}
		time.Sleep(r.TTL / 3)
	}
	if total(f.held(t)) != gib {
		t.Fatal("an adopted reservation was lost while renewed")
	}
	eventually(t, r.TTL+3*time.Second, "the adopted reservation to end once not renewed", func() bool { return total(f.held(t)) == 0 })
}

// TestFront: a broker in front of an external store (here a plain
// embedded one, reached as a client would reach a cluster) turns its
// authentication on, tells joining servers where the store is, and
// reserves for users; started again on its data directory it goes on.
func TestFront(t *testing.T) {
	e, err := pool.StartEmbedded(pool.EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	dir := t.TempDir()
	at := pool.StoreConfig{Endpoints: []string{e.ClientURL}}
	p, err := Front(ctx, at, dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Broker)
	defer srv.Close()
	admin := NewClient([]string{srv.URL}, nil, p.AdminToken)
	stok, err := admin.CreateToken(ctx, pool.Identity{User: "servers", Role: pool.RoleServer})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := NewClient([]string{srv.URL}, nil, stok).Join(ctx)
	if err != nil || len(cred.Endpoints) != 1 || cred.Endpoints[0] != e.ClientURL {
		t.Fatalf("joining: %+v, %v", cred, err)
	}
	cli, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: cred.Endpoints, Username: cred.Username, Password: cred.Password, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	a, err := pool.Join(ctx, cli, pool.Server{Name: "s0", Addr: "127.0.0.1:1", Devices: []pool.Device{{Index: 0, Memory: gib, Health: "ok", Node: -1}}}, 2*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	utok, err := admin.CreateToken(ctx, pool.Identity{User: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewClient([]string{srv.URL}, nil, utok).Reserve(ctx, req(1, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(engine.AttachRequest{Credential: g.Capabilities["s0"], Device: -1, Session: 1}); err != nil {
		t.Errorf("the server refused the front broker's capability: %v", err)
	}
	anon, err := clientv3.New(clientv3.Config{Endpoints: at.Endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Put(ctx, pool.Prefix+"tokens/x", "{}"); err == nil {
		t.Error("a client without credentials wrote the external store")
	}
	srv.Close()
	p.Close()
	p, err = Front(ctx, at, dir, quiet)
	if err != nil {
		t.Fatalf("a broker started again in front of the store: %v", err)
	}
	p.Close()
}

// TestReservationOutlivesPoolRestart: a pool (store and broker) down for
// longer than a reservation's TTL and started again keeps the reservation
// of a holder that renews once it is back: etcd gives leases a fresh TTL
// when its member becomes leader, and the new broker adopts the lease.
func TestReservationOutlivesPoolRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := pool.EmbeddedConfig{Dir: dir, Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"}
	p, err := Start(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	admin := NewClient([]string{p.Store.ClientURL}, nil, p.AdminToken)
	tok, err := admin.CreateToken(ctx, pool.Identity{User: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{p.Store.ClientURL}, Username: p.Server.Username, Password: p.Server.Password, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := pool.Join(ctx, srv, pool.Server{Name: "s0", Addr: "127.0.0.1:1", Devices: []pool.Device{{Index: 0, Memory: gib, Health: "ok", Node: -1}}}, 30*time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// The TTL leaves room for the broker's start after etcd's (bcrypt
	// comparisons, the view's load: seconds under the race detector),
	// during which the refreshed lease runs.
	r := req(1, 0.5)
	r.TTL = 8 * time.Second
	g, err := NewClient([]string{p.Store.ClientURL}, nil, tok).Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	down := time.Now()
	for time.Since(down) < r.TTL+time.Second {
		time.Sleep(100 * time.Millisecond) // the outage: longer than the TTL
	}
	p, err = Start(ctx, cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	defer srv.Close()
	defer a.Close()
	ann := NewClient([]string{p.Store.ClientURL}, nil, tok)
	if _, err := ann.KeepAlive(ctx, g.Reservation.ID); err != nil {
		t.Fatalf("renewing after the pool's restart: %v", err)
	}
	if _, err := ann.Reservation(ctx, g.Reservation.ID); err != nil {
		t.Fatalf("the reservation after the restart: %v", err)
	}
}
