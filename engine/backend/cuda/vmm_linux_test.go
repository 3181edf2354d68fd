//go:build cgo

package cuda

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

// TestVirtualMemoryFake: physical memory is cleared before it is handed
// out (the fake's holds garbage), and two mappings of it alias.
func TestVirtualMemoryFake(t *testing.T) {
	const gran = api.VMMGranularity
	d := openFake(t, Options{NoMonitor: true})[0]
	free0, _, _ := d.MemInfo()
	va, err := d.Reserve(4*gran, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.CreatePhysical(2 * gran)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Map(va, 2*gran, p, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Map(va+2*gran, gran, p, gran); err != nil {
		t.Fatal(err)
	}
	st, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	read := func(at uint64, n int) []byte {
		t.Helper()
		out := make([]byte, n)
		done := make(chan error, 1)
		if err := st.CopyDtoH(at, uint64(n), func(off uint64, b []byte) error { copy(out[off:], b); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := st.Notify(func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := read(va, 4096); !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("new physical memory reads %x...: not cleared", got[:8])
	}
	if err := st.Memset(va+gran, 0x77, 1, 16); err != nil {
		t.Fatal(err)
	}
	if got := read(va+2*gran, 16); !bytes.Equal(got, bytes.Repeat([]byte{0x77}, 16)) {
		t.Fatalf("the second mapping reads %x", got)
	}
	for _, m := range [][2]uint64{{va, 2 * gran}, {va + 2*gran, gran}} {
		if err := d.Unmap(m[0], m[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeReservation(va, 4*gran); err != nil {
		t.Fatal(err)
	}
	if free, _, _ := d.MemInfo(); free != free0 {
		t.Fatalf("free %d after everything was released, %d before", free, free0)
	}
	st.Destroy()
}

func TestVirtualMemoryMissingFromTheDriver(t *testing.T) {
	old := openFake(t, Options{NoMonitor: true}, "NO_VMM")[0]
	if _, err := old.Reserve(api.VMMGranularity, 0); !errors.Is(err, api.ErrNotSupported) {
		t.Fatalf("a driver without virtual memory management: %v", err)
	}
}
