//go:build cgo

package cuda

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// suiteRegistered: host memory mapped outside the Go heap, as a client's
// pinned region is on the server, registered with the driver, is copied
// to and from the device in one DMA each, in the stream's order; the
// registration is counted per device and undone by the last.
func suiteRegistered(t *testing.T, d *Device) {
	const n = 1 << 20
	host, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(host)
	if err := d.RegisterHost(host); err != nil {
		t.Fatal(err)
	}
	if err := d.RegisterHost(host); err != nil { // a second device of the session
		t.Fatal(err)
	}
	s := newStream(t, d)
	rc := s.(backend.RegisteredCopier)
	p := alloc(t, d, n)
	want := pattern(n, 7)
	copy(host, want)
	const off = 4096 + 3
	if err := rc.CopyHtoDRegistered(p, host); err != nil {
		t.Fatal(err)
	}
	if err := s.Memset(p, 0, 1, off); err != nil { // ordered after the copy
		t.Fatal(err)
	}
	clear(want[:off])
	clear(host)
	if err := rc.CopyDtoHRegistered(host[off:], p+off); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(host[off:], want[off:]) {
		t.Fatal("registered copies changed the bytes")
	}
	if got := download(t, s, p, n); !bytes.Equal(got, want) {
		t.Fatal("the memset after the registered copy did not land after it")
	}

	// One device lets go: still registered for the other.
	if err := d.UnregisterHost(host); err != nil {
		t.Fatal(err)
	}
	if err := rc.CopyHtoDRegistered(p, host[:64]); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, s); err != nil {
		t.Fatal(err)
	}
	if err := d.UnregisterHost(host); err != nil {
		t.Fatal(err)
	}
	if err := d.UnregisterHost(host); !errors.Is(err, api.ErrHostMemoryNotRegistered) {
		t.Fatalf("unregistering memory no longer registered: %v", err)
	}
}

// TestRegisteredNeedsRegistration: the fake refuses an async copy from
// memory the driver does not know, so the suite's registered copies pass
// only because registration reached it.
func TestRegisteredNeedsRegistration(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	d := devs[0]
	host, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(host)
	s := newStream(t, d)
	p := alloc(t, d, 4096)
	err = s.(backend.RegisteredCopier).CopyHtoDRegistered(p, host)
	if err == nil {
		err = syncStream(t, s)
	}
	if !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("copy from unregistered memory: %v, want CUDA_ERROR_INVALID_VALUE from the fake", err)
	}
}
