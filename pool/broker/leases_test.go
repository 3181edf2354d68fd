package broker

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/pool"
)

// leaseLeft is the store's TTL left of lease: -1 once it is gone.
func (f *fixture) leaseLeft(t *testing.T, lease int64) int64 {
	t.Helper()
	ttl, err := f.root.TimeToLive(context.Background(), clientv3.LeaseID(lease))
	if err != nil {
		t.Fatal(err)
	}
	return ttl.TTL
}

// TestLeaseReuse: a released reservation's lease serves the next
// reservation of the same TTL, kept alive meanwhile; the old reservation
// stays ended (its id renews nothing); a holder of a reused lease that
// stops renewing still loses its reservation within the TTL; another TTL
// gets another lease; the broker's Close revokes what is in stock.
func TestLeaseReuse(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ann := f.user(t, "ann")
	ctx := context.Background()
	r := req(1, 0.5)
	// Long enough that the broker's renewals land in time on a machine
	// loaded by other packages' race-detector tests: a CI run lost a 2 s
	// stocked lease.
	r.TTL = 4 * time.Second

	first, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := ann.Release(ctx, first.Reservation.ID); err != nil {
		t.Fatal(err)
	}
	if got := total(f.held(t)); got != 0 {
		t.Fatalf("held after release: %d bytes", got)
	}
	// In stock past its TTL: still alive, kept by the broker.
	time.Sleep(2 * r.TTL)
	if left := f.leaseLeft(t, first.Reservation.Lease); left <= 0 {
		t.Fatalf("a stocked lease ran out (TTL left %d)", left)
	}

	second, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if second.Reservation.Lease != first.Reservation.Lease {
		t.Errorf("the second reservation's lease %x, want the released %x", second.Reservation.Lease, first.Reservation.Lease)
	}
	if got := total(f.held(t)); got != gib/2 {
		t.Errorf("held under the reused lease: %d bytes, want %d", got, gib/2)
	}
	if _, err := ann.KeepAlive(ctx, first.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("renewing the released reservation of a reused lease: %v", err)
	}
	if err := ann.Release(ctx, first.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("releasing the released reservation of a reused lease: %v", err)
	}
	if got := total(f.held(t)); got != gib/2 {
		t.Fatalf("the old reservation's release touched the new one: %d bytes held", got)
	}

	other := r
	other.TTL = 5 * time.Second
	third, err := ann.Reserve(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reservation.Lease == second.Reservation.Lease {
		t.Error("two reservations at once under one lease")
	}
	if err := ann.Release(ctx, third.Reservation.ID); err != nil {
		t.Fatal(err)
	}

	// The second's holder never renews: gone within its TTL.
	eventually(t, r.TTL+3*time.Second, "a reused lease's unrenewed reservation to end", func() bool { return total(f.held(t)) == 0 })
	if _, err := ann.KeepAlive(ctx, second.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("renewing a reservation whose holder went: %v", err)
	}

	// third's lease is in stock; Close revokes it.
	if left := f.leaseLeft(t, third.Reservation.Lease); left <= 0 {
		t.Fatalf("the stocked lease before Close: TTL left %d", left)
	}
	f.p.Broker.Close()
	if left := f.leaseLeft(t, third.Reservation.Lease); left > 0 {
		t.Errorf("a stocked lease outlived the broker's Close (TTL left %d)", left)
	}
}

// TestReusedLeaseEndedAtTimeLimit: a reservation under a reused lease that
// a server ends at its time limit (which revokes the lease) is not found
// at its release, and its revoked lease serves no later reservation.
func TestReusedLeaseEndedAtTimeLimit(t *testing.T) {
	f := start(t)
	a := f.server(t, "s0", 1, gib)
	ann := f.user(t, "ann")
	ctx := context.Background()
	r := req(1, 0.5)
	first, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := ann.Release(ctx, first.Reservation.ID); err != nil {
		t.Fatal(err)
	}
	limited := r
	limited.Duration = time.Second
	g, err := ann.Reserve(ctx, limited)
	if err != nil {
		t.Fatal(err)
	}
	if g.Reservation.Lease != first.Reservation.Lease {
		t.Fatalf("the limited reservation's lease %x, want the stocked %x", g.Reservation.Lease, first.Reservation.Lease)
	}
	if _, err := a.Authorize(engine.AttachRequest{Credential: g.Capabilities["s0"], Device: -1, Session: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the server to end the reservation at its time limit", func() bool { return total(f.held(t)) == 0 })
	if err := ann.Release(ctx, g.Reservation.ID); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("releasing a reservation ended at its time limit: %v", err)
	}
	eventually(t, 5*time.Second, "the ended reservation's lease to be revoked", func() bool { return f.leaseLeft(t, g.Reservation.Lease) <= 0 })
	next, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if next.Reservation.Lease == g.Reservation.Lease {
		t.Fatal("a revoked lease served a new reservation")
	}
	if got := total(f.held(t)); got != gib/2 {
		t.Errorf("held by the next reservation: %d bytes, want %d", got, gib/2)
	}
}

// TestKilledBrokersLeasesRunOut: a broker that dies (its store client
// gone, nothing revoked) leaves its leases, the stocked and the held, to
// run out within their TTLs, and the reservation's capacity with them.
func TestKilledBrokersLeasesRunOut(t *testing.T) {
	f := start(t)
	f.server(t, "s0", 1, gib)
	ctx := context.Background()
	pw, err := os.ReadFile(filepath.Join(f.dir, "root-password"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := pool.Connect(ctx, pool.StoreConfig{Endpoints: []string{f.p.Store.ClientURL}, Username: pool.RootUser, Password: strings.TrimSpace(string(pw)), DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dying, err := New(ctx, cli, f.p.Server, f.p.AdminToken, quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(dying)
	defer srv.Close()
	tok, err := f.admin.CreateToken(ctx, pool.Identity{User: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	ann := NewClient([]string{srv.URL}, nil, tok)
	defer ann.Close()
	r := req(1, 0.5)
	r.TTL = 2 * time.Second
	stockedRes, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := ann.Release(ctx, stockedRes.Reservation.ID); err != nil {
		t.Fatal(err)
	}
	r.TTL = 3 * time.Second
	held, err := ann.Reserve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if held.Reservation.Lease == stockedRes.Reservation.Lease {
		t.Fatal("a 3 s reservation took a 2 s lease")
	}
	cli.Close() // killed: no more renewals, and no revokes
	defer dying.Close()
	killed := time.Now()
	for _, lease := range []int64{stockedRes.Reservation.Lease, held.Reservation.Lease} {
		eventually(t, r.TTL+3*time.Second-time.Since(killed), "a dead broker's lease to run out", func() bool { return f.leaseLeft(t, lease) <= 0 })
	}
	// etcd reports a lease past its TTL gone at once, and deletes its keys
	// in the raft round that follows.
	eventually(t, r.TTL+3*time.Second-time.Since(killed), "a dead broker's reservation to free", func() bool { return total(f.held(t)) == 0 })
	t.Logf("both leases and the reservation gone %v after the broker died", time.Since(killed).Round(10*time.Millisecond))
}
