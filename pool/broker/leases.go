package broker

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
)

// kept is a lease the broker keeps alive: a reservation's, while its
// holder renews it, or one in stock, waiting for the next reservation.
// etcd renews a lease only after confirming its leadership (a raft round,
// 60 ms here and most of a second under the race detector), so a renewal
// per holder's call would be slow: the broker's client keeps every such
// lease alive on its one keep-alive stream instead, and the holder's
// renewal only pushes back the deadline at which the broker revokes the
// lease. A holder that stops renewing loses its reservation one TTL after
// its last renewal; a broker that dies stops renewing, and every lease it
// kept, held or in stock, runs out within its TTL by itself.
type kept struct {
	// ttl is the holder's: the reservation ends when it has not renewed
	// for this long.
	ttl time.Duration
	// timer revokes the lease at the holder's deadline; nil while the
	// lease is in stock. hold names the holding the timer was set for, so
	// that a timer that fires as its holding ends cannot revoke the lease
	// under the next one.
	timer  *time.Timer
	hold   *struct{}
	cancel context.CancelFunc
}

// stocked is a kept lease that holds nothing, ready for a reservation.
type stocked struct {
	id clientv3.LeaseID
	k  *kept
}

// Leases are reused, not granted and revoked per reservation: a grant and
// a revoke are a raft round each, a third of a reserve-and-release cycle's
// store writes, and the grant is on the reservation's timed path. A
// released reservation's keys go in one transaction (pool.EndKeys) and its
// lease goes to the stock of its TTL, for the next reservation asking that
// TTL. Only leases of short TTLs are stocked, a few per TTL: a stocked
// lease outlives a broker killed by up to its TTL, holding nothing.
const (
	maxStockTTL  = 5 * 60 // seconds
	stockPerTTL  = 64
	stockRevokes = 2 * time.Second // at Close, for the stock's leases
)

// ttlSeconds is the lease TTL that serves a holder's ttl: whole seconds,
// rounded up.
func ttlSeconds(ttl time.Duration) int64 { return int64((ttl + time.Second - 1) / time.Second) }

// lease gives a lease for a reservation whose holder renews within ttl:
// one from stock, or a new one. The broker keeps it alive from now, and
// revokes it when the holder has not renewed for ttl.
func (b *Broker) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	if id, ok := b.take(ttl); ok {
		return id, nil
	}
	l, err := b.cli.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", pool.ErrUnavailable, err)
	}
	b.keep(l.ID, ttl)
	return l.ID, nil
}

// take is a lease from the stock of ttl's whole seconds, held from now.
func (b *Broker) take(ttl time.Duration) (clientv3.LeaseID, bool) {
	sec := ttlSeconds(ttl)
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := b.stock[sec]; len(s) > 0; s = b.stock[sec] {
		e := s[len(s)-1]
		b.stock[sec] = s[:len(s)-1]
		if b.kept[e.id] != e.k {
			continue // it ran out in stock (the store lost it)
		}
		b.hold(e.id, e.k, ttl)
		return e.id, true
	}
	return 0, false
}

// hold starts k's holder deadline; b.mu is held.
func (b *Broker) hold(lease clientv3.LeaseID, k *kept, ttl time.Duration) {
	h := new(struct{})
	k.ttl, k.hold = ttl, h
	k.timer = time.AfterFunc(ttl, func() {
		b.mu.Lock()
		mine := b.kept[lease] == k && k.hold == h
		b.mu.Unlock()
		if mine && b.forget(lease, k) {
			rctx, cancel := context.WithTimeout(context.Background(), pool.StoreTimeout)
			defer cancel()
			_, _ = b.cli.Revoke(rctx, lease)
		}
	})
}

// keep keeps lease alive until its holder has not renewed it (renew) for
// ttl, then revokes it.
func (b *Broker) keep(lease clientv3.LeaseID, ttl time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k := b.kept[lease]; k != nil {
		if k.timer != nil {
			k.timer.Reset(k.ttl)
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &kept{cancel: cancel}
	b.hold(lease, k, ttl)
	b.kept[lease] = k
	// Registered before the reservation returns: a goroutine that starts
	// late on a loaded machine must not leave a short lease unrenewed.
	ch, err := b.cli.KeepAlive(ctx, lease)
	go func() {
		if err == nil {
			for range ch {
			}
		}
		// The lease is gone (released, ended at its time limit), or the
		// broker closes, or the store was away for a TTL: kept on through
		// that until the store says which.
		if ctx.Err() == nil {
			_ = pool.KeepLease(ctx, b.cli, lease)
		}
		b.forget(lease, k)
	}()
}

// forget stops keeping lease alive, if k still keeps it.
func (b *Broker) forget(lease clientv3.LeaseID, k *kept) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kept[lease] != k {
		return false
	}
	delete(b.kept, lease)
	if k.timer != nil {
		k.timer.Stop()
	}
	k.hold = nil
	k.cancel()
	return true
}

// unhold ends the holding of a kept lease whose reservation is being
// released, so that no holder's deadline revokes it from now on: the
// releaser decides what becomes of it. False when the broker does not
// hold it (it started again since, or the lease is ending already).
func (b *Broker) unhold(lease clientv3.LeaseID) (*kept, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.kept[lease]
	if k == nil || k.timer == nil {
		return nil, false
	}
	k.timer.Stop()
	k.timer, k.hold = nil, nil
	return k, true
}

// restock puts a lease that holds nothing back in stock, or revokes it
// when the stock of its TTL is full or the broker closed.
func (b *Broker) restock(lease clientv3.LeaseID, k *kept) {
	sec := ttlSeconds(k.ttl)
	b.mu.Lock()
	ok := !b.closed && b.kept[lease] == k && sec <= maxStockTTL && len(b.stock[sec]) < stockPerTTL
	if ok {
		b.stock[sec] = append(b.stock[sec], stocked{lease, k})
	}
	b.mu.Unlock()
	if !ok {
		b.drop(lease, k)
	}
}

// drop stops keeping lease alive and revokes it, with what it holds.
func (b *Broker) drop(lease clientv3.LeaseID, k *kept) {
	b.forget(lease, k)
	ctx, cancel := context.WithTimeout(context.Background(), pool.StoreTimeout)
	defer cancel()
	_, _ = b.cli.Revoke(ctx, lease)
}

// renew pushes back the deadline of a kept lease; a lease the broker does
// not keep (it started again since) is adopted if it is still alive.
func (b *Broker) renew(ctx context.Context, lease clientv3.LeaseID) (time.Duration, error) {
	b.mu.Lock()
	if k := b.kept[lease]; k != nil {
		defer b.mu.Unlock()
		if k.timer == nil {
			// In stock: its reservation was released a moment ago.
			return 0, pool.ErrNotFound
		}
		k.timer.Reset(k.ttl)
		return k.ttl, nil
	}
	b.mu.Unlock()
	ttl, err := b.cli.TimeToLive(ctx, lease)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", pool.ErrUnavailable, err)
	}
	if ttl.TTL <= 0 {
		return 0, pool.ErrNotFound
	}
	granted := time.Duration(ttl.GrantedTTL) * time.Second
	b.keep(lease, granted)
	return granted, nil
}

// Close stops following the pool and keeping leases alive. The stock's
// leases, which hold nothing, are revoked; the reservations' run out
// within their TTLs unless a broker started again adopts them.
func (b *Broker) Close() {
	b.mu.Lock()
	b.closed = true
	var idle []clientv3.LeaseID
	for _, s := range b.stock {
		for _, e := range s {
			if b.kept[e.id] == e.k {
				idle = append(idle, e.id)
			}
		}
	}
	b.stock = map[int64][]stocked{}
	for id, k := range b.kept {
		if k.timer != nil {
			k.timer.Stop()
		}
		k.cancel()
		delete(b.kept, id)
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), stockRevokes)
	defer cancel()
	for _, id := range idle {
		_, _ = b.cli.Revoke(ctx, id)
	}
	b.base.Close()
}
