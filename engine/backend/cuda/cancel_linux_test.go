//go:build cgo

package cuda

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/backend"
)

// liveness bounds how long a cancelled stream may take to go quiet once
// what it was running has returned; generous, and only ever waited on.
const liveness = 5 * time.Second

func notifyCh(t *testing.T, s backend.Stream) chan error {
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

// fillParams packs fill_u32(unsigned int* p, unsigned int v, unsigned long long n).
func fillParams(p backend.DevicePtr, v uint32, n uint64) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b, p)
	binary.LittleEndian.PutUint32(b[8:], v)
	binary.LittleEndian.PutUint64(b[16:], n)
	return b
}

// TestFakeCancel holds a stream's worker in a CopyDtoH sink (host-side
// work the worker runs, standing in for anything long), queues every kind
// of work behind it, cancels, lets the sink return, and checks that the
// queued work was dropped and paid what it owed, that later work is
// refused but Notify taken, and that a bystander stream on the same
// device, waiting on an event the cancelled stream was to record, runs.
func TestFakeCancel(t *testing.T) {
	d := openFake(t, Options{NoMonitor: true, ChunkSize: 64 << 10, StagingBuffers: 3})[0]
	m, err := d.LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unload()
	fill, err := m.Function("fill_u32")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1024
	victim, bystander := newStream(t, d), newStream(t, d)
	p, q := alloc(t, d, 4*n), alloc(t, d, 4*n)

	// A copy of many chunks (the device stages 64 KiB at a time) whose
	// sink holds the worker at the first.
	big := alloc(t, d, 1<<20)
	entered, release := make(chan struct{}), make(chan struct{})
	pieces := 0
	if err := victim.CopyDtoH(big, 1<<20, func(uint64, []byte) error {
		if pieces++; pieces == 1 {
			close(entered)
			<-release
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, entered, "the worker entering the sink")

	copied := make(chan error, 1)
	if err := victim.CopyHtoD(p, bytes.Repeat([]byte{1}, 4*n), func() { copied <- nil }); err != nil {
		t.Fatal(err)
	}
	cfg := backend.LaunchConfig{Grid: [3]uint32{n / 256, 1, 1}, Block: [3]uint32{256, 1, 1}}
	if err := victim.Launch(fill, cfg, fillParams(p, 9, n), nil); err != nil {
		t.Fatal(err)
	}
	if err := victim.Memset(p, 0xff, 1, 4*n); err != nil {
		t.Fatal(err)
	}
	sunk := false
	if err := victim.CopyDtoH(p, 4, func(uint64, []byte) error { sunk = true; return nil }); err != nil {
		t.Fatal(err)
	}
	ev, err := d.NewEvent(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Destroy()
	if err := victim.Record(ev); err != nil {
		t.Fatal(err)
	}
	first := notifyCh(t, victim)

	// The bystander waits for the victim's record, then fills q.
	if err := bystander.Wait(ev); err != nil {
		t.Fatal(err)
	}
	if err := bystander.Launch(fill, cfg, fillParams(q, 7, n), nil); err != nil {
		t.Fatal(err)
	}
	bystanderDone := notifyCh(t, bystander)

	victim.(backend.Canceler).Cancel()
	close(release)

	if err := within(t, copied, "the dropped CopyHtoD's done"); err != nil {
		t.Fatal(err)
	}
	if err := within(t, first, "the queued Notify"); !errors.Is(err, backend.ErrCancelled) {
		t.Fatalf("queued Notify: %v, want the cancellation", err)
	}
	if sunk {
		t.Error("a dropped CopyDtoH called its sink")
	}
	if pieces > 2 {
		t.Errorf("the running copy delivered %d of its 16 chunks after Cancel, want it stopped", pieces)
	}
	if err := within(t, bystanderDone, "the bystander's Notify"); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	for i, b := range download(t, bystander, q, 4*n) {
		if want := []byte{7, 0, 0, 0}[i%4]; b != want {
			t.Fatalf("bystander's q[%d] = %#x, want %#x", i, b, want)
		}
	}
	// None of the victim's dropped writes reached p: it is as Alloc gave it.
	if got := download(t, bystander, p, 4*n); !bytes.Equal(got, make([]byte, 4*n)) {
		t.Fatalf("dropped work wrote p: %x...", got[:16])
	}

	if err := victim.Memset(p, 1, 1, 1); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Memset after Cancel: %v", err)
	}
	if err := victim.Launch(fill, cfg, fillParams(p, 9, n), nil); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Launch after Cancel: %v", err)
	}
	if err := victim.CopyHtoD(p, []byte{1}, func() { t.Error("done of a refused copy") }); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("CopyHtoD after Cancel: %v", err)
	}
	if err := victim.Record(ev); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Record after Cancel: %v", err)
	}
	if err := victim.Wait(ev); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Wait after Cancel: %v", err)
	}
	if err := within(t, notifyCh(t, victim), "Notify after Cancel"); !errors.Is(err, backend.ErrCancelled) {
		t.Errorf("Notify after Cancel: %v", err)
	}
	victim.(backend.Canceler).Cancel() // twice is once
}
