package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/internal/loadgen"

	"github.com/gpufabric/gpufabric/pool"
)

// BenchmarkBrokerReserve measures reservations through the broker against
// a simulated pool of 100 servers of 8 devices (real leases kept alive,
// each watching its holds), on the embedded store with its authentication
// on. Each client (its own HTTP connection, as a process has) loops:
// reserve a tenth of one device (timed: the token's lookup, the lease, a
// released one from the broker's stock once there is one, the placement
// and its transaction, the capabilities' signatures, and the HTTP round
// trip), then release it (in the wall clock, not the latency). Beside it, in the same run: the same reservation made
// directly on the store (grant a lease, then pool.Client.Reserve, what
// each `gpufabric run` did before the broker), and the floor, a one-key
// put. cpu_ms/cycle is the process's CPU (store, servers, broker and
// clients together) per reserve and release: the cost that, on a machine
// of few cores, sets the rate and, through the queue, the latency.
func BenchmarkBrokerReserve(b *testing.B) {
	f := start(b)
	for i := range 100 {
		f.server(b, fmt.Sprintf("sim%03d", i), 8, 80*gib)
	}
	ctx := context.Background()
	tok, err := f.admin.CreateToken(ctx, pool.Identity{User: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	direct, err := pool.NewClient(ctx, f.root, pool.Identity{User: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	for _, clients := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			floor := measure(b, clients, 100*clients, func() (time.Duration, error) {
				t := time.Now()
				_, err := f.root.Put(ctx, pool.Prefix+"bench/floor", "x")
				return time.Since(t), err
			})
			straight := measure(b, clients, 20*clients, func() (time.Duration, error) {
				t := time.Now()
				l, err := f.root.Grant(ctx, 10)
				if err != nil {
					return 0, err
				}
				r, err := direct.Reserve(ctx, pool.Request{N: 1, Share: pool.Share{Fraction: 0.1}, Lease: l.ID, Node: -1})
				if err != nil {
					return 0, err
				}
				took := time.Since(t)
				return took, pool.End(ctx, f.root, r)
			})
			users := make(chan *Client, clients)
			for range clients {
				c := f.client(tok)
				defer c.Close()
				users <- c
			}
			b.ResetTimer()
			cpu := cpuTime()
			got := measure(b, clients, b.N, func() (time.Duration, error) {
				c := <-users
				defer func() { users <- c }()
				t := time.Now()
				g, err := c.Reserve(ctx, Request{N: 1, Fraction: 0.1, TTL: 10 * time.Second, Node: -1})
				if err != nil {
					return 0, err
				}
				took := time.Since(t)
				return took, c.Release(ctx, g.Reservation.ID)
			})
			b.StopTimer()
			cpu = cpuTime() - cpu
			b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu_ms/cycle")
			b.ReportMetric(got.P50.Seconds()*1e3, "p50_ms")
			b.ReportMetric(got.P99.Seconds()*1e3, "p99_ms")
			b.ReportMetric(got.Rate, "reservations/s")
			b.ReportMetric(straight.P50.Seconds()*1e3, "direct_p50_ms")
			b.ReportMetric(straight.P99.Seconds()*1e3, "direct_p99_ms")
			b.ReportMetric(straight.Rate, "direct_reservations/s")
			b.ReportMetric(floor.P50.Seconds()*1e3, "floor_put_p50_ms")
			b.ReportMetric(got.P50.Seconds()/straight.P50.Seconds(), "p50_vs_direct")
			b.ReportMetric(got.P50.Seconds()/floor.P50.Seconds(), "p50_vs_floor")
			if _, err := f.root.Delete(ctx, pool.Prefix+"resv/", clientv3.WithPrefix()); err != nil {
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
