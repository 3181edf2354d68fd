package rdma

import (
	"testing"
)

// BenchmarkTransfer sends payloads one way over the emulation and reports
// the CPU copies each payload byte cost, both sides together, beside the
// physical floor of this process: one memmove of the same bytes.
func BenchmarkTransfer(b *testing.B) {
	for _, bc := range []struct {
		name     string
		size     int
		toServer bool
	}{
		{"eager-4KiB-h2d", 4 << 10, true},
		{"staged-4MiB-h2d", 4 << 20, true},
		{"written-4MiB-d2h", 4 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFabric(b, Config{}, EmuOptions{})
			client, server := f.pair(b)
			a, r := client, server
			if !bc.toServer {
				a, r = server, client
			}
			payload, dst := pattern(bc.size, 1), make([]byte, bc.size)
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, _, err := r.Recv(); err != nil {
						done <- err
						return
					}
					if err := r.ReadPayload(dst); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := a.Send(nil, payload); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			copied := a.Stats().CopiedBytes + r.Stats().CopiedBytes
			b.ReportMetric(float64(copied)/float64(int64(b.N)*int64(bc.size)), "copies/byte")
		})
	}
}

// BenchmarkMemmoveFloor is the floor the transfers stand beside.
func BenchmarkMemmoveFloor(b *testing.B) {
	src, dst := pattern(4<<20, 1), make([]byte, 4<<20)
	b.SetBytes(int64(len(src)))
	for range b.N {
		copy(dst, src)
	}
}
