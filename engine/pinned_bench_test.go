package engine_test

import (
	"slices"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/bench"
	"github.com/gpufabric/gpufabric/interpose"
)

// BenchmarkPinnedCopy: synchronous copies (4 KiB, 64 MiB) between the device and
// host memory over shared memory: from pinned memory, which the server
// maps and copies once, and from pageable memory, whose bytes pass through
// the connection's slab. The floor is one memcpy of the same size between
// two warm buffers of this process, timed in turns with the copies, one
// floor then one copy, so that both see the same load on a shared machine:
// x-floor is the floor's total time over the copies', and x-floor-p50 the
// median of the per-turn ratios. The path floor is one memcpy between the
// host buffer itself and a warm buffer of this process, in the copy's
// direction: the same pages the server's one copy reads or writes (a
// shared file's pages are 4 KiB where the kernel keeps shared memory off
// transparent huge pages, and reading them is slower than reading a heap
// buffer's), so x-path-floor says what the remoting costs beyond the copy.
func BenchmarkPinnedCopy(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 20} {
		b.Run(sizeName(size), func(b *testing.B) { benchPinnedCopy(b, size) })
	}
}

// BenchmarkPinnedCopyServer is BenchmarkPinnedCopy at 64 MiB against a
// server in another process, the shape of a deployment, at the address in
// $GPUFABRIC_BENCH_SERVER (e.g. one started with `gpufabric server
// --backend host`), over shared memory.
func BenchmarkPinnedCopyServer(b *testing.B) {
	benchPinnedCopyOn(b, benchServer(b, "shm"), 64<<20)
}

func benchPinnedCopy(b *testing.B, size int) {
	f := newFixture(b, 1, 512<<20)
	f.transport = "shm"
	benchPinnedCopyOn(b, f.dial(b), size)
}

func benchPinnedCopyOn(b *testing.B, s *interpose.Session, size int) {
	dev, _ := attach(b, s, 1)
	ptr, err := dev.Alloc(uint64(size))
	if err != nil {
		b.Fatal(err)
	}
	pinned, err := s.AllocHost(size)
	if err != nil {
		b.Fatal(err)
	}
	if !pinned.Shared() {
		b.Fatal("pinned memory is not shared over shared memory")
	}
	if size >= 2<<20 {
		b.Logf("pinned memory in reserved huge pages: %v", pinned.HugeTLB())
	}
	// Sources hold data: a buffer never written reads the kernel's zero
	// page, from the cache (see bench.Written).
	pageable := bench.Written(size)
	floorSrc, floorDst := bench.Written(size), make([]byte, size)
	copy(floorDst, floorSrc)
	// First touches of device memory and of the host buffers are not what
	// is measured.
	for _, host := range [][]byte{pinned.Bytes(), pageable} {
		if err := dev.CopyHtoD(ptr, host); err != nil {
			b.Fatal(err)
		}
		if err := dev.CopyDtoH(host, ptr); err != nil {
			b.Fatal(err)
		}
	}
	for _, mem := range []struct {
		name string
		host []byte
	}{{"pinned", pinned.Bytes()}, {"pageable", pageable}} {
		for _, dir := range []string{"HtoD", "DtoH"} {
			b.Run(mem.name+"/"+dir, func(b *testing.B) {
				b.SetBytes(int64(size))
				var floorTotal, pathTotal, copyTotal time.Duration
				var ratios []float64
				for b.Loop() {
					tp := time.Now()
					if dir == "HtoD" {
						copy(floorDst, mem.host)
					} else {
						copy(mem.host, floorSrc)
					}
					t0 := time.Now()
					pathTotal += t0.Sub(tp)
					copy(floorDst, floorSrc)
					t1 := time.Now()
					if dir == "HtoD" {
						err = dev.CopyHtoD(ptr, mem.host)
					} else {
						err = dev.CopyDtoH(mem.host, ptr)
					}
					if err != nil {
						b.Fatal(err)
					}
					t2 := time.Now()
					floorTotal += t1.Sub(t0)
					copyTotal += t2.Sub(t1)
					ratios = append(ratios, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
				}
				slices.Sort(ratios)
				b.ReportMetric(float64(size)/floorTotal.Seconds()*float64(len(ratios))/1e6, "floor-MB/s")
				b.ReportMetric(float64(floorTotal)/float64(copyTotal), "x-floor")
				b.ReportMetric(ratios[len(ratios)/2], "x-floor-p50")
				b.ReportMetric(float64(pathTotal)/float64(copyTotal), "x-path-floor")
			})
		}
	}
}
