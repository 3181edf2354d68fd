package host

import (
	"bytes"
	"testing"
	"time"
)

// TestFreedMemoryReadsZero is the tenant-isolation guarantee on Alloc: a
// range freed by one owner and allocated again reads as zeros, whatever the
// first owner wrote. Each case lays out the arena so that the reused range
// comes back at the same address (first fit) and starts where the case
// wants it relative to page boundaries.
func TestFreedMemoryReadsZero(t *testing.T) {
	tests := []struct {
		name   string
		before uint64 // bytes allocated first and kept, to shift the range
		size   uint64
	}{
		{"sub-page", 0, 100},
		{"one page", 0, 4096},
		{"unaligned small", allocAlign, 5000},
		{"just under the madvise threshold", 0, scrubPages*4096 - 1},
		{"whole pages, madvised", 0, 1 << 20},
		{"partial pages at both ends", allocAlign, 1<<20 + 3*allocAlign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(Config{MemorySize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if tt.before > 0 {
				if _, err := d.Alloc(tt.before); err != nil {
					t.Fatal(err)
				}
			}
			p, err := d.Alloc(tt.size)
			if err != nil {
				t.Fatal(err)
			}
			// The first tenant fills its whole rounded allocation.
			n, _ := roundUp(tt.size)
			b, err := d.HostBytes(p, n)
			if err != nil {
				t.Fatal(err)
			}
			fill(b, 0xa5a5a5a5, 4)
			if err := d.Free(p); err != nil {
				t.Fatal(err)
			}
			q, err := d.Alloc(tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if q != p {
				t.Fatalf("second allocation at %#x, want the freed %#x", q, p)
			}
			b, _ = d.HostBytes(q, n)
			if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("byte %d of the reused range is %#x: the previous owner's data", i, b[i])
			}
		})
	}
}

// TestFreedMemoryReadsZeroRandom frees and reallocates ranges of random
// sizes that overlap earlier ones in every way first fit produces, and
// checks that each new allocation reads zero before it is written.
func TestFreedMemoryReadsZeroRandom(t *testing.T) {
	d, err := New(Config{MemorySize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var live []uint64
	sizes := map[uint64]uint64{}
	seed := uint64(7)
	next := func(n uint64) uint64 { seed = seed*6364136223846793005 + 1442695040888963407; return seed >> 33 % n }
	for range 400 {
		if len(live) > 4 || (len(live) > 0 && next(2) == 0) {
			i := next(uint64(len(live)))
			if err := d.Free(live[i]); err != nil {
				t.Fatal(err)
			}
			live = append(live[:i], live[i+1:]...)
			continue
		}
		n := 1 + next(300<<10)
		p, err := d.Alloc(n)
		if err != nil {
			continue
		}
		b, _ := d.HostBytes(p, n)
		if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("new %d-byte allocation at %#x: byte %d is %#x", n, p, i, b[i])
		}
		fill(b, 0x5a5a5a5a, 1)
		live = append(live, p)
		sizes[p] = n
	}
}

// BenchmarkScrub64MiB measures what the scrub costs beside the copy that
// fills the memory: per iteration, a 64 MiB host-to-device copy into a
// warm allocation, the Free that scrubs it, and the same copy into the
// freshly scrubbed range, which pays the page faults madvise deferred.
// Metrics: scrub-GB/s (Free's rate), scrub/copy (Free's time over the warm
// copy's), refault/copy (the copy after a scrub over the warm copy: the
// deferred part of the cost), and clear/copy for the alternative of
// zeroing every byte at Free.
func BenchmarkScrub64MiB(b *testing.B) {
	const size = 64 << 20
	d, err := New(Config{MemorySize: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s := newStream(d)
	defer s.Destroy()
	src := bytes.Repeat([]byte{0x5a}, size)
	copyTo := func(p uint64) time.Duration {
		done := make(chan struct{})
		start := time.Now()
		if err := s.CopyHtoD(p, src, func() { close(done) }); err != nil {
			b.Fatal(err)
		}
		<-done
		return time.Since(start)
	}
	var warm, scrubT, refault, clearT time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		p, err := d.Alloc(size)
		if err != nil {
			b.Fatal(err)
		}
		copyTo(p)         // fault the pages in
		warm += copyTo(p) // the copy a client pays for
		arena, _ := d.HostBytes(p, size)
		start := time.Now()
		clear(arena) // the alternative: zero every byte
		clearT += time.Since(start)
		start = time.Now()
		if err := d.Free(p); err != nil {
			b.Fatal(err)
		}
		scrubT += time.Since(start)
		q, err := d.Alloc(size)
		if err != nil || q != p {
			b.Fatalf("realloc at %#x, %v; want %#x", q, err, p)
		}
		refault += copyTo(q)
		d.Free(q)
	}
	b.ReportMetric(float64(size)*float64(b.N)/scrubT.Seconds()/1e9, "scrub-GB/s")
	b.ReportMetric(float64(size)*float64(b.N)/warm.Seconds()/1e9, "copy-GB/s")
	b.ReportMetric(scrubT.Seconds()/warm.Seconds(), "scrub/copy")
	b.ReportMetric(refault.Seconds()/warm.Seconds(), "refault/copy")
	b.ReportMetric(clearT.Seconds()/warm.Seconds(), "clear/copy")
}
