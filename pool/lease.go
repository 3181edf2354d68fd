package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrLeaseGone: the lease ran out (or was revoked), and with it what lived
// under it.
var ErrLeaseGone = errors.New("the lease ran out")

// KeepLease keeps lease alive until ctx ends or the store says the lease
// is gone, through outages of the store. clientv3's KeepAlive gives up
// (closes its channel) once a renewal has failed for the lease's TTL, yet
// the store, when it is back, may still hold the lease: a restarted member
// gives every lease a fresh TTL. So a holder that gave up with the client
// would lose its reservation a TTL after the store's return, though
// nothing of it was lost in the outage.
func KeepLease(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) error {
	for {
		if ka, err := cli.KeepAlive(ctx, lease); err == nil {
			for range ka {
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Gone, or the store away? Only the store can say.
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		ttl, err := cli.TimeToLive(tctx, lease)
		cancel()
		if err == nil && ttl.TTL <= 0 {
			return fmt.Errorf("%w: lease %x", ErrLeaseGone, int64(lease))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond): // no spinning on a store that refuses at once
		}
	}
}
