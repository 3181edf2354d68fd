package engine_test

import (
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// BenchmarkCopy2D copies a box of 1024 rows of 1 KiB, 2 KiB apart on both
// sides, host to device and back, synchronously: as one cuMemcpy2D each
// way ("box"), and, for comparison, as the copy per row a client without
// 2D calls would make ("rows": asynchronous, then one synchronisation).
// Its floor is the same bytes moved in one piece each way on the same
// transport in the same run (copyFloor): the box can do no better, and
// what it costs beyond is packing the rows and the copies that takes.
func BenchmarkCopy2D(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr+"/box", func(b *testing.B) { benchCopy2D(b, tr, false) })
		b.Run(tr+"/rows", func(b *testing.B) { benchCopy2D(b, tr, true) })
	}
}

func benchCopy2D(b *testing.B, tr string, rows bool) {
	const width, height, pitch = 1024, 1024, 2048
	f := newFixture(b, 1, 64<<20)
	f.transport = tr
	s := f.dial(b)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		b.Fatal(err)
	}
	p, err := dev.Alloc(pitch * height)
	if err != nil {
		b.Fatal(err)
	}
	host := interpose.HostPitched{Mem: make([]byte, pitch*height), Pitch: pitch}
	dp := api.Pitched{Ptr: uint64(p), Pitch: pitch}
	box := interpose.Box{Width: width, Height: height, Depth: 1}
	st := dev.DefaultStream()
	floor := copyFloor(b, tr, width*height)
	b.SetBytes(2 * width * height)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if rows {
			for i := range uint64(height) {
				row := host.Mem[i*pitch : i*pitch+width]
				if err := st.CopyHtoDAsync(p+interpose.DevicePtr(i*pitch), row); err != nil {
					b.Fatal(err)
				}
			}
			for i := range uint64(height) {
				row := host.Mem[i*pitch : i*pitch+width]
				if err := st.CopyDtoHAsync(row, p+interpose.DevicePtr(i*pitch)); err != nil {
					b.Fatal(err)
				}
			}
			if err := st.Synchronize(); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if err := st.Copy3DHtoD(dp, host, box, true); err != nil {
			b.Fatal(err)
		}
		if err := st.Copy3DDtoH(host, dp, box, true); err != nil {
			b.Fatal(err)
		}
	}
	bw := float64(2*width*height) * float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(bw/1e6, "MB/s")
	b.ReportMetric(floor/1e6, "floor-MB/s")
	b.ReportMetric(bw/floor, "x-floor")
}
