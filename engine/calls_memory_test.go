package engine

import (
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

func TestBoxesOverlap(t *testing.T) {
	b := func(ptr, pitch, w, h uint64) box { return box{api.Pitched{Ptr: ptr, Pitch: pitch}, w, h, 1} }
	tests := []struct {
		name string
		a, b box
		want bool
	}{
		{"apart", b(0, 100, 50, 4), b(1000, 100, 50, 4), false},
		{"same rows", b(0, 100, 50, 4), b(0, 100, 50, 4), true},
		{"columns side by side", b(0, 100, 50, 4), b(50, 100, 50, 4), false},
		{"columns one byte into each other", b(0, 100, 51, 4), b(50, 100, 50, 4), true},
		{"one row down", b(0, 100, 50, 4), b(100, 100, 50, 4), true},
		{"interleaved rows", b(0, 200, 100, 4), b(100, 200, 100, 4), false},
		{"last row meets first", b(0, 100, 50, 4), b(349, 100, 50, 4), true},
		{"last row ends where first begins", b(0, 100, 50, 4), b(350, 100, 50, 4), false},
		{"3D slices interleaved", box{api.Pitched{Ptr: 0, Pitch: 10, Rows: 4}, 10, 2, 3}, box{api.Pitched{Ptr: 20, Pitch: 10, Rows: 4}, 10, 2, 3}, false},
		{"3D slices meeting", box{api.Pitched{Ptr: 0, Pitch: 10, Rows: 4}, 10, 3, 3}, box{api.Pitched{Ptr: 20, Pitch: 10, Rows: 4}, 10, 2, 3}, true},
	}
	for _, tt := range tests {
		if got := boxesOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
		if got := boxesOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("%s, swapped: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBoxExtent(t *testing.T) {
	tests := []struct {
		b    box
		want uint64
		ok   bool
	}{
		{box{api.Pitched{Pitch: 512}, 100, 1, 1}, 100, true},
		{box{api.Pitched{Pitch: 512}, 100, 3, 1}, 1124, true},
		{box{api.Pitched{Pitch: 512, Rows: 4}, 100, 3, 2}, 4*512 + 2*512 + 100, true},
		{box{api.Pitched{Pitch: 50}, 100, 3, 1}, 0, false},           // pitch < width
		{box{api.Pitched{Pitch: 512, Rows: 2}, 100, 3, 2}, 0, false}, // slice height < rows
		{box{api.Pitched{Pitch: 1 << 62, Rows: 8}, 1, 4, 9}, 0, false},
		{box{api.Pitched{Ptr: ^uint64(0) - 10, Pitch: 16}, 16, 1, 1}, 0, false},
	}
	for _, tt := range tests {
		got, err := tt.b.extent("x")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%+v: %d, %v; want %d, ok %v", tt.b, got, err, tt.want, tt.ok)
		}
	}
}
