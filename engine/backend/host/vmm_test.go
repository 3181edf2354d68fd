package host

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

const gran = api.VMMGranularity

func TestVirtualMemory(t *testing.T) {
	if !vmmSupported {
		t.Skip("no virtual memory management on this system")
	}
	d, err := New(Config{MemorySize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	va, err := d.Reserve(8*gran, 4*gran)
	if err != nil {
		t.Fatal(err)
	}
	if va%(4*gran) != 0 {
		t.Fatalf("reservation at %#x is not aligned to %d", va, 4*gran)
	}
	p, err := d.CreatePhysical(2 * gran)
	if err != nil {
		t.Fatal(err)
	}
	// The same physical memory at two places: they alias.
	if err := d.Map(va, 2*gran, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Map(va+4*gran, gran, p, gran); err != nil {
		t.Fatal(err)
	}
	a, _ := d.HostBytes(va, 2*gran)
	b, _ := d.HostBytes(va+4*gran, gran)
	if !bytes.Equal(a, make([]byte, 2*gran)) {
		t.Fatal("fresh physical memory does not read as zeros")
	}
	copy(a[gran:], "hello")
	if string(b[:5]) != "hello" {
		t.Fatalf("the second mapping reads %q", b[:5])
	}
	// Unmapping one leaves the other; released memory lives while mapped.
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := d.Unmap(va, 2*gran); err != nil {
		t.Fatal(err)
	}
	if a[gran] != 0 {
		t.Fatal("an unmapped range still shows the memory")
	}
	if string(b[:5]) != "hello" {
		t.Fatal("unmapping one mapping lost the other's memory")
	}
	if err := d.Unmap(va+4*gran, gran); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeReservation(va, 8*gran); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeReservation(va, 8*gran); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("second free of a reservation: %v", err)
	}
	// Reservations do not come out of the device's memory.
	if free, total, _ := d.MemInfo(); free != total {
		t.Fatalf("free %d of %d after reservations", free, total)
	}
}

func TestReserveBadInput(t *testing.T) {
	if !vmmSupported {
		t.Skip("no virtual memory management on this system")
	}
	d, err := New(Config{MemorySize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		size, align uint64
		want        api.Result
	}{
		{0, 0, api.ErrInvalidValue},
		{gran + 1, 0, api.ErrInvalidValue},
		{gran, 3 * gran, api.ErrInvalidValue},
		{1 << 40, 0, api.ErrOutOfMemory},
	} {
		if _, err := d.Reserve(tc.size, tc.align); !errors.Is(err, tc.want) {
			t.Errorf("Reserve(%d, %d) = %v, want %v", tc.size, tc.align, err, tc.want)
		}
	}
	if _, err := d.CreatePhysical(gran / 2); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("physical memory of half the granularity: %v", err)
	}
}
