package engine

import "testing"

func TestStagingBuffers(t *testing.T) {
	for _, n := range []int{1, 4096, 4097, 1 << 19, 1<<20 + 1, 3 << 20, 64 << 20, 64<<20 + 1} {
		b := getStaging(n)
		if len(b) != n || cap(b) < n {
			t.Fatalf("getStaging(%d): len %d cap %d", n, len(b), cap(b))
		}
		b[0], b[n-1] = 1, 2 // writable end to end
		putStaging(b)
	}
	// Big classes keep a few buffers, no more.
	var bufs [][]byte
	for range keptPerClass + 3 {
		bufs = append(bufs, getStaging(2<<20))
	}
	for _, b := range bufs {
		putStaging(b)
	}
	keptMu.Lock()
	n := len(kept[stagingClass(2<<20)])
	keptMu.Unlock()
	if n != keptPerClass {
		t.Errorf("%d buffers of 2 MiB kept, want %d", n, keptPerClass)
	}
}

// BenchmarkStagingFresh: a 4 MiB payload written into a freshly mapped
// staging buffer (as when more chunks are in flight than the class keeps),
// beside the same bytes written into a warm buffer, timed in turns.
func BenchmarkStagingFresh(b *testing.B) {
	const size = 4 << 20
	src, warm := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i*7 + 1) // written: an unwritten source reads the zero page, from the cache
	}
	copy(warm, src)
	b.SetBytes(size)
	var floor, fresh int64
	for b.Loop() {
		t0 := nanotime()
		copy(warm, src)
		t1 := nanotime()
		buf := bigBuffer(size, size)
		copy(buf, src)
		freeBigBuffer(buf)
		t2 := nanotime()
		floor += t1 - t0
		fresh += t2 - t1
	}
	b.ReportMetric(float64(floor)/float64(fresh), "x-warm")
}
