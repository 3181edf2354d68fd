//go:build cgo

package cuda

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// The suite below runs the same checks on the fake driver (TestFakeSuite,
// everywhere) and on a real GPU (TestRealGPU, where there is one, e.g.
// under scripts/gpu-check.sh), so what the fake proves is what the GPU is
// asked.

func TestFakeSuite(t *testing.T) {
	// Small chunks and few buffers, so that modest copies span many chunks
	// and copies compete for staging buffers.
	devs := openFake(t, Options{NoMonitor: true, ChunkSize: 64 << 10, StagingBuffers: 3})
	runSuite(t, devs[0], true)
}

func TestRealGPU(t *testing.T) {
	forgetDriver()
	defer forgetDriver()
	devs, err := Open(Options{})
	if err != nil {
		if requireGPU {
			t.Fatalf("GPUFABRIC_REQUIRE_GPU=1: %v", err)
		}
		t.Skipf("no GPU here: %v", err)
	}
	defer func() {
		for _, d := range devs {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		}
	}()
	for _, bd := range devs {
		d := bd.(*Device)
		info := d.Info()
		t.Logf("device %d: %s, %s, %s, %d MiB, driver %d, sm_%d%d, params via cuFuncGetParamInfo: %v",
			info.Index, info.Name, formatUUID(info.UUID), info.PCIBusID, info.TotalMem>>20, info.DriverVersion,
			info.Attrs[api.AttrComputeCapabilityMajor], info.Attrs[api.AttrComputeCapabilityMinor], hasParamInfo())
		tel, err := d.Telemetry()
		t.Logf("device %d telemetry: %+v, %v", info.Index, tel, err)
		if err != nil || !tel.Healthy {
			t.Errorf("device %d: telemetry %+v, %v", info.Index, tel, err)
		}
		t.Run(info.Name, func(t *testing.T) { runSuite(t, d, false) })
	}
}

func runSuite(t *testing.T, d *Device, fake bool) {
	t.Run("info", func(t *testing.T) { suiteInfo(t, d) })
	t.Run("memory", func(t *testing.T) { suiteMemory(t, d, fake) })
	t.Run("scrub", func(t *testing.T) { suiteScrub(t, d) })
	t.Run("copies", func(t *testing.T) { suiteCopies(t, d) })
	t.Run("registered", func(t *testing.T) { suiteRegistered(t, d) })
	t.Run("memset", func(t *testing.T) { suiteMemset(t, d) })
	t.Run("kernels", func(t *testing.T) { suiteKernels(t, d) })
	t.Run("order", func(t *testing.T) { suiteOrder(t, d) })
	t.Run("events", func(t *testing.T) { suiteEvents(t, d) })
	t.Run("errors", func(t *testing.T) { suiteErrors(t, d) })
	t.Run("destroy", func(t *testing.T) { suiteDestroy(t, d) })
	t.Run("exec", func(t *testing.T) { suiteExec(t, d) })
}

func kernelsPTX(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "examples", "kernels.ptx"))
	if err != nil {
		t.Fatalf("the examples' kernels: %v", err)
	}
	return b
}

const patience = 30 * time.Second

// syncStream is a stream synchronise: Notify, then wait for the callback.
func syncStream(t *testing.T, s backend.Stream) error {
	t.Helper()
	ch := make(chan error, 1)
	if err := s.Notify(func(err error) { ch <- err }); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(patience):
		t.Fatal("Notify's callback never came")
		return nil
	}
}

func newStream(t *testing.T, d *Device) backend.Stream {
	t.Helper()
	s, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Destroy() })
	return s
}

func alloc(t *testing.T, d *Device, n uint64) backend.DevicePtr {
	t.Helper()
	p, err := d.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Free(p); err != nil {
			t.Errorf("Free: %v", err)
		}
	})
	return p
}

// upload queues a host-to-device copy and returns a channel closed when
// the stream calls done.
func upload(t *testing.T, s backend.Stream, dst backend.DevicePtr, src []byte) chan struct{} {
	t.Helper()
	done := make(chan struct{})
	if err := s.CopyHtoD(dst, src, func() { close(done) }); err != nil {
		t.Fatalf("CopyHtoD(%d bytes): %v", len(src), err)
	}
	return done
}

func waitFor(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("%s never happened", what)
	}
}

// download copies n bytes at src back, checking that the pieces come in
// order and cover the range, and synchronises.
func download(t *testing.T, s backend.Stream, src backend.DevicePtr, n int) []byte {
	t.Helper()
	out := make([]byte, n)
	var next uint64
	err := s.CopyDtoH(src, uint64(n), func(off uint64, b []byte) error {
		if off != next {
			return errors.New("pieces out of order")
		}
		copy(out[off:], b)
		next += uint64(len(b))
		return nil
	})
	if err != nil {
		t.Fatalf("CopyDtoH: %v", err)
	}
	if err := syncStream(t, s); err != nil {
		t.Fatalf("after CopyDtoH: %v", err)
	}
	if next != uint64(n) {
		t.Fatalf("CopyDtoH delivered %d of %d bytes", next, n)
	}
	return out
}

func floats(n int, f func(i int) float32) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f(i)))
	}
	return b
}

func float(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }

// vectorAddParams packs vector_add(const float* a, const float* b, float* c, int n).
func vectorAddParams(a, b, c backend.DevicePtr, n int) []byte {
	p := make([]byte, 28)
	binary.LittleEndian.PutUint64(p[0:], a)
	binary.LittleEndian.PutUint64(p[8:], b)
	binary.LittleEndian.PutUint64(p[16:], c)
	binary.LittleEndian.PutUint32(p[24:], uint32(n))
	return p
}

func gridFor(n int) backend.LaunchConfig {
	return backend.LaunchConfig{Grid: [3]uint32{uint32((n + 255) / 256), 1, 1}, Block: [3]uint32{256, 1, 1}}
}

func checkSum(t *testing.T, got []byte, n int) {
	t.Helper()
	for i := range n {
		if want := float32(3 * i); float(got, i) != want {
			t.Fatalf("c[%d] = %v, want %v", i, float(got, i), want)
		}
	}
}

func testVectorAdd(t *testing.T, d *Device, f backend.Function) {
	t.Helper()
	const n = 1000
	s := newStream(t, d)
	a, b, c := alloc(t, d, 4*n), alloc(t, d, 4*n), alloc(t, d, 4*n)
	upload(t, s, a, floats(n, func(i int) float32 { return float32(i) }))
	upload(t, s, b, floats(n, func(i int) float32 { return float32(2 * i) }))
	if err := s.Launch(f, gridFor(n), vectorAddParams(a, b, c, n), nil); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	checkSum(t, download(t, s, c, 4*n), n)
}

func suiteInfo(t *testing.T, d *Device) {
	info := d.Info()
	if info.Backend != "cuda" || info.Emulated || info.Name == "" || info.TotalMem == 0 ||
		len(info.Attrs) != api.AttrCount || info.DriverVersion < 1000 {
		t.Errorf("Info = %+v", info)
	}
	if info.PCIBusID != "" {
		if id, ok := normalizeBusID(info.PCIBusID); !ok || id != info.PCIBusID {
			t.Errorf("PCI bus id %q is not in canonical form", info.PCIBusID)
		}
	}
	if info.Attrs[api.AttrWarpSize] != 32 && info.Attrs[api.AttrMaxThreadsPerBlock] != 1024 {
		t.Errorf("attribute snapshot looks empty: %v", info.Attrs[:20])
	}
}

// suiteScrub checks Alloc's guarantee: new memory reads as zeros, even
// where an earlier allocation filled it. The fake driver hands out memory
// full of 0xdb, so there only the backend's memset can make it zero; on a
// GPU the driver reuses the freed range of the same size, typically at the
// same address, with the first owner's bytes still in it.
func suiteScrub(t *testing.T, d *Device) {
	s := newStream(t, d)
	for _, n := range []int{1, 4096, 3<<20 + 5} {
		p, err := d.Alloc(uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, upload(t, s, p, bytes.Repeat([]byte{0xa5}, n)), "the first owner's upload")
		if err := syncStream(t, s); err != nil {
			t.Fatal(err)
		}
		if err := d.Free(p); err != nil {
			t.Fatal(err)
		}
		q := alloc(t, d, uint64(n))
		got := download(t, s, q, n)
		if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("%d-byte allocation (%#x, the freed one at %#x): byte %d is %#x, want zero", n, q, p, i, got[i])
		}
	}
}

func suiteMemory(t *testing.T, d *Device, strict bool) {
	free1, total, err := d.MemInfo()
	if err != nil || total == 0 || free1 > total {
		t.Fatalf("MemInfo = %d, %d, %v", free1, total, err)
	}
	p := alloc(t, d, 8<<20)
	free2, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	if strict && free2 != free1-8<<20 {
		t.Errorf("free memory %d after allocating 8 MiB of %d", free2, free1)
	}
	if p == 0 {
		t.Error("Alloc returned address 0")
	}
	if _, err := d.Alloc(total * 2); !errors.Is(err, api.ErrOutOfMemory) && strict {
		t.Errorf("Alloc(twice the memory) = %v, want CUDA_ERROR_OUT_OF_MEMORY", err)
	}
}

func suiteCopies(t *testing.T, d *Device) {
	chunk := d.staging.size
	sizes := []int{1, 4097, directCopyMax, directCopyMax + 1, 3*chunk + 5, 2 * chunk}
	for _, n := range sizes {
		s := newStream(t, d)
		p := alloc(t, d, uint64(n))
		src := pattern(n, byte(n>>3))
		done := upload(t, s, p, src)
		got := download(t, s, p, n)
		waitFor(t, done, "CopyHtoD's done")
		if string(got) != string(src) {
			t.Fatalf("%d bytes came back different (first %x, want %x)", n, head(got), head(src))
		}
		// Device to device, to an offset inside a second allocation.
		q := alloc(t, d, uint64(n)+64)
		if err := s.CopyDtoD(q+64, p, uint64(n)); err != nil {
			t.Fatal(err)
		}
		if got := download(t, s, q+64, n); string(got) != string(src) {
			t.Fatalf("CopyDtoD of %d bytes differs", n)
		}
	}
	// A zero-byte copy out still reports once, so its caller hears of it.
	s := newStream(t, d)
	p := alloc(t, d, 16)
	calls := 0
	if err := s.CopyDtoH(p, 0, func(off uint64, b []byte) error { calls++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, s); err != nil || calls != 1 {
		t.Fatalf("zero-byte CopyDtoH: %d calls, %v", calls, err)
	}
}

func suiteMemset(t *testing.T, d *Device) {
	s := newStream(t, d)
	const n = 4096
	p := alloc(t, d, n)
	tests := []struct {
		elem  int
		value uint32
		want  [4]byte
	}{
		{1, 0xab, [4]byte{0xab, 0xab, 0xab, 0xab}},
		{2, 0x1234, [4]byte{0x34, 0x12, 0x34, 0x12}},
		{4, 0xdeadbeef, [4]byte{0xef, 0xbe, 0xad, 0xde}},
	}
	for _, tt := range tests {
		if err := s.Memset(p, tt.value, tt.elem, n/uint64(tt.elem)); err != nil {
			t.Fatalf("Memset(%d-byte): %v", tt.elem, err)
		}
		got := download(t, s, p, n)
		for i := 0; i < n; i += 4 {
			if [4]byte(got[i:i+4]) != tt.want {
				t.Fatalf("Memset(%d-byte %#x): bytes %d..%d are %x", tt.elem, tt.value, i, i+3, got[i:i+4])
			}
		}
	}
}

func suiteKernels(t *testing.T, d *Device) {
	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatalf("LoadModule(kernels.ptx): %v", err)
	}
	defer m.Unload()
	f, err := m.Function("vector_add")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "vector_add" {
		t.Errorf("Name = %q", f.Name())
	}
	if p := f.Params(); p != nil && !reflect.DeepEqual(p, layoutOf(0, 8, 8, 8, 16, 8, 24, 4)) {
		t.Errorf("vector_add's layout %v, want (0,8) (8,8) (16,8) (24,4)", p)
	} else if p == nil {
		t.Logf("the driver gives no parameter layouts (before 12.4)")
	}
	again, _ := m.Function("vector_add")
	if again != f {
		t.Error("a second lookup made a second function")
	}
	testVectorAdd(t, d, f)

	// fill_u32(unsigned* p, unsigned v, unsigned long long n), with the
	// parameter padding the layout gives.
	fill, err := m.Function("fill_u32")
	if err != nil {
		t.Fatal(err)
	}
	if p := fill.Params(); p != nil && !reflect.DeepEqual(p, layoutOf(0, 8, 8, 4, 16, 8)) {
		t.Errorf("fill_u32's layout %v, want (0,8) (8,4) (16,8)", p)
	}
	s := newStream(t, d)
	const n = 5000
	p := alloc(t, d, 4*n)
	params := make([]byte, 24)
	binary.LittleEndian.PutUint64(params[0:], p)
	binary.LittleEndian.PutUint32(params[8:], 0xc0ffee)
	binary.LittleEndian.PutUint64(params[16:], n)
	if err := s.Launch(fill, gridFor(n), params, nil); err != nil {
		t.Fatal(err)
	}
	got := download(t, s, p, 4*n)
	for i := range n {
		if v := binary.LittleEndian.Uint32(got[4*i:]); v != 0xc0ffee {
			t.Fatalf("p[%d] = %#x after fill_u32", i, v)
		}
	}
}

// suiteOrder queues copies large enough to go through the stream's worker,
// then a launch and a copy back: the launch must not reach the driver
// before the copies it reads.
func suiteOrder(t *testing.T, d *Device) {
	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unload()
	f, _ := m.Function("vector_add")
	n := (directCopyMax + 4096) / 4
	s := newStream(t, d)
	a, b, c := alloc(t, d, uint64(4*n)), alloc(t, d, uint64(4*n)), alloc(t, d, uint64(4*n))
	upload(t, s, a, floats(n, func(i int) float32 { return float32(i) }))
	upload(t, s, b, floats(n, func(i int) float32 { return float32(2 * i) }))
	if err := s.Launch(f, gridFor(n), vectorAddParams(a, b, c, n), nil); err != nil {
		t.Fatal(err)
	}
	checkSum(t, download(t, s, c, 4*n), n)

	// Notifications come in the order they were asked for.
	var mu sync.Mutex
	var order []int
	done := make(chan struct{})
	for i := range 5 {
		if err := s.Notify(func(error) {
			mu.Lock()
			order = append(order, i)
			if len(order) == 5 {
				close(done)
			}
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, done, "five notifications")
	if !reflect.DeepEqual(order, []int{0, 1, 2, 3, 4}) {
		t.Errorf("notifications came in order %v", order)
	}
}

// suiteEvents holds stream A's worker (a copy's done callback that waits
// for the test), so A's Record is provably still queued when stream B is
// told to wait for it: B must not run ahead.
func suiteEvents(t *testing.T, d *Device) {
	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unload()
	f, _ := m.Function("vector_add")
	n := (directCopyMax + 4096) / 4
	sa, sb := newStream(t, d), newStream(t, d)
	a, b, c := alloc(t, d, uint64(4*n)), alloc(t, d, uint64(4*n)), alloc(t, d, uint64(4*n))
	ev, err := d.NewEvent(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Destroy()
	start, _ := d.NewEvent(0)
	defer start.Destroy()

	if err := ev.Query(); err != nil {
		t.Errorf("Query of a never-recorded event = %v, want nil", err)
	}
	gate := make(chan struct{})
	if err := sa.Record(start); err != nil {
		t.Fatal(err)
	}
	if err := sa.CopyHtoD(a, floats(n, func(i int) float32 { return float32(i) }), func() { <-gate }); err != nil {
		t.Fatal(err)
	}
	upload(t, sa, b, floats(n, func(i int) float32 { return float32(2 * i) }))
	if err := sa.Record(ev); err != nil {
		t.Fatal(err)
	}
	if err := sb.Wait(ev); err != nil {
		t.Fatal(err)
	}
	if err := sb.Launch(f, gridFor(n), vectorAddParams(a, b, c, n), nil); err != nil {
		t.Fatal(err)
	}
	if err := ev.Query(); !errors.Is(err, api.ErrNotReady) {
		t.Errorf("Query of a record still queued = %v, want CUDA_ERROR_NOT_READY", err)
	}
	if err := sb.Query(); !errors.Is(err, api.ErrNotReady) {
		t.Errorf("Query of a stream waiting for it = %v, want CUDA_ERROR_NOT_READY", err)
	}
	if _, err := d.ElapsedTime(start, ev); !errors.Is(err, api.ErrNotReady) {
		t.Errorf("ElapsedTime to a record still queued = %v, want CUDA_ERROR_NOT_READY", err)
	}
	notified := make(chan error, 1)
	if err := ev.Notify(func(err error) { notified <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-notified:
		t.Fatalf("event Notify called (%v) before its record ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(gate)
	checkSum(t, download(t, sb, c, 4*n), n)
	select {
	case err := <-notified:
		if err != nil {
			t.Errorf("event Notify: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("event Notify never called")
	}
	if err := ev.Query(); err != nil {
		t.Errorf("Query after completion = %v", err)
	}
	if el, err := d.ElapsedTime(start, ev); err != nil || el < 0 {
		t.Errorf("ElapsedTime = %v, %v", el, err)
	}
	if err := sb.Query(); err != nil {
		t.Errorf("stream Query after completion = %v", err)
	}
}

func suiteErrors(t *testing.T, d *Device) {
	s := newStream(t, d)
	p := alloc(t, d, 1<<20)

	// A sink's error stops the copy and becomes the stream's, reported
	// once.
	stop := errors.New("client went away")
	if err := s.CopyDtoH(p, 1<<20, func(uint64, []byte) error { return stop }); err != nil {
		t.Fatal(err)
	}
	if err := syncStream(t, s); !errors.Is(err, stop) {
		t.Errorf("Notify after a failing sink = %v, want the sink's error", err)
	}
	if err := s.Query(); err != nil {
		t.Errorf("Query after the error was reported = %v, want nil", err)
	}

	if err := s.Memset(p, 0, 3, 1); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("Memset of 3-byte elements = %v", err)
	}
	if err := s.Memset(p+1, 0, 4, 1); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("unaligned Memset = %v", err)
	}
	if _, err := d.LoadModule([]byte("this is not a module")); err == nil || api.ResultOf(err) == api.ErrUnknown {
		t.Errorf("LoadModule(garbage) = %v, want a CUDA error", err)
	}
	if _, err := d.LoadModule(nil); !errors.Is(err, api.ErrInvalidImage) {
		t.Errorf("LoadModule(nil) = %v", err)
	}

	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Function("no_such_kernel"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Function(no_such_kernel) = %v, want CUDA_ERROR_NOT_FOUND", err)
	}
	if _, _, err := m.Global("no_such_global"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Global(no_such_global) = %v, want CUDA_ERROR_NOT_FOUND", err)
	}
	f, _ := m.Function("vector_add")
	if f.Params() != nil {
		if err := s.Launch(f, gridFor(1), make([]byte, 20), nil); !errors.Is(err, api.ErrInvalidValue) {
			t.Errorf("Launch with 20 of 28 parameter bytes = %v", err)
		}
	}
	if err := s.Launch(f, backend.LaunchConfig{Block: [3]uint32{1, 1, 1}}, make([]byte, 28), nil); !errors.Is(err, api.ErrInvalidValue) {
		t.Errorf("Launch with a zero grid = %v", err)
	}
	if err := m.Unload(); err != nil {
		t.Fatal(err)
	}
	if err := s.Launch(f, gridFor(1), make([]byte, 28), nil); !errors.Is(err, api.ErrInvalidHandle) {
		t.Errorf("Launch of an unloaded module's kernel = %v", err)
	}
	if _, err := m.Function("vector_add"); !errors.Is(err, api.ErrInvalidHandle) {
		t.Errorf("Function of an unloaded module = %v", err)
	}

	ev, _ := d.NewEvent(0)
	if err := ev.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ev); !errors.Is(err, api.ErrInvalidHandle) {
		t.Errorf("Record of a destroyed event = %v", err)
	}
	if err := syncStream(t, s); err != nil {
		t.Errorf("the stream is still good: %v", err)
	}
}

// suiteDestroy destroys a stream with work still queued: the work finishes
// (the copy's done comes), and the stream refuses anything more.
func suiteDestroy(t *testing.T, d *Device) {
	s, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := alloc(t, d, 4<<20)
	done := upload(t, s, p, make([]byte, 4<<20))
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, done, "done of a copy queued before Destroy")
	if err := s.Memset(p, 0, 1, 1); !errors.Is(err, api.ErrInvalidHandle) {
		t.Errorf("Memset on a destroyed stream = %v", err)
	}
	if err := s.Destroy(); !errors.Is(err, api.ErrInvalidHandle) {
		t.Errorf("second Destroy = %v", err)
	}
}
