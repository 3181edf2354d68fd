package engine_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
)

// The benchmarks of the remoting spine. Each reports, beside its own
// figure, the physical floor measured in the same run on the same loopback
// (a raw TCP ping-pong for calls, a raw TCP stream for copies) and the
// ratio between them.

// rawPingPong measures the round trip of a 64-byte message over a raw TCP
// connection between two goroutines of this process.
func rawPingPong(tb testing.TB, rounds int) time.Duration {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	start := time.Now()
	for range rounds {
		c.Write(buf)
		io.ReadFull(c, buf)
	}
	return time.Since(start) / time.Duration(rounds)
}

// rawStream measures one-way TCP throughput of total bytes in writes of
// chunk bytes, in bytes per second.
func rawStream(tb testing.TB, chunk, total int) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, chunk)
		n := 0
		for n < total {
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			n += m
		}
		c.Write([]byte{1})
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, chunk)
	start := time.Now()
	for sent := 0; sent < total; sent += chunk {
		c.Write(buf)
	}
	io.ReadFull(c, make([]byte, 1))
	<-done
	return float64(total) / time.Since(start).Seconds()
}

func BenchmarkSyncCall(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { benchSyncCall(b, tr) })
	}
}

func benchSyncCall(b *testing.B, tr string) {
	f := newFixture(b, 1, 64<<20)
	f.transport = tr
	s := f.dial(b)
	floor := rawPingPong(b, 2000)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := s.Ping(); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/op")
	b.ReportMetric(float64(per)/float64(floor), "x-floor")
}

func BenchmarkAsyncLaunch(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { benchAsyncLaunch(b, tr) })
	}
}

func benchAsyncLaunch(b *testing.B, tr string) {
	f := newFixture(b, 1, 64<<20)
	f.transport = tr
	s := f.dial(b)
	dev, err := s.Attach(0, interpose.Share{Fraction: 1})
	if err != nil {
		b.Fatal(err)
	}
	mod, err := dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		b.Fatal(err)
	}
	spin, err := mod.Function("spin")
	if err != nil {
		b.Fatal(err)
	}
	st := dev.DefaultStream()
	// The sync rate in the same run: the target is 20x it.
	syncStart := time.Now()
	const syncN = 2000
	for range syncN {
		s.Ping()
	}
	syncRate := syncN / time.Since(syncStart).Seconds()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := spin.Launch(st, interpose.D1(1), interpose.D1(1), 0, uint64(0)); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Synchronize(); err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "launches/s")
	b.ReportMetric(syncRate, "sync-calls/s")
	b.ReportMetric(rate/syncRate, "x-sync")
}

var copySizes = []int{4 << 10, 1 << 20, 64 << 20}

func BenchmarkCopy(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { benchCopy(b, tr) })
	}
}

func benchCopy(b *testing.B, tr string) {
	f := newFixture(b, 1, 512<<20)
	f.transport = tr
	s := f.dial(b)
	dev, err := s.Attach(0, interpose.Share{Fraction: 1})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range copySizes {
		ptr, err := dev.Alloc(uint64(size))
		if err != nil {
			b.Fatal(err)
		}
		host := make([]byte, size)
		floor := rawStream(b, min(size, 4<<20), max(size, 256<<20))
		for _, dir := range []string{"HtoD", "DtoH"} {
			b.Run(fmt.Sprintf("%s/%s", dir, sizeName(size)), func(b *testing.B) {
				b.SetBytes(int64(size))
				start := time.Now()
				for b.Loop() {
					if dir == "HtoD" {
						err = dev.CopyHtoD(ptr, host)
					} else {
						err = dev.CopyDtoH(host, ptr)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				bw := float64(size) * float64(b.N) / time.Since(start).Seconds()
				b.ReportMetric(floor/1e6, "floor-MB/s")
				b.ReportMetric(bw/floor, "x-floor")
			})
		}
		dev.Free(ptr)
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dKiB", n>>10)
	}
}
