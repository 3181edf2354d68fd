package engine_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// TestPitchedCopies moves a 3D box host → device → device → host through
// pitched operands of different pitches on both sides, and checks every
// byte, the gaps between rows included, which no copy may touch.
func TestPitchedCopies(t *testing.T) { overTransports(t, 1, 64<<20, testPitchedCopies) }

func testPitchedCopies(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	const w, h, depth = 200, 9, 3
	st := dev.DefaultStream()
	// The host source: pitch 301, 11 rows a slice, every byte numbered.
	src := interpose.HostPitched{Pitch: 301, Rows: 11}
	src.Mem = make([]byte, src.Pitch*src.Rows*depth)
	for i := range src.Mem {
		src.Mem[i] = byte(i*7 + 1)
	}
	a, err := dev.Alloc(512 * 10 * depth)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dev.Alloc(256 * h * depth)
	if err != nil {
		t.Fatal(err)
	}
	box := interpose.Box{Width: w, Height: h, Depth: depth}
	pa := api.Pitched{Ptr: uint64(a), Pitch: 512, Rows: 10}
	pb := api.Pitched{Ptr: uint64(b), Pitch: 256, Rows: h}
	if err := st.Copy3DHtoD(pa, src, box, false); err != nil {
		t.Fatal(err)
	}
	if err := st.Copy3DDtoD(pb, pa, box, false); err != nil {
		t.Fatal(err)
	}
	dst := interpose.HostPitched{Pitch: 333, Rows: 12}
	dst.Mem = make([]byte, dst.Pitch*dst.Rows*depth)
	if err := st.Copy3DDtoH(dst, pb, box, true); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, len(dst.Mem))
	for z := range uint64(depth) {
		for y := range uint64(h) {
			so := (z*src.Rows + y) * src.Pitch
			do := (z*dst.Rows + y) * dst.Pitch
			copy(want[do:do+w], src.Mem[so:so+w])
		}
	}
	if !bytes.Equal(dst.Mem, want) {
		t.Fatal("the box came back changed")
	}
	// The gaps of a were never written: a's bytes past the width of a
	// row read zero.
	whole := make([]byte, 512*10*depth)
	if err := dev.CopyDtoH(whole, a); err != nil {
		t.Fatal(err)
	}
	for i, v := range whole {
		if col, row := i%512, (i/512)%10; (col >= w || row >= h) && v != 0 {
			t.Fatalf("a[%d] (row %d, column %d) = %d: a copy wrote outside its box", i, row, col, v)
		}
	}

	// A 2D memset of 16-bit elements, and its gaps.
	if err := st.Memset2D(b, 256, 0xbeef, 2, 50, h, false); err != nil {
		t.Fatal(err)
	}
	rows := make([]byte, 256*h)
	if err := dev.CopyDtoH(rows, b); err != nil {
		t.Fatal(err)
	}
	for y := range h {
		for x := range 256 {
			got := rows[y*256+x]
			switch {
			case x < 100 && got != [2]byte{0xef, 0xbe}[x%2]:
				t.Fatalf("row %d byte %d = %#x: not set", y, x, got)
			case x >= 100 && x < w && got != src.Mem[y*int(src.Pitch)+x]:
				t.Fatalf("row %d byte %d = %#x: the memset reached past its width", y, x, got)
			}
		}
	}
}

// TestPitchedCopiesSplit: a box of more rows than one call carries, and
// rows wider than a chunk, are split by the client and arrive whole.
func TestPitchedCopiesSplit(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for _, box := range []interpose.Box{
		{Width: 3, Height: api.MaxBoxRows + 5, Depth: 1},
		{Width: 5 << 20, Height: 2, Depth: 1},
		{Width: 64, Height: 300, Depth: 300},
	} {
		pitch := box.Width + 1
		n := pitch * box.Height * box.Depth
		p, err := dev.Alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		host := interpose.HostPitched{Mem: make([]byte, n), Pitch: pitch, Rows: box.Height}
		for i := range host.Mem {
			host.Mem[i] = byte(i % 251)
		}
		dp := api.Pitched{Ptr: uint64(p), Pitch: pitch, Rows: box.Height}
		st := dev.DefaultStream()
		if err := st.Copy3DHtoD(dp, host, box, false); err != nil {
			t.Fatalf("%+v: %v", box, err)
		}
		back := interpose.HostPitched{Mem: make([]byte, n), Pitch: pitch, Rows: box.Height}
		if err := st.Copy3DDtoH(back, dp, box, true); err != nil {
			t.Fatalf("%+v: %v", box, err)
		}
		for i := range back.Mem {
			if uint64(i)%pitch == box.Width {
				continue // the gap column
			}
			if back.Mem[i] != host.Mem[i] {
				t.Fatalf("%+v: byte %d = %d, want %d", box, i, back.Mem[i], host.Mem[i])
			}
		}
		if err := dev.Free(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadStridedCalls: every malformed or hostile strided call gets a CUDA
// error; the session and a bystander go on.
func TestBadStridedCalls(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	r := f.raw(t)
	if err := r.call(&api.Attach{Device: 0, ShareMillionths: 250_000}, new(api.AttachReply)); err != nil {
		t.Fatal(err)
	}
	var alloc api.MemAllocReply
	if err := r.call(&api.MemAlloc{Size: 4096}, &alloc); err != nil {
		t.Fatal(err)
	}
	def := api.DefaultStream(0)
	at := func(off, pitch uint64) api.Pitched { return api.Pitched{Ptr: alloc.Ptr + off, Pitch: pitch} }
	dtod := func(dst, src api.Pitched, w, h, d uint64) *api.Memcpy3D {
		return &api.Memcpy3D{Kind: api.Copy3DDtoD, Dst: dst, Src: src, Width: w, Height: h, Depth: d, Stream: def}
	}
	tests := []struct {
		name    string
		req     api.Message
		payload []byte
		want    api.Result
	}{
		{"pitch less than the width", dtod(at(0, 64), at(2048, 128), 100, 4, 1), nil, api.ErrInvalidValue},
		{"box past the allocation", dtod(at(0, 1024), at(2048, 128), 100, 5, 1), nil, api.ErrInvalidValue},
		{"source of another session", dtod(at(0, 128), api.Pitched{Ptr: uint64(by.x), Pitch: 128}, 64, 4, 1), nil, api.ErrInvalidValue},
		{"destination of another session", dtod(api.Pitched{Ptr: uint64(by.x), Pitch: 128}, at(0, 128), 64, 4, 1), nil, api.ErrInvalidValue},
		{"overlapping rows", dtod(at(64, 128), at(0, 128), 100, 4, 1), nil, api.ErrInvalidValue},
		{"slice height below the box's", dtod(api.Pitched{Ptr: alloc.Ptr, Pitch: 64, Rows: 2}, at(2048, 64), 64, 4, 2), nil, api.ErrInvalidValue},
		{"pitch that overflows", dtod(at(0, 1<<62), at(2048, 64), 64, 8, 1), nil, api.ErrInvalidValue},
		{"too many rows", dtod(at(0, 0), at(2048, 0), 1, api.MaxBoxRows+1, 1), nil, api.ErrInvalidValue},
		{"rows × depth overflows", dtod(at(0, 0), at(2048, 0), 1, 1<<33, 1<<33), nil, api.ErrInvalidValue},
		{"unknown direction", &api.Memcpy3D{Kind: 9, Width: 1, Height: 1, Depth: 1, Stream: def}, nil, api.ErrInvalidValue},
		{"payload of the wrong size", &api.Memcpy3D{Kind: api.Copy3DHtoD, Dst: at(0, 64), Width: 8, Height: 2, Depth: 1, Stream: def}, make([]byte, 15), api.ErrInvalidValue},
		{"payload on a device-to-device copy", dtod(at(0, 64), at(2048, 64), 8, 2, 1), make([]byte, 16), api.ErrInvalidValue},
		{"write into another session", &api.Memcpy3D{Kind: api.Copy3DHtoD, Dst: api.Pitched{Ptr: uint64(by.x), Pitch: 64}, Width: 8, Height: 2, Depth: 1, Stream: def}, make([]byte, 16), api.ErrInvalidValue},
		{"read of another session", &api.Memcpy3D{Kind: api.Copy3DDtoH, Src: api.Pitched{Ptr: uint64(by.x), Pitch: 64}, Width: 8, Height: 2, Depth: 1, Stream: def}, nil, api.ErrInvalidValue},
		{"read past the allocation", &api.Memcpy3D{Kind: api.Copy3DDtoH, Src: at(4000, 64), Width: 8, Height: 3, Depth: 1, Stream: def}, nil, api.ErrInvalidValue},
		{"copy on an unknown stream", &api.Memcpy3D{Kind: api.Copy3DDtoD, Dst: at(0, 64), Src: at(2048, 64), Width: 8, Height: 2, Depth: 1, Stream: 77}, nil, api.ErrInvalidHandle},
		{"memset of 3-byte elements", &api.Memset2D{Dst: alloc.Ptr, Pitch: 64, ElemSize: 3, Width: 4, Height: 4, Stream: def}, nil, api.ErrInvalidValue},
		{"memset with a short pitch", &api.Memset2D{Dst: alloc.Ptr, Pitch: 8, ElemSize: 4, Width: 4, Height: 4, Stream: def}, nil, api.ErrInvalidValue},
		{"memset past the allocation", &api.Memset2D{Dst: alloc.Ptr, Pitch: 1024, ElemSize: 4, Width: 4, Height: 5, Stream: def}, nil, api.ErrInvalidValue},
		{"memset of another session", &api.Memset2D{Dst: uint64(by.x), Pitch: 64, ElemSize: 4, Width: 4, Height: 2, Stream: def}, nil, api.ErrInvalidValue},
		{"memset width overflows", &api.Memset2D{Dst: alloc.Ptr, Pitch: 64, ElemSize: 4, Width: 1 << 63, Height: 1, Stream: def}, nil, api.ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.seq++
			r.sendBody(api.AppendRequest(nil, r.seq, 0, tt.req), tt.payload)
			h, err := r.reply(nil)
			if h.Seq != r.seq {
				t.Fatalf("reply to %d, want %d", h.Seq, r.seq)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// Nothing of the bystander changed, and the session still works.
	if err := r.call(&api.Memset2D{Dst: alloc.Ptr, Pitch: 64, Value: 7, ElemSize: 4, Width: 16, Height: 64, Stream: def}, nil); err != nil {
		t.Fatal(err)
	}
	by.check(42)
}
