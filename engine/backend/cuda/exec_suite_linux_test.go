//go:build cgo

package cuda

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// suiteExec checks the stream memory operations and holds: a stream that
// waits on a word, or is held for a host function, runs nothing after
// until the word is written or the hold released, and a cancelled stream
// stops waiting.
func suiteExec(t *testing.T, d *Device) {
	a, b := newStream(t, d), newStream(t, d)
	av, bv := a.(backend.ValueStream), b.(backend.ValueStream)
	words := alloc(t, d, 64)
	x := alloc(t, d, 64)
	if err := b.Memset(words, 0, 4, 16); err != nil {
		t.Fatal(err)
	}
	if err := b.Memset(x, 0, 4, 16); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, b); err != nil {
		t.Fatal(err)
	}

	// Writes of 4 and 8 bytes.
	if err := bv.WriteValue(words, 0xdead_beef, 4); err != nil {
		t.Fatal(err)
	}
	if err := bv.WriteValue(words+8, 1<<40|3, 8); err != nil {
		t.Fatal(err)
	}
	got := download(t, b, words, 16)
	if v := binary.LittleEndian.Uint32(got); v != 0xdead_beef {
		t.Errorf("32-bit write: %#x", v)
	}
	if v := binary.LittleEndian.Uint64(got[8:]); v != 1<<40|3 {
		t.Errorf("64-bit write: %#x", v)
	}

	// A wait holds the work after it until another stream writes.
	flag := words + 16
	if err := av.WaitValue(flag, 1, 4, api.WaitEQ); err != nil {
		t.Fatal(err)
	}
	if err := a.Memset(x, 7, 4, 16); err != nil {
		t.Fatal(err)
	}
	if err := a.Query(); !errors.Is(err, api.ErrNotReady) {
		t.Fatalf("a stream waiting on an unwritten word: Query = %v", err)
	}
	if v := binary.LittleEndian.Uint32(download(t, b, x, 4)); v != 0 {
		t.Fatalf("the memset after the wait ran before the write: %d", v)
	}
	if err := bv.WriteValue(flag, 1, 4); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, a); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(download(t, b, x, 4)); v != 7 {
		t.Fatalf("after the write: x = %d, want 7", v)
	}

	// A hold: the same, released from the host.
	release := make(chan struct{})
	if err := a.(backend.Holder).Hold(release); err != nil {
		t.Fatal(err)
	}
	if err := a.Memset(x, 9, 4, 16); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(download(t, b, x, 4)); v != 7 {
		t.Fatalf("the memset after the hold ran before its release: %d", v)
	}
	close(release)
	if err := syncStream(t, a); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint32(download(t, b, x, 4)); v != 9 {
		t.Fatalf("after the release: x = %d, want 9", v)
	}

	// Bad words are refused when queued.
	if err := av.WaitValue(flag+2, 1, 4, api.WaitEQ); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("unaligned wait: %v", err)
	}
	if err := av.WriteValue(flag, 1, 2); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("2-byte write: %v", err)
	}

	// Cancelled, a stream stops waiting: on a word nobody writes, and at a
	// hold nobody releases.
	c := newStream(t, d)
	if err := c.(backend.ValueStream).WaitValue(flag, 99, 4, api.WaitEQ); err != nil {
		t.Fatal(err)
	}
	if err := c.(backend.Holder).Hold(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	c.(backend.Canceler).Cancel()
	if err := syncStream(t, c); !errors.Is(err, backend.ErrCancelled) {
		t.Fatalf("a cancelled waiting stream: %v", err)
	}
}

// TestFakeLink checks the plumbing of Link through the shim: every input,
// in order, reaches the driver's linker, whose image comes back, and a
// failure comes back with the linker's log.
func TestFakeLink(t *testing.T) {
	d := openFake(t, Options{NoMonitor: true})[0]
	image, err := d.Link([]backend.LinkInput{
		{Type: api.LinkPTX, Name: "a", Data: []byte("first\x00")},
		{Type: api.LinkCubin, Name: "b", Data: []byte("second")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(image) != "firstsecond" {
		t.Fatalf("linked image %q", image)
	}
	_, err = d.Link([]backend.LinkInput{{Type: 9, Name: "odd", Data: []byte("x")}})
	if !errors.Is(err, api.ErrInvalidValue) || !strings.Contains(err.Error(), "odd: input type 9") {
		t.Fatalf("a refused input: %v", err)
	}
}

// TestFakeFuncAttributes checks that a function's attributes come from the
// driver, each by its number, and that one the driver refuses reads -1.
func TestFakeFuncAttributes(t *testing.T) {
	d := openFake(t, Options{NoMonitor: true})[0]
	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unload()
	f, err := m.Function("fill_u32")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := f.(backend.FunctionAttributer).Attributes()
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != api.FuncAttrCount || vals[0] != 1024 || vals[4] != 40 || vals[8] != 48<<10 || vals[9] != -1 {
		t.Fatalf("attributes %v", vals)
	}
}
