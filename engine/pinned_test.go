package engine_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport/shm"
)

// TestPinnedCopies: copies between pinned host memory and the device give
// the same bytes over every transport, sync and async, whole and at
// offsets; over shared memory (call lane or bulk lane) the memory is
// shared with the server, over TCP alone it is ordinary memory.
func TestPinnedCopies(t *testing.T) { overTransports(t, 1, 64<<20, testPinnedCopies) }

func testPinnedCopies(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3<<20 + 5
	src, err := s.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := s.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.transport != "tcp"; src.Shared() != want {
		t.Fatalf("over %s: %v, want shared %v", f.transport, src, want)
	}
	d, err := dev.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	want := patternBytes(n, 1)
	copy(src.Bytes(), want)

	// Synchronous, whole.
	if err := dev.CopyHtoD(d, src.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyDtoH(dst.Bytes(), d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Bytes(), want) {
		t.Fatal("sync round trip through pinned memory changed the bytes")
	}

	// Asynchronous, at offsets, on a stream of its own; then the stream
	// is synchronised before the memory is read or changed.
	st, err := dev.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want2 := patternBytes(n, 2)
	copy(src.Bytes(), want2)
	const off, m = 4096 + 13, 1<<20 + 7
	if err := st.CopyHtoDAsync(d+off, src.Bytes()[off:off+m]); err != nil {
		t.Fatal(err)
	}
	clear(dst.Bytes())
	if err := st.CopyDtoHAsync(dst.Bytes()[off:off+m], d+off); err != nil {
		t.Fatal(err)
	}
	if err := st.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Bytes()[off:off+m], want2[off:off+m]) {
		t.Fatal("async copies at an offset changed the bytes")
	}
	if dst.Bytes()[off-1] != 0 || dst.Bytes()[off+m] != 0 {
		t.Fatal("an async copy into pinned memory wrote outside its range")
	}

	// Freeing right after queuing copies that use the memory: Free waits
	// for them, as cuMemFreeHost does.
	if err := st.CopyHtoDAsync(d, src.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := src.Free(); err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyDtoH(dst.Bytes(), d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Bytes(), want2) {
		t.Fatal("a copy queued before Free did not complete intact")
	}
	if err := src.Free(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("second Free: %v, want CUDA_ERROR_INVALID_VALUE", err)
	}
	if err := dst.Free(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}
}

func patternBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

// rawShm is a raw shared-memory connection that has said Hello and
// attached device 0, with the region files it passes under its control.
type rawShm struct {
	*rawConn
	c regionSharer
}

// regionSharer is the shared-memory connection's side of passing host
// regions.
type regionSharer interface {
	ShareRegion(id uint32, h *shm.HostRegion) error
	Close() error
}

func (f *fixture) rawShm(t *testing.T) *rawShm {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := shm.Dial(ctx, shmPath(f.addr), shm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawShm{rawConn: &rawConn{t: t, conn: c}, c: c.(regionSharer)}
	if err := r.call(&api.Hello{Magic: api.Magic, Version: api.Version, Client: "raw-shm"}, new(api.HelloReply)); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	return r
}

// region passes and maps a host region of size bytes as id.
func (r *rawShm) region(id uint32, size int) []byte {
	r.t.Helper()
	h, err := shm.NewHostRegion(size)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { h.Close() })
	if err := r.c.ShareRegion(id, h); err != nil {
		r.t.Fatal(err)
	}
	if err := r.call(&api.PinnedMap{Region: id, Size: uint64(h.Size())}, nil); err != nil {
		r.t.Fatal(err)
	}
	mem, err := h.Map()
	if err != nil {
		r.t.Fatal(err)
	}
	return mem
}

// TestPinnedBadInput: every pinned call a client can get wrong fails with
// a CUDA error, the session goes on, and a bystander on the same device is
// untouched.
func TestPinnedBadInput(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	f.transport = "shm"
	by := newBystander(t, f)
	r := f.rawShm(t)
	var alloc api.MemAllocReply
	if err := r.call(&api.MemAlloc{Ordinal: 0, Size: 1 << 20}, &alloc); err != nil {
		t.Fatal(err)
	}
	mem := r.region(1, 64<<10)
	copy(mem, "pinned")

	other := f.rawShm(t)
	other.region(2, 4096) // another session's region 2; ours has none

	def := api.DefaultStream(0)
	tests := []struct {
		name string
		call api.Message
		want api.Result
	}{
		{"copy from a region never mapped", &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 9, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"copy from another session's region", &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 2, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"copy into another session's region", &api.MemcpyDtoHPinned{Src: alloc.Ptr, Region: 2, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"range past the region's end", &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Offset: 64<<10 - 8, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"offset past the region's end", &api.MemcpyDtoHPinned{Src: alloc.Ptr, Region: 1, Offset: 1 << 40, Size: 1, Stream: def}, api.ErrInvalidValue},
		{"offset and size that overflow", &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Offset: 1 << 63, Size: 1 << 63, Stream: def}, api.ErrInvalidValue},
		{"device range outside the session's memory", &api.MemcpyHtoDPinned{Dst: alloc.Ptr + 1<<20 - 8, Region: 1, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"device address of no allocation", &api.MemcpyDtoHPinned{Src: 0x10, Region: 1, Size: 16, Stream: def}, api.ErrInvalidValue},
		{"unknown stream", &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Size: 16, Stream: 77}, api.ErrInvalidHandle},
		{"map an id already mapped", &api.PinnedMap{Region: 1, Size: 64 << 10}, api.ErrInvalidValue},
		{"unmap a region never mapped", &api.PinnedUnmap{Region: 5}, api.ErrInvalidValue},
		{"unmap another session's region", &api.PinnedUnmap{Region: 2}, api.ErrInvalidValue},
		{"map more than the session may hold", &api.PinnedMap{Region: 6, Size: 1 << 50}, api.ErrOutOfMemory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.t = t
			err := r.call(tt.call, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	r.t = t

	// The region still works, and is ours: copy it to the device and back.
	if err := r.call(&api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Size: 64 << 10, Stream: def}, nil); err != nil {
		t.Fatal(err)
	}
	clear(mem)
	if err := r.call(&api.MemcpyDtoHPinned{Src: alloc.Ptr, Region: 1, Size: 64 << 10, Stream: def}, nil); err != nil {
		t.Fatal(err)
	}
	if string(mem[:6]) != "pinned" {
		t.Fatalf("region after the bad calls holds %q", mem[:6])
	}
	// Unmapped, it can be named no more.
	if err := r.call(&api.PinnedUnmap{Region: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Size: 16, Stream: def}, nil); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("copy from an unmapped region: %v", err)
	}
	if err := r.call(&api.PinnedUnmap{Region: 1}, nil); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("unmap twice: %v", err)
	}
	// A map whose file never came.
	if err := r.call(&api.PinnedMap{Region: 8, Size: 4096}, nil); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("map without a file: %v", err)
	}
	by.check(3)
}

// TestPinnedMapNeedsSharedMemory: over TCP alone there is nothing to map.
func TestPinnedMapNeedsSharedMemory(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	r := f.raw(t)
	if err := r.call(&api.PinnedMap{Region: 1, Size: 4096}, nil); !errors.Is(err, api.ErrNotSupported) {
		t.Fatalf("PinnedMap over TCP: %v, want CUDA_ERROR_NOT_SUPPORTED", err)
	}
}

// TestPinnedSessionEnd: a session that ends holding regions, with copies
// in flight, takes nothing of the server's with it.
func TestPinnedSessionEnd(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	f.transport = "shm"
	by := newBystander(t, f)
	for round := range 3 {
		r := f.rawShm(t)
		var alloc api.MemAllocReply
		if err := r.call(&api.MemAlloc{Ordinal: 0, Size: 4 << 20}, &alloc); err != nil {
			t.Fatal(err)
		}
		r.region(1, 4<<20)
		for range 8 {
			r.sendBody(api.AppendRequest(nil, 1000, api.FlagAsync, &api.MemcpyHtoDPinned{Dst: alloc.Ptr, Region: 1, Size: 4 << 20, Stream: api.DefaultStream(0)}), nil)
		}
		r.c.Close()
		by.check(uint32(10 + round))
	}
}

// TestPinnedAsyncCopiesRunWhenTheStreamArrives: an asynchronous copy from
// pinned memory reads it when the stream reaches the copy, not when it is
// queued, and one into pinned memory writes it then, as the driver's DMA
// does. A second-long spin holds the stream while the test changes the
// source and looks at the destination; both happen microseconds after the
// copies are queued.
func TestPinnedAsyncCopiesRunWhenTheStreamArrives(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	f.transport = "shm"
	s := f.dial(t)
	dev, mod := attach(t, s, 0.5)
	spin := function(t, mod, "spin")
	const n = 1 << 20
	d, err := dev.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.AllocHost(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := h.Bytes()[:n], h.Bytes()[n:]
	st, err := dev.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	copy(src, patternBytes(n, 1))
	copy(dst, patternBytes(n, 3))
	if err := spin.Launch(st, interpose.D1(1), interpose.D1(1), 0, uint64(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyHtoDAsync(d, src); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyDtoHAsync(dst, d); err != nil {
		t.Fatal(err)
	}
	copy(src, patternBytes(n, 2)) // before the stream reaches the copy
	untouched := bytes.Equal(dst, patternBytes(n, 3))
	if err := st.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if !untouched {
		t.Error("the copy into pinned memory wrote it before the stream reached it")
	}
	if !bytes.Equal(dst, patternBytes(n, 2)) {
		t.Error("the copy from pinned memory did not read it when the stream reached it")
	}
}

// TestPinnedRefusedMapsHoldNothing: a client past its pinned limit, whose
// library falls back to ordinary memory and asks again on the next
// allocation, is refused every time and keeps its connection: the files
// it passed for refused regions are not held against it.
func TestPinnedRefusedMapsHoldNothing(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	r := f.rawShm(t)
	for id := uint32(1); id <= 4200; id++ {
		h, err := shm.NewHostRegion(4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.c.ShareRegion(id, h); err != nil {
			t.Fatalf("region %d: %v", id, err)
		}
		if err := r.call(&api.PinnedMap{Region: id, Size: 1 << 50}, nil); !errors.Is(err, api.ErrOutOfMemory) {
			t.Fatalf("region %d past the limit: %v", id, err)
		}
		h.Close()
	}
	r.region(9999, 4096)
}
