package interpose

import "testing"

// TestHostMemsFind: a copy's host range becomes a pinned copy only when
// all of it lies inside one shared allocation, and the offset is its own.
func TestHostMemsFind(t *testing.T) {
	backing := make([]byte, 3*4096)
	a := &HostMem{id: 1, b: backing[:4096:4096]}
	b := &HostMem{id: 2, b: backing[8192:]}
	for _, h := range []*HostMem{b, a} {
		h.base = addr(h.b)
	}
	var m hostMems
	if _, _, ok := m.find(a.b); ok {
		t.Fatal("found a range in an empty table")
	}
	m.add(b)
	m.add(a)
	tests := []struct {
		name   string
		b      []byte
		id     uint32 // 0: not found
		offset uint64
	}{
		{"all of a", a.b, 1, 0},
		{"inside a", a.b[100:200], 1, 100},
		{"the last byte of a", a.b[4095:], 1, 4095},
		{"inside b", b.b[4000:4096], 2, 4000},
		{"between them", backing[4096:8192], 0, 0},
		{"from a past its end", backing[4000:4200], 0, 0},
		{"from the gap into b", backing[8000:8300], 0, 0},
		{"ordinary memory", make([]byte, 64), 0, 0},
		{"empty", a.b[:0], 0, 0},
	}
	for _, tt := range tests {
		h, off, ok := m.find(tt.b)
		switch {
		case tt.id == 0 && ok:
			t.Errorf("%s: found in region %d", tt.name, h.id)
		case tt.id != 0 && (!ok || h.id != tt.id || off != tt.offset):
			t.Errorf("%s: found %v (region %v) at %d, want region %d at %d", tt.name, ok, h, off, tt.id, tt.offset)
		}
	}
	m.remove(a)
	if _, _, ok := m.find(a.b); ok {
		t.Error("found a range of memory removed")
	}
	if _, _, ok := m.find(b.b); !ok {
		t.Error("lost b when a was removed")
	}
}
