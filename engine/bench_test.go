package engine_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/bench"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
)

// The benchmarks of the remoting spine, over each transport. Each reports,
// beside its own figure, the physical floor measured in the same run (see
// callFloor and copyFloor) and the ratio between them.

// callFloor is the median round trip of the raw path under transport tr
// (its call lane): a TCP ping-pong over loopback, or two processes (this
// test binary and a child of it) spinning on words of a shared mapping.
func callFloor(tb testing.TB, tr string) time.Duration {
	tr, _, _ = strings.Cut(tr, "+")
	var samples []time.Duration
	var err error
	if tr == "shm" {
		samples, err = bench.ShmPingPongProcesses(bench.Budget{Rounds: 20000, Time: 200 * time.Millisecond})
	} else {
		samples, err = bench.TCPPingPong(64, bench.Budget{Rounds: 5000, Time: 200 * time.Millisecond})
	}
	if err != nil {
		tb.Fatal(err)
	}
	return transport.Percentiles(samples).P50
}

// copyFloor is the raw bandwidth of a synchronous copy of size bytes under
// transport tr, measured by itself (see copyFloorTurn).
func copyFloor(tb testing.TB, tr string, size int) float64 {
	budget := bench.Budget{Rounds: max(4, (256<<20)/size), Time: 300 * time.Millisecond}
	turn := copyFloorTurn(tb, tr, size)
	turn()
	n := 0
	start := time.Now()
	for ; n < budget.Rounds && time.Since(start) < budget.Time; n++ {
		turn()
	}
	return float64(n) * float64(size) / time.Since(start).Seconds()
}

// copyFloorTurn returns one turn of the raw path of a synchronous copy of size
// bytes under transport tr (the lane its payload takes): over TCP, size
// bytes one way into a buffer of that size and a 1-byte reply, the best a
// synchronous copy could do; for shared memory, one memcpy between two
// warm buffers. The copy benchmarks time one turn of it before each copy,
// so that floor and copy see the same load on a shared machine.
func copyFloorTurn(tb testing.TB, tr string, size int) func() {
	if call, bulk, ok := strings.Cut(tr, "+"); ok && size >= 64<<10 {
		tr = bulk // the payload's lane; smaller copies stay on the call lane
	} else {
		tr = call
	}
	if tr == "shm" {
		dst, src := make([]byte, size), bench.Written(size)
		copy(dst, src)
		return func() { copy(dst, src) }
	}
	t, err := bench.NewTCPTransfer(size)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(t.Close)
	if err := t.Once(); err != nil {
		tb.Fatal(err)
	}
	return func() {
		if err := t.Once(); err != nil {
			tb.Fatal(err)
		}
	}
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
	floor := callFloor(b, tr)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if err := s.Ping(); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/op")
	b.ReportMetric(float64(per)/float64(floor), "x-floor")
	// The median beside the floor's median, as gpufabric bench reports
	// them: in turns, so that a VM whose vCPUs move between host cores in
	// the middle moves both.
	var calls []time.Duration
	var floors []time.Duration
	for range 4 {
		floors = append(floors, callFloor(b, tr))
		for range 5000 {
			t := time.Now()
			if err := s.Ping(); err != nil {
				b.Fatal(err)
			}
			calls = append(calls, time.Since(t))
		}
	}
	p50, floorP50 := transport.Percentiles(calls).P50, transport.Percentiles(floors).P50
	b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(p50)/float64(floorP50), "x-floor-p50")
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
	dev, mod := attach(b, s, 1)
	spin := function(b, mod, "spin")
	st := dev.DefaultStream()
	// The sync rate in the same run (the target is 20x it), from the median
	// of many round trips: a mean would carry the noise of a small VM.
	samples := make([]time.Duration, 0, 5000)
	for range cap(samples) {
		t := time.Now()
		s.Ping()
		samples = append(samples, time.Since(t))
	}
	syncRate := 1 / transport.Percentiles(samples).P50.Seconds()
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

// BenchmarkCopyServer is BenchmarkCopy over TCP against a server in
// another process, the shape of a deployment, at the address in
// $GPUFABRIC_BENCH_SERVER (e.g. one started with `gpufabric server
// --backend host --shm off`): in one process, the client's and the
// server's goroutines share one scheduler, and a 64 MiB device-to-host
// copy was seen in an execution trace with the server's writer and the
// client's reader taking turns on one processor while the other idled.
func BenchmarkCopyServer(b *testing.B) {
	dev, _ := attach(b, benchServer(b, "tcp"), 1)
	benchCopyOn(b, "tcp", dev)
}

// benchServer connects over transport tr to the server in another process
// at $GPUFABRIC_BENCH_SERVER, or skips the benchmark when there is none.
func benchServer(b *testing.B, tr string) *interpose.Session {
	addr := os.Getenv("GPUFABRIC_BENCH_SERVER")
	if addr == "" {
		b.Skip("GPUFABRIC_BENCH_SERVER is not set: no server to measure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Client: b.Name(), Transport: tr})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkCopyStaged: synchronous 64 MiB host-to-device copies over TCP
// behind a kernel launched on the same stream, so that the copy cannot be
// read straight into device memory and every chunk is staged (see
// engine/staging.go), in turns with the raw transfer.
func BenchmarkCopyStaged(b *testing.B) {
	const size = 64 << 20
	f := newFixture(b, 1, 512<<20)
	f.transport = "tcp"
	dev, mod := attach(b, f.dial(b), 1)
	spin := function(b, mod, "spin")
	st := dev.DefaultStream()
	ptr, err := dev.Alloc(size)
	if err != nil {
		b.Fatal(err)
	}
	host := bench.Written(size) // written: see bench.Written
	floor := copyFloorTurn(b, "tcp", size)
	b.SetBytes(size)
	var t turns
	for b.Loop() {
		t0 := time.Now()
		floor()
		t1 := time.Now()
		if err := spin.Launch(st, interpose.D1(1), interpose.D1(1), 0, uint64(100*time.Microsecond)); err != nil {
			b.Fatal(err)
		}
		if err := dev.CopyHtoD(ptr, host); err != nil {
			b.Fatal(err)
		}
		t.add(t1.Sub(t0), time.Since(t1))
	}
	t.report(b, size)
}

func benchCopy(b *testing.B, tr string) {
	f := newFixture(b, 1, 512<<20)
	f.transport = tr
	dev, _ := attach(b, f.dial(b), 1)
	benchCopyOn(b, tr, dev)
}

// benchCopyOn times synchronous copies of copySizes each way on dev, in
// turns with the raw path of transport tr.
func benchCopyOn(b *testing.B, tr string, dev *interpose.Device) {
	for _, size := range copySizes {
		ptr, err := dev.Alloc(uint64(size))
		if err != nil {
			b.Fatal(err)
		}
		host := bench.Written(size) // written: see bench.Written
		floor := copyFloorTurn(b, tr, size)
		for _, dir := range []string{"HtoD", "DtoH"} {
			b.Run(fmt.Sprintf("%s/%s", dir, sizeName(size)), func(b *testing.B) {
				b.SetBytes(int64(size))
				var t turns
				for b.Loop() {
					t0 := time.Now()
					floor()
					t1 := time.Now()
					if dir == "HtoD" {
						err = dev.CopyHtoD(ptr, host)
					} else {
						err = dev.CopyDtoH(host, ptr)
					}
					if err != nil {
						b.Fatal(err)
					}
					t.add(t1.Sub(t0), time.Since(t1))
				}
				t.report(b, size)
			})
		}
		dev.Free(ptr)
	}
}

// turns collects the times of a floor and of the operation timed right
// after it, turn by turn.
type turns struct {
	floor, op time.Duration
	ratios    []float64
}

func (t *turns) add(floor, op time.Duration) {
	t.floor += floor
	t.op += op
	t.ratios = append(t.ratios, float64(floor)/float64(op))
}

// report gives the floor's rate, the ratio of the totals (x-floor) and the
// median of the turns' ratios (x-floor-p50). The benchmark's own MB/s
// counts the floors' time too; the ratios are the figures to read.
func (t *turns) report(b *testing.B, size int) {
	slices.Sort(t.ratios)
	b.ReportMetric(float64(size)*float64(len(t.ratios))/t.floor.Seconds()/1e6, "floor-MB/s")
	b.ReportMetric(float64(size)*float64(len(t.ratios))/t.op.Seconds()/1e6, "copy-MB/s")
	b.ReportMetric(float64(t.floor)/float64(t.op), "x-floor")
	b.ReportMetric(t.ratios[len(t.ratios)/2], "x-floor-p50")
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	default:
		return fmt.Sprintf("%dKiB", n>>10)
	}
}
