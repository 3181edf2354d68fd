package host

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// liveness bounds how long a cancelled stream may take to go quiet. It is
// generous (the work it cuts short would run for hours); the tests only
// ever wait for conditions, never sleep.
const liveness = 5 * time.Second

func kernelFuncs(t *testing.T, d *Device) map[string]backend.Function {
	t.Helper()
	image, err := os.ReadFile("../../../examples/kernels.ptx")
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.LoadModule(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Unload() })
	fns := map[string]backend.Function{}
	for name := range builtins {
		f, err := m.Function(name)
		if err != nil {
			t.Fatal(err)
		}
		fns[name] = f
	}
	return fns
}

func testDevice(t *testing.T) *Device {
	t.Helper()
	d, err := New(Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func testStream(t *testing.T, d *Device) *stream {
	t.Helper()
	s, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Destroy() })
	return s.(*stream)
}

// notified queues a Notify and returns the channel its error arrives on.
func notified(t *testing.T, s backend.Stream) chan error {
	t.Helper()
	ch := make(chan error, 1)
	if err := s.Notify(func(err error) { ch <- err }); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	return ch
}

func within(t *testing.T, ch chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(liveness):
		t.Fatalf("%s: nothing after %v", what, liveness)
		return nil
	}
}

func u64s(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// packScale packs scale_f32(float* p, float s, unsigned long long n).
func packScale(p uint64, s float32, n uint64) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b, p)
	binary.LittleEndian.PutUint32(b[8:], math.Float32bits(s))
	binary.LittleEndian.PutUint64(b[16:], n)
	return b
}

// TestCancelStopsRunningKernel launches work that would keep a stream busy
// for hours, waits until the stream has started it, cancels, and expects
// the stream to go quiet within the liveness bound, reporting the
// cancellation.
func TestCancelStopsRunningKernel(t *testing.T) {
	d := testDevice(t)
	fns := kernelFuncs(t, d)
	buf, err := d.Alloc(4 << 20)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		fn     string
		cfg    backend.LaunchConfig
		params []byte
	}{
		{"spin for 100 hours", "spin", backend.LaunchConfig{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}},
			u64s(uint64(100 * time.Hour))},
		{"scale_f32, 2^34 replicas of 1 Mi elements", "scale_f32",
			backend.LaunchConfig{Grid: [3]uint32{1 << 12, 65535, 65535}, Block: [3]uint32{256, 1, 4}},
			packScale(buf, 1.0000001, 1<<20)},
		{"scale_f32, 2^32 replicas of one element", "scale_f32",
			backend.LaunchConfig{Grid: [3]uint32{1, 65535, 65535}, Block: [3]uint32{1, 1, 1}},
			packScale(buf, 1.0000001, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStream(t, d)
			if err := s.Launch(fns[tt.fn], tt.cfg, tt.params, nil); err != nil {
				t.Fatal(err)
			}
			waitRunning(t, s)
			s.Cancel()
			if err := within(t, notified(t, s), "Notify after Cancel"); !errors.Is(err, backend.ErrCancelled) {
				t.Fatalf("Notify after Cancel: %v, want the cancellation", err)
			}
			// The Notify's own op is still counted while fn runs.
			deadline := time.Now().Add(liveness)
			for s.Query() == api.ErrNotReady && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if err := s.Query(); err != nil {
				t.Fatalf("Query once quiet: %v", err)
			}
		})
	}
}

// waitRunning waits until the stream's worker has taken everything queued:
// the first op is running (nothing queued behind it here).
func waitRunning(t *testing.T, s *stream) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		s.mu.Lock()
		taken := len(s.queue) == 0 && s.pending > 0
		s.mu.Unlock()
		if taken {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream never started its work")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCancelDropsQueuedWork queues every kind of work behind a long spin,
// cancels, and checks that each completes without running and pays what
// it owes: done called, sinks not called, records completed, memory
// untouched, Notify told.
func TestCancelDropsQueuedWork(t *testing.T) {
	d := testDevice(t)
	fns := kernelFuncs(t, d)
	s := testStream(t, d)
	p, err := d.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	one := backend.LaunchConfig{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}}
	if err := s.Launch(fns["spin"], one, u64s(uint64(100*time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	copied := make(chan error, 1)
	if err := s.CopyHtoD(p, []byte{1, 2, 3, 4}, func() { copied <- nil }); err != nil {
		t.Fatal(err)
	}
	sunk := false
	if err := s.CopyDtoH(p, 4, func(uint64, []byte) error { sunk = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Memset(p, 0xff, 1, 4096); err != nil {
		t.Fatal(err)
	}
	ev, _ := d.NewEvent(0)
	if err := s.Record(ev); err != nil {
		t.Fatal(err)
	}
	first := notified(t, s)
	s.Cancel()

	if err := within(t, copied, "CopyHtoD's done"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, first, "the queued Notify"); !errors.Is(err, backend.ErrCancelled) {
		t.Fatalf("queued Notify: %v, want the cancellation", err)
	}
	if sunk {
		t.Error("a dropped CopyDtoH called its sink")
	}
	if b, _ := d.HostBytes(p, 4096); b[0] != 0 || b[4095] != 0 {
		t.Errorf("dropped work ran: memory reads %#x...%#x", b[0], b[4095])
	}
	if err := ev.Query(); err != nil {
		t.Errorf("the event of a dropped Record: %v, want complete", err)
	}

	// Later work is refused; Notify is still taken, and says why.
	if err := s.Memset(p, 1, 1, 1); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Memset after Cancel: %v", err)
	}
	if err := s.Launch(fns["spin"], one, u64s(1), nil); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Launch after Cancel: %v", err)
	}
	if err := s.CopyHtoD(p, []byte{1}, func() { t.Error("done of a refused copy") }); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("CopyHtoD after Cancel: %v", err)
	}
	if err := s.Record(ev); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Record after Cancel: %v", err)
	}
	if err := within(t, notified(t, s), "Notify after Cancel"); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Notify after Cancel: %v", err)
	}
	s.Cancel() // twice is once
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// TestCancelLeavesBystander cancels one session's stream while another
// stream on the same device works, and waits on an event the cancelled
// stream was to record: the bystander finishes its work, correctly.
func TestCancelLeavesBystander(t *testing.T) {
	d := testDevice(t)
	fns := kernelFuncs(t, d)
	victim, bystander := testStream(t, d), testStream(t, d)
	one := backend.LaunchConfig{Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}}
	if err := victim.Launch(fns["spin"], one, u64s(uint64(100*time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	ev, _ := d.NewEvent(0)
	if err := victim.Record(ev); err != nil {
		t.Fatal(err)
	}
	const n = 1 << 18
	p, err := d.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	if err := bystander.Wait(ev); err != nil {
		t.Fatal(err)
	}
	// fill_u32(unsigned int* p, unsigned int v, unsigned long long n)
	fillParams := u64s(p, 7, n)
	cfg := backend.LaunchConfig{Grid: [3]uint32{n / 256, 1, 1}, Block: [3]uint32{256, 1, 1}}
	if err := bystander.Launch(fns["fill_u32"], cfg, fillParams, nil); err != nil {
		t.Fatal(err)
	}
	done := notified(t, bystander)
	victim.Cancel()
	if err := within(t, done, "the bystander's Notify"); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	b, _ := d.HostBytes(p, 4*n)
	for i := 0; i < n; i += 4099 {
		if v := binary.LittleEndian.Uint32(b[4*i:]); v != 7 {
			t.Fatalf("bystander's fill: p[%d] = %d", i, v)
		}
	}
	if err := within(t, notified(t, victim), "the victim's Notify"); !errors.Is(err, backend.ErrCancelled) {
		t.Fatalf("victim: %v", err)
	}
	// The bystander keeps working after.
	if err := bystander.Memset(p, 0, 4, n); err != nil {
		t.Fatal(err)
	}
	if err := within(t, notified(t, bystander), "the bystander's second Notify"); err != nil {
		t.Fatal(err)
	}
}

// TestKernelsRunWhole checks that chunking for cancellation changed no
// result: scale_f32 over replicas and a range that is not a whole number
// of chunks gives every element exactly reps multiplications.
func TestKernelsRunWhole(t *testing.T) {
	d := testDevice(t)
	fns := kernelFuncs(t, d)
	s := testStream(t, d)
	const n = 3*chunkThreads + 17
	p, err := d.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := d.HostBytes(p, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(1))
	}
	cfg := backend.LaunchConfig{Grid: [3]uint32{(n + 255) / 256, 3, 1}, Block: [3]uint32{256, 1, 1}}
	if err := s.Launch(fns["scale_f32"], cfg, packScale(p, 2, n), nil); err != nil {
		t.Fatal(err)
	}
	if err := within(t, notified(t, s), "Notify"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])); v != 8 {
			t.Fatalf("p[%d] = %v, want 8", i, v)
		}
	}
}
