//go:build cgo

package cuda

import (
	"bytes"
	"testing"
)

// TestStridedFake sets and copies pitched slices through the driver's 2D
// calls and checks the gaps between rows stay as they were.
func TestStridedFake(t *testing.T) {
	d := openFake(t, Options{NoMonitor: true})[0]
	const pitch, width, rows = 256, 100, 5
	a, err := d.Alloc(pitch * rows)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(a)
	b, err := d.Alloc(pitch * rows)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(b)
	bs, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Destroy()
	st := bs.(*stream)
	if err := st.Memset2D(a, pitch, 0x01020304, 4, width/4, rows); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyDtoD2D(b+8, pitch, a, pitch, width, rows); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, pitch*rows)
	done := make(chan error, 1)
	if err := st.CopyDtoH(b, pitch*rows, func(off uint64, p []byte) error { copy(got[off:], p); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := st.Notify(func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	row := bytes.Repeat([]byte{4, 3, 2, 1}, width/4)
	for y := range rows {
		r := got[y*pitch : (y+1)*pitch]
		if !bytes.Equal(r[8:8+width], row) {
			t.Fatalf("row %d: %x", y, r[8:8+width])
		}
		if !bytes.Equal(r[:8], make([]byte, 8)) || !bytes.Equal(r[8+width:], make([]byte, pitch-8-width)) {
			t.Fatalf("row %d: a copy wrote outside its slice", y)
		}
	}
}
