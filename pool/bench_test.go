package pool

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/internal/loadgen"
)

// BenchmarkReserve measures reservations against a simulated pool of 100
// servers of 8 devices each, registered under real leases kept alive, on
// the embedded store. Each client, holding a session lease, loops: reserve
// a tenth of a device (timed), then release it (in the wall clock, not the
// latency). Beside it,
// the floor: a plain one-key put, the store's cheapest durable write, from
// as many clients in the same run.
func BenchmarkReserve(b *testing.B) {
	benchReserve(b, startStore(b))
}

// BenchmarkReserveCluster is BenchmarkReserve on a 3-member cluster, its
// members in this process on loopback, the client given all three.
func BenchmarkReserveCluster(b *testing.B) {
	var eps []string
	for _, m := range startCluster(b, 3) {
		eps = append(eps, m.ClientURL)
	}
	cli, err := Connect(context.Background(), StoreConfig{Endpoints: eps})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	benchReserve(b, cli)
}

func benchReserve(b *testing.B, cli *clientv3.Client) {
	for i := range 100 {
		fakeServer(b, cli, fmt.Sprintf("sim%03d", i), 8, 80*gib, DefaultTTL)
	}
	for _, clients := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newClient(b, cli, Identity{User: "bench"})
			ctx := context.Background()
			floor := measure(b, clients, 100*clients, func() (time.Duration, error) {
				t := time.Now()
				_, err := cli.Put(ctx, Prefix+"bench/floor", "x")
				return time.Since(t), err
			})
			lost := lostRaces.Load()
			b.ResetTimer()
			// Each client holds a session lease, as a long-lived client
			// does; a fresh gpufabric run grants one first (BenchmarkGrant).
			leases := make(chan clientv3.LeaseID, clients)
			for range clients {
				leases <- lease(b, cli, 600)
			}
			got := measure(b, clients, b.N, func() (time.Duration, error) {
				l := <-leases
				defer func() { leases <- l }()
				t := time.Now()
				r, err := c.Reserve(ctx, Request{N: 1, Share: Share{Fraction: 0.1}, Lease: l, SharedLease: true, Node: -1})
				if err != nil {
					return 0, err
				}
				took := time.Since(t)
				return took, End(ctx, cli, r)
			})
			b.StopTimer()
			b.ReportMetric(got.P50.Seconds()*1e3, "p50_ms")
			b.ReportMetric(got.P99.Seconds()*1e3, "p99_ms")
			b.ReportMetric(got.Rate, "reservations/s")
			b.ReportMetric(float64(lostRaces.Load()-lost)/float64(b.N), "lost_races/op")
			b.ReportMetric(floor.P50.Seconds()*1e3, "floor_put_p50_ms")
			b.ReportMetric(floor.Rate, "floor_puts/s")
			b.ReportMetric(got.P50.Seconds()/floor.P50.Seconds(), "p50_vs_floor")
			// Leave the pool empty for the next client count.
			if _, err := cli.Delete(ctx, Prefix+"resv/", clientv3.WithPrefix()); err != nil {
				b.Fatal(err)
			}
			if _, err := cli.Delete(ctx, Prefix+"dev/", clientv3.WithPrefix()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// measure runs n operations from clients goroutines; each says how long
// its timed part took.
func measure(b *testing.B, clients, n int, op func() (time.Duration, error)) loadgen.Figures {
	f, err := loadgen.Run(clients, n, op)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkGrant is the lease grant a fresh `gpufabric run` pays before it
// reserves, from 1 and 50 clients, beside the same floor.
func BenchmarkGrant(b *testing.B) {
	cli := startStore(b)
	ctx := context.Background()
	for _, clients := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			floor := measure(b, clients, 100*clients, func() (time.Duration, error) {
				t := time.Now()
				_, err := cli.Put(ctx, Prefix+"bench/floor", "x")
				return time.Since(t), err
			})
			b.ResetTimer()
			got := measure(b, clients, b.N, func() (time.Duration, error) {
				t := time.Now()
				l, err := cli.Grant(ctx, 30)
				if err != nil {
					return 0, err
				}
				took := time.Since(t)
				_, err = cli.Revoke(ctx, l.ID)
				return took, err
			})
			b.StopTimer()
			b.ReportMetric(got.P50.Seconds()*1e3, "p50_ms")
			b.ReportMetric(got.P99.Seconds()*1e3, "p99_ms")
			b.ReportMetric(floor.P50.Seconds()*1e3, "floor_put_p50_ms")
			b.ReportMetric(got.P50.Seconds()/floor.P50.Seconds(), "p50_vs_floor")
		})
	}
}
