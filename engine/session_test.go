package engine_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
)

func attach(t testing.TB, s *interpose.Session, fraction float64) (*interpose.Device, *interpose.Module) {
	t.Helper()
	dev, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: fraction})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		t.Fatal(err)
	}
	return dev, mod
}

func function(t testing.TB, m *interpose.Module, name string) *interpose.Function {
	t.Helper()
	f, err := m.Function(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSharesNeverExceedTheDevice(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	a := f.dial(t)
	if _, err := a.Attach(0, interpose.Share{Fraction: 0.75}); err != nil {
		t.Fatal(err)
	}
	b := f.dial(t)
	if _, err := b.Attach(0, interpose.Share{Fraction: 0.5}); !errors.Is(err, api.ErrOutOfMemory) {
		t.Fatalf("0.75 + 0.5 of a device: err = %v, want CUDA_ERROR_OUT_OF_MEMORY", err)
	}
	dev, err := b.Attach(0, interpose.Share{Bytes: 16 << 20})
	if err != nil {
		t.Fatalf("0.75 + 16 MiB of 64 MiB: %v", err)
	}
	free, total, err := dev.MemGetInfo()
	if err != nil || total != 16<<20 || free != 16<<20 {
		t.Fatalf("MemGetInfo = %d, %d, %v; want the share, 16 MiB", free, total, err)
	}
	if got := dev.Info().TotalMem; got != 16<<20 {
		t.Fatalf("device total memory %d, want the share", got)
	}
	// Too small a fraction is refused.
	c := f.dial(t)
	if _, err := c.Attach(0, interpose.Share{Fraction: 0.01}); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a 1%% share: err = %v", err)
	}
}

func TestSessionEndFreesEverything(t *testing.T) {
	overTransports(t, 1, 64<<20, testSessionEndFreesEverything)
}

func testSessionEndFreesEverything(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 0.5)
	spin := function(t, mod, "spin")
	for range 4 {
		if _, err := dev.Alloc(4 << 20); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := dev.NewStream(0, 0)
	// Work still running when the client goes: it must finish before the
	// memory is reused.
	spin.Launch(st, interpose.D1(1), interpose.D1(1), 0, uint64(20*time.Millisecond))
	if got := f.srv.Status().Devices[0].SessionBytes; got != 16<<20 {
		t.Fatalf("session bytes %d", got)
	}
	s.Close()
	waitFor(t, func() bool {
		st := f.srv.Status()
		return len(st.Sessions) == 0 && st.Devices[0].ReservedBytes == 0 && st.Devices[0].FreeBytes == 64<<20
	})
	// And the share is free for the next session.
	s2 := f.dial(t)
	if _, err := s2.Attach(0, interpose.Share{Fraction: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestStreamsRunInOrderAndConcurrently(t *testing.T) {
	overTransports(t, 1, 64<<20, testStreamsRunInOrderAndConcurrently)
}

func testStreamsRunInOrderAndConcurrently(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	spin, fill, scale := function(t, mod, "spin"), function(t, mod, "fill_u32"), function(t, mod, "scale_f32")
	const n = 1 << 16
	p, err := dev.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := dev.NewStream(0, 0)
	b, _ := dev.NewStream(0, 0)
	// In order on one stream: fill with 1.0f, then scale by 3 twice: 9.
	one := uint32(0x3f800000)
	fill.Launch(a, interpose.D1(n/256), interpose.D1(256), 0, p, one, uint64(n))
	scale.Launch(a, interpose.D1(n/256), interpose.D1(256), 0, p, float32(3), uint64(n))
	scale.Launch(a, interpose.D1(n/256), interpose.D1(256), 0, p, float32(3), uint64(n))
	out := make([]byte, 4*n)
	if err := a.CopyDtoHAsync(out, p); err != nil {
		t.Fatal(err)
	}
	if err := a.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if got := floatAt(out, n-1); got != 9 {
		t.Fatalf("p[n-1] = %g, want 9", got)
	}
	// Concurrently across streams: work on b finishes while a kernel that
	// runs for a minute holds a. (The session's end cancels that kernel.)
	spin.Launch(a, interpose.D1(1), interpose.D1(1), 0, uint64(time.Minute))
	fill.Launch(b, interpose.D1(n/256), interpose.D1(256), 0, p, uint32(7), uint64(n))
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if done, err := a.Query(); done || err != nil {
		t.Fatalf("stream a, under a minute's kernel, reports done=%v, %v", done, err)
	}
}

func TestEvents(t *testing.T) { overTransports(t, 1, 64<<20, testEvents) }

func testEvents(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	spin := function(t, mod, "spin")
	a, _ := dev.NewStream(0, 0)
	b, _ := dev.NewStream(0, 0)
	start, _ := dev.NewEvent(interpose.EventDefault)
	end, _ := dev.NewEvent(interpose.EventDefault)
	start.Record(a)
	spin.Launch(a, interpose.D1(1), interpose.D1(1), 0, uint64(30*time.Millisecond))
	end.Record(a)
	// b waits for a's work through the event.
	if err := b.WaitEvent(end); err != nil {
		t.Fatal(err)
	}
	done, _ := dev.NewEvent(interpose.EventDisableTiming)
	done.Record(b)
	if ok, err := done.Query(); err != nil || ok {
		t.Fatalf("b's event complete before a's spin ended: %v %v", ok, err)
	}
	if err := done.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if ok, err := end.Query(); !ok || err != nil {
		t.Fatalf("a's end event not complete when b passed its wait: %v %v", ok, err)
	}
	ms, err := interpose.ElapsedTime(start, end)
	if err != nil {
		t.Fatal(err)
	}
	if ms < 30 || ms > 200 {
		t.Fatalf("elapsed %g ms for a 30 ms spin", ms)
	}
	if _, err := interpose.ElapsedTime(start, done); !errors.Is(err, api.ErrInvalidHandle) {
		t.Fatalf("elapsed time with a timing-disabled event: %v", err)
	}
}

func TestKernelsAreCheckedAgainstTheSessionsMemory(t *testing.T) {
	overTransports(t, 1, 64<<20, testKernelsAreCheckedAgainstTheSessionsMemory)
}

func testKernelsAreCheckedAgainstTheSessionsMemory(t *testing.T, f *fixture) {
	by := newBystander(t, f)
	s := f.dial(t)
	dev, mod := attach(t, s, 0.25)
	fill := function(t, mod, "fill_u32")
	mine, _ := dev.Alloc(4096)
	st := dev.DefaultStream()
	// A kernel aimed at the other session's memory, and one that runs past
	// the end of its own allocation.
	fill.Launch(st, interpose.D1(4), interpose.D1(256), 0, interpose.DevicePtr(by.x), uint32(9), uint64(1024))
	if err := st.Synchronize(); !errors.Is(err, api.ErrIllegalAddress) {
		t.Fatalf("kernel on another session's memory: %v", err)
	}
	fill.Launch(st, interpose.D1(8), interpose.D1(256), 0, mine, uint32(9), uint64(2048))
	if err := st.Synchronize(); !errors.Is(err, api.ErrIllegalAddress) {
		t.Fatalf("kernel past its allocation: %v", err)
	}
	by.check(5)
}

func TestModuleErrors(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, mod := attach(t, s, 0.25)
	if _, err := mod.Function("no_such_kernel"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
	ptx := []byte(".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry mystery(.param .u64 p)\n{\n\tret;\n}\n.global .align 4 .u32 counter;\n")
	m2, err := dev.LoadModule(ptx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m2.Function("mystery")
	var e *api.Error
	if !errors.As(err, &e) || e.Result != api.ErrNotSupported {
		t.Fatalf("entry without a built-in: %v", err)
	}
	ptr, size, err := m2.Global("counter")
	if err != nil || size != 4 {
		t.Fatalf("global: %v %d %v", ptr, size, err)
	}
	// Globals are addressable by the session that loaded them.
	if err := dev.CopyHtoD(ptr, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if err := dev.CopyDtoH(buf, ptr); err != nil || binary.LittleEndian.Uint32(buf) != 0x04030201 {
		t.Fatalf("global read back %x, %v", buf, err)
	}
	if _, err := dev.LoadModule(append([]byte{0x7f}, "ELF..."...)); !errors.Is(err, api.ErrNotSupported) {
		t.Fatalf("cubin on the host backend: %v", err)
	}
}

func TestManyThreadsOneSession(t *testing.T) {
	overTransports(t, 1, 256<<20, testManyThreadsOneSession)
}

func testManyThreadsOneSession(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	vadd := function(t, mod, "vector_add")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			const n = 1 << 14
			st, _ := dev.NewStream(0, 0)
			a, _ := dev.Alloc(4 * n)
			b, _ := dev.Alloc(4 * n)
			c, _ := dev.Alloc(4 * n)
			st.CopyHtoDAsync(a, floats(n, func(i int) float32 { return float32(i) }))
			st.CopyHtoDAsync(b, floats(n, func(i int) float32 { return float32(w) }))
			vadd.Launch(st, interpose.D1(n/128), interpose.D1(128), 0, a, b, c, int32(n))
			out := make([]byte, 4*n)
			st.CopyDtoHAsync(out, c)
			if err := st.Synchronize(); err != nil {
				errs <- err
				return
			}
			for i := 0; i < n; i += 997 {
				if got := floatAt(out, i); got != float32(i+w) {
					errs <- errors.New("wrong vector_add result")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDeinitializedAfterServerStops(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, _ := attach(t, s, 0.5)
	f.srv.Close()
	waitFor(t, func() bool { return s.Ping() != nil })
	if _, err := dev.Alloc(16); !errors.Is(err, api.ErrDeinitialized) {
		t.Fatalf("call after the server stopped: %v", err)
	}
	if err := dev.DefaultStream().Synchronize(); !errors.Is(err, api.ErrDeinitialized) {
		t.Fatalf("sync after the server stopped: %v", err)
	}
}

// TestAllocAfterFree: memory freed is there for the next allocation at
// once, as with CUDA's synchronous cuMemFree, even while the device free
// waits for work still running.
func TestAllocAfterFree(t *testing.T) { overTransports(t, 1, 64<<20, testAllocAfterFree) }

func testAllocAfterFree(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	spin := function(t, mod, "spin")
	p, err := dev.Alloc(48 << 20)
	if err != nil {
		t.Fatal(err)
	}
	spin.Launch(dev.DefaultStream(), interpose.D1(1), interpose.D1(1), 0, uint64(30*time.Millisecond))
	if err := dev.Free(p); err != nil {
		t.Fatal(err)
	}
	// The device is 64 MiB: this fits only once the free is done.
	if _, err := dev.Alloc(48 << 20); err != nil {
		t.Fatalf("allocation right after a free: %v", err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
}
