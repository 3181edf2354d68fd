package engine_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// TestPeerCopies copies between two devices a session holds, on a stream
// of either, and frees right behind an asynchronous copy.
func TestPeerCopies(t *testing.T) { overTransports(t, 2, 64<<20, testPeerCopies) }

func testPeerCopies(t *testing.T, f *fixture) {
	s := f.dial(t)
	d0, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	d1, err := s.Attach(1, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3<<20 + 7
	a, err := d0.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d1.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d0.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i*13 + 5)
	}
	if err := d0.CopyHtoD(a, want); err != nil {
		t.Fatal(err)
	}
	// 0 → 1 on device 0's stream, then 1 → 0 on device 1's, ordered by
	// waiting for the first.
	if err := d0.DefaultStream().CopyPeer(b, d1, a, d0, n, true); err != nil {
		t.Fatal(err)
	}
	if err := d1.DefaultStream().CopyPeer(c, d0, b, d1, n, false); err != nil {
		t.Fatal(err)
	}
	if err := d1.Free(b); err != nil { // queued behind the copy that reads it
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := d1.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if err := d0.CopyDtoH(got, c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the bytes came back changed from the other device")
	}
}

// TestBadPeerCopies: devices outside the session, memory of another
// session, ranges past an allocation and a stream of neither device get
// CUDA errors; a bystander goes on.
func TestBadPeerCopies(t *testing.T) {
	f := newFixture(t, 3, 64<<20)
	by := newBystander(t, f) // on device 0
	r := f.raw(t)
	var att0, att1, att2 api.AttachReply
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, &att0); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.Attach{Device: 1, ShareMillionths: 250_000}, &att1); err != nil {
		t.Fatal(err)
	}
	var a0, a1 api.MemAllocReply
	if err := r.call(&api.MemAlloc{Ordinal: 0, Size: 4096}, &a0); err != nil {
		t.Fatal(err)
	}
	if err := r.call(&api.MemAlloc{Ordinal: 1, Size: 4096}, &a1); err != nil {
		t.Fatal(err)
	}
	// A third device of the session, whose stream is neither side's.
	if err := r.call(&api.Attach{Device: 2, ShareMillionths: 250_000}, &att2); err != nil {
		t.Fatal(err)
	}
	def0 := api.DefaultStream(0)
	tests := []struct {
		name string
		req  *api.MemcpyPeer
		want api.Result
	}{
		{"device outside the session", &api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 7, Src: a0.Ptr, SrcOrdinal: 0, Size: 8, Stream: def0}, api.ErrInvalidDevice},
		{"source of another session", &api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 1, Src: uint64(by.x), SrcOrdinal: 0, Size: 8, Stream: def0}, api.ErrInvalidValue},
		{"destination of another session", &api.MemcpyPeer{Dst: uint64(by.x), DstOrdinal: 0, Src: a1.Ptr, SrcOrdinal: 1, Size: 8, Stream: def0}, api.ErrInvalidValue},
		{"destination on the wrong device", &api.MemcpyPeer{Dst: a0.Ptr, DstOrdinal: 1, Src: a0.Ptr, SrcOrdinal: 0, Size: 8, Stream: def0}, api.ErrInvalidValue},
		{"past the allocation", &api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 1, Src: a0.Ptr, SrcOrdinal: 0, Size: 4097, Stream: def0}, api.ErrInvalidValue},
		{"a stream of neither device", &api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 1, Src: a0.Ptr, SrcOrdinal: 0, Size: 8, Stream: api.DefaultStream(2)}, api.ErrInvalidValue},
		{"unknown stream", &api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 1, Src: a0.Ptr, SrcOrdinal: 0, Size: 8, Stream: 99}, api.ErrInvalidHandle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.call(tt.req, nil); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if err := r.call(&api.MemcpyPeer{Dst: a1.Ptr, DstOrdinal: 1, Src: a0.Ptr, SrcOrdinal: 0, Size: 4096, Stream: api.DefaultStream(1)}, nil); err != nil {
		t.Fatalf("a good copy after the bad ones: %v", err)
	}
	by.check(11)
}
