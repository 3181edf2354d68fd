package engine_test

import (
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
)

// BenchmarkGraphOf100 measures what a graph of 100 kernels costs from its
// launch to the end of a synchronisation, beside the same 100 kernels
// launched one by one and synchronised, in alternating turns, and beside
// the transport's round-trip floor measured in the same run. The kernels
// are the host backend's spin of zero nanoseconds, so the figures are the
// remoting's, not the kernels'.
func BenchmarkGraphOf100(b *testing.B) {
	for _, tr := range []string{"tcp", "shm"} {
		b.Run(tr, func(b *testing.B) { benchGraphOf100(b, tr) })
	}
}

const graphKernels = 100

func benchGraphOf100(b *testing.B, tr string) {
	f := newFixture(b, 1, 64<<20)
	f.transport = tr
	s := f.dial(b)
	dev, mod := attach(b, s, 1)
	spin := function(b, mod, "spin")
	st, err := dev.NewStream(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	launches := func() error {
		for range graphKernels {
			if err := spin.Launch(st, interpose.D1(1), interpose.D1(1), 0, uint64(0)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := st.BeginCapture(); err != nil {
		b.Fatal(err)
	}
	if err := launches(); err != nil {
		b.Fatal(err)
	}
	g, err := st.EndCapture()
	if err != nil {
		b.Fatal(err)
	}
	ge, err := g.Instantiate()
	if err != nil {
		b.Fatal(err)
	}
	var graphs, singles []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		if err := ge.Launch(st); err != nil {
			b.Fatal(err)
		}
		if err := st.Synchronize(); err != nil {
			b.Fatal(err)
		}
		graphs = append(graphs, time.Since(t))
		t = time.Now()
		if err := launches(); err != nil {
			b.Fatal(err)
		}
		if err := st.Synchronize(); err != nil {
			b.Fatal(err)
		}
		singles = append(singles, time.Since(t))
	}
	b.StopTimer()
	floor := callFloor(b, tr)
	device := deviceFloor(b)
	g50, s50 := transport.Percentiles(graphs).P50, transport.Percentiles(singles).P50
	b.ReportMetric(float64(device.Nanoseconds())/1e3, "device-floor-us")
	b.ReportMetric(float64(g50)/float64(floor+device), "graph-x-floors")
	b.ReportMetric(float64(g50.Nanoseconds())/1e3, "graph-p50-us")
	b.ReportMetric(float64(s50.Nanoseconds())/1e3, "launches-p50-us")
	b.ReportMetric(float64(floor.Nanoseconds())/1e3, "floor-us")
	b.ReportMetric(float64(g50)/float64(floor), "graph-x-floor")
	b.ReportMetric(float64(s50)/float64(floor), "launches-x-floor")
	b.ReportMetric(float64(s50)/float64(g50), "launches/graph")
}

// noMemory is a launch's memory check for kernels that take no pointers.
type noMemory struct{}

func (noMemory) Contains(backend.DevicePtr, uint64) bool { return false }

// deviceFloor is the median time the host backend takes to run the 100
// kernels on a stream of its own, with nothing remote: the part of a graph
// launch no protocol can remove.
func deviceFloor(b *testing.B) time.Duration {
	d, err := host.New(host.Config{MemorySize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	m, err := d.LoadModule(examples.KernelsPTX)
	if err != nil {
		b.Fatal(err)
	}
	fn, err := m.Function("spin")
	if err != nil {
		b.Fatal(err)
	}
	st, err := d.NewStream(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Destroy()
	cfg := backend.LaunchConfig{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}}
	params := make([]byte, 8)
	var samples []time.Duration
	for range 200 {
		t := time.Now()
		for range graphKernels {
			if err := st.Launch(fn, cfg, params, noMemory{}); err != nil {
				b.Fatal(err)
			}
		}
		done := make(chan error, 1)
		if err := st.Notify(func(err error) { done <- err }); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(t))
	}
	return transport.Percentiles(samples).P50
}
