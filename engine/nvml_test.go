package engine_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// TestNVMLView checks the NVML view of a host-backend device over each
// transport: labelled as emulated, versions that parse, and memory that is
// the session's share and what the session holds, not the card's.
func TestNVMLView(t *testing.T) { overTransports(t, 1, 256<<20, testNVMLView) }

func testNVMLView(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Bytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	v, err := dev.NVML()
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != api.NVMLSourceEmulated {
		t.Errorf("host device NVML source %q, want %q", v.Source, api.NVMLSourceEmulated)
	}
	if v.Quota != 64<<20 || v.SessionUsed != 0 {
		t.Errorf("quota %d used %d, want the 64 MiB share and nothing held", v.Quota, v.SessionUsed)
	}
	for _, s := range []string{v.DriverVersion, strings.TrimPrefix(v.NVMLVersion, "12.")} {
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			t.Errorf("version %q is not the driver's MAJOR.MINOR.PATCH", s)
		}
		for _, p := range parts {
			if _, err := strconv.Atoi(p); err != nil {
				t.Errorf("version %q: %q is not a number", s, p)
			}
		}
	}
	if v.BAR1Total > v.Quota {
		t.Errorf("BAR1 total %d exceeds the share %d", v.BAR1Total, v.Quota)
	}
	ptr, err := dev.Alloc(3 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if v, err = dev.NVML(); err != nil || v.SessionUsed < 3<<20 {
		t.Errorf("after a 3 MiB allocation the session holds %d bytes (%v)", v.SessionUsed, err)
	}
	if err := dev.Free(ptr); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if v, err = dev.NVML(); err != nil || v.SessionUsed != 0 {
		t.Errorf("after the free the session holds %d bytes (%v)", v.SessionUsed, err)
	}
}

// TestNVMLBadOrdinal: a device the session does not hold is an error for
// that call only; the session and a bystander go on.
func TestNVMLBadOrdinal(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	r := f.raw(t)
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.NVMLQuery{Ordinal: 7}, new(api.NVMLDevice)); !errors.Is(err, api.ErrInvalidDevice) {
		t.Fatalf("NVML of ordinal 7: %v, want CUDA_ERROR_INVALID_DEVICE", err)
	}
	var v api.NVMLDevice
	if err := r.call(&api.NVMLQuery{Ordinal: 0}, &v); err != nil || v.Quota != 16<<20 {
		t.Fatalf("NVML of the session's device after a bad ordinal: quota %d, %v", v.Quota, err)
	}
	by.check(1)
}

// BenchmarkNVMLQuery measures one NVML view (every reading of a device in
// one reply) beside a Ping, the cheapest call, and the transport's raw
// round trip, all in the same run: what a monitoring pass costs a client
// that reads its dozen fields from one view.
func BenchmarkNVMLQuery(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			f := newFixture(b, 1, 64<<20)
			f.transport = tr
			s := f.dial(b)
			dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
			if err != nil {
				b.Fatal(err)
			}
			floor := callFloor(b, tr)
			pingStart := time.Now()
			const pings = 2000
			for range pings {
				if err := s.Ping(); err != nil {
					b.Fatal(err)
				}
			}
			ping := time.Since(pingStart) / pings
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := dev.NVML(); err != nil {
					b.Fatal(err)
				}
			}
			per := time.Since(start) / time.Duration(b.N)
			b.StopTimer()
			b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/op")
			b.ReportMetric(float64(per)/float64(floor), "x-floor")
			b.ReportMetric(float64(per)/float64(ping), "x-ping")
		})
	}
}
