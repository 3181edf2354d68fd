package pool

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStoreRestart stops the whole store for longer than every lease's
// TTL and starts it again on its data: the restarted member gives each
// lease a fresh TTL, and the holders must find it within that TTL. A
// server's registration and a client's lease kept by KeepLease outlive
// the outage; the server serves the registration it had.
func TestStoreRestart(t *testing.T) {
	cfg := EmbeddedConfig{Dir: t.TempDir(), Listen: freeAddr(t), Peer: freeAddr(t)}
	e, err := StartEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	cli, err := Connect(context.Background(), StoreConfig{Endpoints: []string{e.ClientURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// TTLs long enough that a machine loaded by other packages' race
	// tests renews in time once the store is back: a CI run lost a 2 s
	// lease 2.0 s after the return.
	const ttl = 4
	a := fakeServer(t, cli, "a", 1, gib, ttl*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := lease(t, cli, ttl)
	kept := make(chan error, 1)
	go func() { kept <- KeepLease(ctx, cli, l) }()
	reg := func() int64 {
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		resp, err := cli.Get(tctx, serverKey("a"))
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].CreateRevision
	}
	registered := reg()

	e.Close() // seconds: it waits for the clients' streams to end
	down := time.Now()
	// Past the client library's own patience (it gives up renewing a lease
	// after its TTL) and into its backoff between dials.
	eventually(t, time.Minute, "the store away for longer than the TTL", func() bool { return time.Since(down) > (ttl+2)*time.Second })
	if e, err = StartEmbedded(cfg); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for time.Since(back) < 5*time.Second {
		if r := reg(); r != registered {
			t.Fatalf("%v after the store's return: the registration's create revision is %d, was %d", time.Since(back), r, registered)
		}
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		ttl, err := cli.TimeToLive(tctx, l)
		cancel()
		if err == nil && ttl.TTL <= 0 {
			t.Fatalf("%v after the store's return: the client's lease ran out", time.Since(back))
		}
		time.Sleep(50 * time.Millisecond) // the pace of the polling, not a wait
	}
	if _, err := a.cli.Revoke(ctx, l); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-kept:
		if !errors.Is(err, ErrLeaseGone) {
			t.Fatalf("KeepLease of a revoked lease: %v, want ErrLeaseGone", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("KeepLease still running 30 s after its lease was revoked")
	}
}
