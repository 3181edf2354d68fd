//go:build linux

package shm

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// echo sends every frame back until the connection fails.
func echo(c *Conn) {
	var buf []byte
	for {
		body, n, err := c.Recv()
		if err != nil {
			return
		}
		buf = append(buf[:0], make([]byte, n)...)
		if err := c.ReadPayload(buf); err != nil {
			return
		}
		if err := c.Send(body, buf); err != nil {
			return
		}
	}
}

// spinFloor is the physical floor of a round trip through shared memory:
// two goroutines ping-ponging a counter in a memfd mapping, each spinning
// on the other's cache line. It returns the time per round trip.
func spinFloor(tb testing.TB, rounds int) time.Duration {
	r, fd, err := createRegion(pageSize)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.unmap()
	defer unix.Close(fd)
	ping, pong := r.u64(0), r.u64(128)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= uint64(rounds); i++ {
			for k := 0; ping.Load() != i; k++ {
				if k&1023 == 1023 {
					runtime.Gosched() // in case the two goroutines share a CPU
				}
			}
			pong.Store(i)
		}
	}()
	start := time.Now()
	for i := uint64(1); i <= uint64(rounds); i++ {
		ping.Store(i)
		for k := 0; pong.Load() != i; k++ {
			if k&1023 == 1023 {
				runtime.Gosched()
			}
		}
	}
	elapsed := time.Since(start)
	<-done
	return elapsed / time.Duration(rounds)
}

// BenchmarkRoundTrip: a 64-byte call and its echo, beside the raw spinning
// ping-pong over the same kind of region.
func BenchmarkRoundTrip(b *testing.B) {
	c, s := pair(b, Options{})
	go echo(s)
	floor := spinFloor(b, 100000)
	body := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Send(body, nil); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	rt := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(rt, "ns/roundtrip")
	b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/roundtrip")
	b.ReportMetric(rt/float64(floor.Nanoseconds()), "x-floor")
}

// BenchmarkThroughput64MiB: 64 MiB payloads streamed one way through the
// default 16 MiB slab, beside one memcpy of the same size.
func BenchmarkThroughput64MiB(b *testing.B) {
	const size = 64 << 20
	c, s := pair(b, Options{})
	src, dst := pattern(size, 1), make([]byte, size)
	copy(dst, src) // fault the pages in
	var memcpy time.Duration
	for range 5 {
		start := time.Now()
		copy(dst, src)
		if d := time.Since(start); memcpy == 0 || d < memcpy {
			memcpy = d
		}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, _, err := s.Recv(); err != nil {
				done <- err
				return
			}
			if err := s.ReadPayload(dst); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := c.Send(nil, src); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(memcpy.Nanoseconds()), "memcpy-ns")
	b.ReportMetric(float64(size)/memcpy.Seconds()/1e6, "memcpy-MB/s")
	b.ReportMetric(per/float64(memcpy.Nanoseconds()), "x-memcpy")
}
