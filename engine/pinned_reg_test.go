package engine_test

import (
	"bytes"
	"reflect"
	"sync"
	"testing"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
)

// dmaDevice models a driver whose copies from host memory are DMAs that
// take only registered memory, as CUDA's do: the host emulation underneath,
// with registration (backend.HostRegistrar) and registered copies
// (backend.RegisteredCopier) that refuse memory not registered. It is not
// backend.HostMemory, so every copy goes through shard and stream.
type dmaDevice struct {
	backend.Device
	refuse bool // RegisterHost fails, as under a memlock limit

	mu          sync.Mutex
	live        map[uintptr]int // registered ranges by address: their length
	registers   int
	dmaCopies   int
	unregisters int
}

func (d *dmaDevice) RegisterHost(b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse {
		return api.Errorf(api.ErrOutOfMemory, "memlock limit")
	}
	if _, ok := d.live[addrOf(b)]; ok {
		return api.ErrHostMemoryAlreadyRegistered
	}
	d.live[addrOf(b)] = len(b)
	d.registers++
	return nil
}

func (d *dmaDevice) UnregisterHost(b []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.live[addrOf(b)]; !ok {
		return api.ErrHostMemoryNotRegistered
	}
	delete(d.live, addrOf(b))
	d.unregisters++
	return nil
}

// registered reports whether b lies in a registered range, and counts a DMA.
func (d *dmaDevice) registered(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := addrOf(b)
	for base, n := range d.live {
		if p >= base && p-base+uintptr(len(b)) <= uintptr(n) {
			d.dmaCopies++
			return true
		}
	}
	return false
}

// addrOf is the address of b's first byte, for comparing ranges.
func addrOf(b []byte) uintptr { return reflect.ValueOf(b).Pointer() }

func (d *dmaDevice) counts() (live, registers, dma, unregisters int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.live), d.registers, d.dmaCopies, d.unregisters
}

func (d *dmaDevice) NewStream(flags uint32, priority int32) (backend.Stream, error) {
	s, err := d.Device.NewStream(flags, priority)
	if err != nil {
		return nil, err
	}
	return &dmaStream{Stream: s, d: d}, nil
}

type dmaStream struct {
	backend.Stream
	d *dmaDevice
}

func (s *dmaStream) Cancel() { s.Stream.(backend.Canceler).Cancel() }

func (s *dmaStream) CopyHtoDRegistered(dst backend.DevicePtr, src []byte) error {
	if !s.d.registered(src) {
		return api.Errorf(api.ErrInvalidValue, "DMA from host memory the driver does not know")
	}
	return s.Stream.CopyHtoD(dst, src, func() {})
}

func (s *dmaStream) CopyDtoHRegistered(dst []byte, src backend.DevicePtr) error {
	if !s.d.registered(dst) {
		return api.Errorf(api.ErrInvalidValue, "DMA into host memory the driver does not know")
	}
	return s.Stream.CopyDtoH(src, uint64(len(dst)), func(off uint64, b []byte) error {
		copy(dst[off:], b)
		return nil
	})
}

// dmaServer is a server on one dmaDevice, with sessions dialed over
// shared memory.
func dmaServer(t *testing.T, refuse bool) (*dmaDevice, *fixture) {
	t.Helper()
	hd, err := host.New(host.Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d := &dmaDevice{Device: hd, refuse: refuse, live: map[uintptr]int{}}
	f := newFixtureOn(t, engine.Config{}, []backend.Device{d})
	f.transport = "shm"
	return d, f
}

// TestPinnedRegisteredWithTheDriver: on a backend whose copies are DMAs,
// a region is registered with the driver at its first copy, every copy of
// it is one registered copy, and the registration is undone when the
// client frees the memory and when a session ends holding it.
func TestPinnedRegisteredWithTheDriver(t *testing.T) {
	d, f := dmaServer(t, false)
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ptr, err := dev.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.AllocHost(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	want := patternBytes(1<<20, 5)
	copy(h.Bytes(), want)
	if err := dev.CopyHtoD(ptr, h.Bytes()); err != nil {
		t.Fatal(err)
	}
	clear(h.Bytes())
	if err := dev.CopyDtoH(h.Bytes()[100:], ptr+100); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Bytes()[100:], want[100:]) {
		t.Fatal("registered copies changed the bytes")
	}
	if live, regs, dma, _ := d.counts(); live != 1 || regs != 1 || dma != 2 {
		t.Fatalf("after two copies: %d live registrations, %d made, %d DMA copies; want 1, 1, 2", live, regs, dma)
	}
	if err := h.Free(); err != nil {
		t.Fatal(err)
	}
	if live, _, _, unregs := d.counts(); live != 0 || unregs != 1 {
		t.Fatalf("after Free: %d live registrations, %d undone; want 0, 1", live, unregs)
	}

	// A session that ends holding a registered region.
	h2, err := s.AllocHost(4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyHtoD(ptr, h2.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { live, _, _, _ := d.counts(); return live == 0 }) // no registration outlives its session
}

// TestPinnedRegistrationRefused: a driver that will not register the
// memory (a memlock limit) leaves the copies to the backend's staged path:
// they still work.
func TestPinnedRegistrationRefused(t *testing.T) {
	d, f := dmaServer(t, true)
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ptr, err := dev.Alloc(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.AllocHost(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	want := patternBytes(1<<16, 9)
	copy(h.Bytes(), want)
	if err := dev.CopyHtoD(ptr, h.Bytes()); err != nil {
		t.Fatal(err)
	}
	clear(h.Bytes())
	if err := dev.CopyDtoH(h.Bytes(), ptr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Bytes(), want) {
		t.Fatal("staged copies of pinned memory changed the bytes")
	}
	if _, _, dma, _ := d.counts(); dma != 0 {
		t.Fatalf("%d DMA copies from memory never registered", dma)
	}
	if err := h.Free(); err != nil {
		t.Fatal(err)
	}
}
