//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
)

// vector_add(const float*, const float*, float*, int) as PTX lays it out.
var vectorAddLayout = []api.Param{{Offset: 0, Size: 8}, {Offset: 8, Size: 8}, {Offset: 16, Size: 8}, {Offset: 24, Size: 4}}

func TestPackParams(t *testing.T) {
	a, b, c := uint64(0x2000_0000_1000), uint64(0x2000_0000_2000), uint64(0x2000_0000_3000)
	n := int32(4096)
	// kernelParams: an array of pointers to the arguments, as C passes it.
	args := []uintptr{uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&b)), uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&n))}
	got := packParams(nil, vectorAddLayout, unsafe.Pointer(&args[0]))
	runtime.KeepAlive([]any{&a, &b, &c, &n})
	want := make([]byte, 28)
	binary.LittleEndian.PutUint64(want[0:], a)
	binary.LittleEndian.PutUint64(want[8:], b)
	binary.LittleEndian.PutUint64(want[16:], c)
	binary.LittleEndian.PutUint32(want[24:], uint32(n))
	if !bytes.Equal(got, want) {
		t.Errorf("packParams = %x, want %x", got, want)
	}
	if got := packParams(got, nil, nil); len(got) != 0 {
		t.Errorf("no parameters packed into %d bytes", len(got))
	}
}

func TestExtraParams(t *testing.T) {
	buf := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	size := uintptr(len(buf))
	extra := []uintptr{launchParamBufferPointer, uintptr(unsafe.Pointer(&buf[0])), launchParamBufferSize, uintptr(unsafe.Pointer(&size)), launchParamEnd}
	got, err := extraParams(unsafe.Pointer(&extra[0]))
	if err != nil || !bytes.Equal(got, buf) {
		t.Errorf("extraParams = %x, %v; want %x", got, err, buf)
	}
	for _, bad := range [][]uintptr{
		{launchParamEnd},
		{launchParamBufferPointer, uintptr(unsafe.Pointer(&buf[0])), launchParamEnd},
		{99, 0, launchParamEnd},
	} {
		if _, err := extraParams(unsafe.Pointer(&bad[0])); err == nil {
			t.Errorf("extraParams(%v) accepted", bad)
		}
	}
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&size)
}

func BenchmarkPackParams(b *testing.B) {
	a, n := uint64(0x2000_0000_1000), int32(4096)
	args := []uintptr{uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&n))}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = packParams(buf, vectorAddLayout, unsafe.Pointer(&args[0]))
	}
	runtime.KeepAlive([]any{&a, &n})
}

func TestRegistry(t *testing.T) {
	var r registry
	r.add(&region{base: 0x1000, size: 0x100})
	r.add(&region{base: 0x3000, size: 0x100, global: true})
	r.add(&region{base: 0x2000, size: 0x100, ctx: 7})
	for _, tc := range []struct {
		p    uint64
		base uint64
	}{{0x1000, 0x1000}, {0x10ff, 0x1000}, {0x1100, 0}, {0x0fff, 0}, {0x2080, 0x2000}, {0x3000, 0x3000}, {0x5000, 0}} {
		g := r.find(tc.p)
		if (g == nil) != (tc.base == 0) || g != nil && g.base != tc.base {
			t.Errorf("find(%#x) = %+v, want base %#x", tc.p, g, tc.base)
		}
	}
	if !r.overlaps(0x10f0, 0x20) || r.overlaps(0x1100, 0x100) || !r.overlaps(0x0f00, 0x1000) {
		t.Error("overlaps")
	}
	if g := r.remove(0x3000, func(g *region) bool { return g.global }); g != nil {
		t.Error("a module global was freed")
	}
	if g := r.remove(0x1080, nil); g != nil {
		t.Error("removed by an interior pointer")
	}
	if got := r.removeCtx(7); len(got) != 1 || got[0].base != 0x2000 || r.find(0x2000) != nil {
		t.Errorf("removeCtx = %v", got)
	}
	if g := r.remove(0x1000, nil); g == nil || r.find(0x1000) != nil {
		t.Error("remove")
	}
}
