package engine_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

const gran = api.VMMGranularity

// TestVirtualMemory is PyTorch's expandable segment: a large reservation
// mapped a physical piece at a time, one buffer spanning the pieces,
// pieces unmapped and released, and the share charged for the physical
// memory alone.
func TestVirtualMemory(t *testing.T) { overTransports(t, 1, 64<<20, testVirtualMemory) }

func testVirtualMemory(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Bytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	va, err := dev.Reserve(32*gran, 0) // more addresses than the share
	if err != nil {
		t.Fatal(err)
	}
	free0, _, err := dev.MemGetInfo()
	if err != nil || free0 != 16<<20 {
		t.Fatalf("after a reservation: free %d, %v", free0, err)
	}
	var pieces []*interpose.Physical
	for i := range 3 {
		p, err := dev.CreatePhysical(gran)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Map(va+interpose.DevicePtr(i)*gran, gran, 0); err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, p)
	}
	if free, _, _ := dev.MemGetInfo(); free != free0-3*gran {
		t.Fatalf("three pieces mapped: free %d, want %d", free, free0-3*gran)
	}
	// One buffer across the three pieces, in and out, and a memset on it.
	buf := make([]byte, 3*gran-100)
	for i := range buf {
		buf[i] = byte(i % 253)
	}
	st := dev.DefaultStream()
	if err := st.CopyHtoDAsync(va+50, buf); err != nil {
		t.Fatal(err)
	}
	if err := st.MemsetAsync(va+gran-2, 0xab, 1, 4); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(buf))
	if err := dev.CopyDtoH(back, va+50); err != nil {
		t.Fatal(err)
	}
	copy(buf[gran-52:], []byte{0xab, 0xab, 0xab, 0xab})
	if !bytes.Equal(back, buf) {
		t.Fatal("a buffer across mapped pieces came back changed")
	}
	// Past the mapped pieces is not the session's memory.
	if err := dev.CopyDtoH(make([]byte, 8), va+3*gran); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("read of an unmapped part of the reservation: %v", err)
	}
	// The middle piece goes: the pieces around it stay, and its memory
	// returns to the share once released and unmapped.
	if err := dev.Unmap(va+gran, gran); err != nil {
		t.Fatal(err)
	}
	if err := pieces[1].Release(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyDtoH(make([]byte, 8), va+gran); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("read of an unmapped piece: %v", err)
	}
	end := make([]byte, 16)
	if err := dev.CopyDtoH(end, va+2*gran); err != nil || !bytes.Equal(end, buf[2*gran-50:2*gran-34]) {
		t.Fatalf("the last piece after its neighbour went: %v", err)
	}
	if free, _, _ := dev.MemGetInfo(); free != free0-2*gran {
		t.Fatalf("after releasing a piece: free %d, want %d", free, free0-2*gran)
	}
	// The physical memory of piece 0, mapped again at the hole, aliases.
	if err := pieces[0].Map(va+gran, gran, 0); err != nil {
		t.Fatal(err)
	}
	alias := make([]byte, 16)
	if err := dev.CopyDtoH(alias, va+gran+50); err != nil || !bytes.Equal(alias, buf[:16]) {
		t.Fatalf("a second mapping of one allocation: %v %x", err, alias)
	}
	// Physical memory past the share: out of memory, at once.
	if _, err := dev.CreatePhysical(8 * gran); !errors.Is(err, api.ErrOutOfMemory) {
		t.Fatalf("physical memory past the share: %v", err)
	}
	// A reservation with mappings cannot be freed; without, it can.
	if err := dev.FreeReservation(va, 32*gran); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("freeing a reservation with mappings: %v", err)
	}
	for _, p := range []struct{ at, n interpose.DevicePtr }{{0, 2}, {2, 1}} {
		if err := dev.Unmap(va+p.at*gran, uint64(p.n)*gran); err != nil {
			t.Fatal(err)
		}
	}
	pieces[0].Release()
	pieces[2].Release()
	if err := dev.FreeReservation(va, 32*gran); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if free, _, _ := dev.MemGetInfo(); free != free0 {
		t.Fatalf("after everything went: free %d, want %d", free, free0)
	}
}

// TestBadVirtualMemoryCalls: handles and reservations of another session,
// bad sizes and overlapping mappings get CUDA errors; a bystander goes on.
func TestBadVirtualMemoryCalls(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	other := f.dial(t)
	odev, err := other.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	ova, err := odev.Reserve(4*gran, 0)
	if err != nil {
		t.Fatal(err)
	}
	ophys, err := odev.CreatePhysical(gran)
	if err != nil {
		t.Fatal(err)
	}
	if err := ophys.Map(ova, gran, 0); err != nil {
		t.Fatal(err)
	}

	r := f.raw(t)
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	var res api.MemAllocReply
	if err := r.call(&api.MemAddressReserve{Size: 4 * gran}, &res); err != nil {
		t.Fatal(err)
	}
	va := res.Ptr
	if err := r.call(&api.MemCreate{Handle: 5, Size: 2 * gran}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.MemMap{Ptr: va, Size: gran, Handle: 5}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  api.Message
		want api.Result
	}{
		{"reservation of no bytes", &api.MemAddressReserve{Size: 0}, api.ErrInvalidValue},
		{"reservation off the granularity", &api.MemAddressReserve{Size: gran + 512}, api.ErrInvalidValue},
		{"alignment not a power of two", &api.MemAddressReserve{Size: gran, Align: 3 * gran}, api.ErrInvalidValue},
		{"reservation on a device the session lacks", &api.MemAddressReserve{Ordinal: 3, Size: gran}, api.ErrInvalidDevice},
		{"physical memory off the granularity", &api.MemCreate{Handle: 6, Size: 4096}, api.ErrInvalidValue},
		{"physical memory past the share", &api.MemCreate{Handle: 7, Size: 64 << 20}, api.ErrOutOfMemory},
		{"handle in use", &api.MemCreate{Handle: 5, Size: gran}, api.ErrInvalidHandle},
		{"map of an unknown handle", &api.MemMap{Ptr: va + gran, Size: gran, Handle: 99}, api.ErrInvalidHandle},
		{"map into another session's reservation", &api.MemMap{Ptr: uint64(ova) + gran, Size: gran, Handle: 5}, api.ErrInvalidValue},
		{"map over a mapping", &api.MemMap{Ptr: va, Size: gran, Offset: gran, Handle: 5}, api.ErrInvalidValue},
		{"map past the physical memory", &api.MemMap{Ptr: va + gran, Size: 2 * gran, Offset: gran, Handle: 5}, api.ErrInvalidValue},
		{"map past the reservation", &api.MemMap{Ptr: va + 3*gran, Size: 2 * gran, Handle: 5}, api.ErrInvalidValue},
		{"map at an unaligned address", &api.MemMap{Ptr: va + gran + 512, Size: gran, Handle: 5}, api.ErrInvalidValue},
		{"map at an offset that wraps", &api.MemMap{Ptr: va + gran, Size: gran, Offset: ^uint64(0) - gran + 1, Handle: 5}, api.ErrInvalidValue},
		{"unmap of another session's mapping", &api.MemUnmap{Ptr: uint64(ova), Size: gran}, api.ErrInvalidValue},
		{"unmap of half a mapping", &api.MemUnmap{Ptr: va, Size: gran / 2}, api.ErrInvalidValue},
		{"unmap of nothing mapped", &api.MemUnmap{Ptr: va + 2*gran, Size: gran}, api.ErrInvalidValue},
		{"free of another session's reservation", &api.MemAddressFree{Ptr: uint64(ova), Size: 4 * gran}, api.ErrInvalidValue},
		{"free of part of a reservation", &api.MemAddressFree{Ptr: va, Size: gran}, api.ErrInvalidValue},
		{"release of an unknown handle", &api.MemRelease{Handle: 77}, api.ErrInvalidHandle},
		{"memfree of a mapping", &api.MemFree{Ptr: va}, api.ErrInvalidValue},
		{"copy into another session's mapping", &api.MemcpyDtoD{Dst: uint64(ova), Src: va, Size: 8, Stream: api.DefaultStream(0)}, api.ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.call(tt.req, nil); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// The other session's mapping holds its bytes, and the bystander runs.
	st := odev.DefaultStream()
	if err := st.MemsetAsync(ova, 0x5a, 1, 64); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64)
	if err := odev.CopyDtoH(got, ova); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 64)) {
		t.Fatalf("the other session's mapping: %v %x", err, got)
	}
	by.check(9)
}

// TestVirtualMemoryFreedWithTheSession: a session that ends with memory
// reserved, created and mapped gives all of it back.
func TestVirtualMemoryFreedWithTheSession(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Bytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	va, err := dev.Reserve(8*gran, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dev.CreatePhysical(4 * gran)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Map(va, 4*gran, 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	waitFor(t, func() bool { return len(f.srv.Status().Sessions) == 0 })
	// Another session may take the whole device, and reserve as much.
	s2 := f.dial(t)
	dev2, err := s2.Attach(0, interpose.Share{Fraction: 1})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := dev2.CreatePhysical(32 * gran)
	if err != nil {
		t.Fatalf("the whole device after the session went: %v", err)
	}
	va2, err := dev2.Reserve(8*gran, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Map(va2, 8*gran, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := dev2.CopyDtoH(got, va2); err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("fresh physical memory: %v", err)
	}
}
