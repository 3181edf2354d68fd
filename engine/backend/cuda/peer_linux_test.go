//go:build cgo

package cuda

import (
	"bytes"
	"testing"
)

func TestCopyPeerFake(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	if len(devs) < 2 {
		t.Skip("the fake has one device")
	}
	a, err := devs[0].Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devs[1].Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	s0, err := devs[0].NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Destroy()
	if err := s0.Memset(a, 0x3c, 1, 4096); err != nil {
		t.Fatal(err)
	}
	if err := s0.(*stream).CopyPeer(b, devs[1], a, devs[0], 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	done := make(chan error, 1)
	if err := s0.CopyDtoH(b, 4096, func(off uint64, p []byte) error { copy(got[off:], p); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s0.Notify(func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0x3c}, 4096)) {
		t.Fatalf("device 1 reads %x...", got[:8])
	}
	if err := devs[0].Free(a); err != nil {
		t.Fatal(err)
	}
	if err := devs[1].Free(b); err != nil {
		t.Fatal(err)
	}
}
