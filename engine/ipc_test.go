package engine_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// TestIPC: a process exports memory, another of the same user (both over
// shared memory, so the kernel vouches for the uid) opens it and sees the
// same bytes both ways; the memory outlives its owner's free, and its
// owner's end, until the opener closes it.
func TestIPC(t *testing.T) {
	f := newFixture(t, 2, 64<<20)
	f.transport = "shm"
	owner := f.dial(t)
	od, err := owner.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	p, err := od.Alloc(8192)
	if err != nil {
		t.Fatal(err)
	}
	if err := od.Memset(p, 0x42, 1, 8192); err != nil {
		t.Fatal(err)
	}
	h, err := od.IpcHandle(p)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := od.IpcHandle(p); err != nil || again != h {
		t.Fatalf("a second export of one allocation: %v, same handle %v", err, again == h)
	}
	if _, _, _, err := owner.IpcOpen(h); !errors.Is(err, api.ErrInvalidContext) {
		t.Fatalf("the owner opening its own: %v", err)
	}

	opener := f.dial(t)
	dev, err := opener.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	q, size, ordinal, err := opener.IpcOpen(h)
	if err != nil {
		t.Fatal(err)
	}
	if q != p || size < 8192 || ordinal != 0 {
		t.Fatalf("opened at %#x, %d bytes, ordinal %d", q, size, ordinal)
	}
	if _, _, _, err := opener.IpcOpen(h); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("opening twice: %v", err)
	}
	got := make([]byte, 8192)
	if err := dev.CopyDtoH(got, q); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x42}, 8192)) {
		t.Fatalf("the opener reads: %v", err)
	}
	if err := dev.Memset(q+4096, 0x24, 1, 16); err != nil {
		t.Fatal(err)
	}
	mine := make([]byte, 16)
	if err := od.CopyDtoH(mine, p+4096); err != nil || !bytes.Equal(mine, bytes.Repeat([]byte{0x24}, 16)) {
		t.Fatalf("the owner reads the opener's write: %v %x", err, mine)
	}
	// The opener cannot free what it opened; it is not charged for it.
	if err := dev.Free(q); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("the opener freeing the owner's memory: %v", err)
	}
	if free, total, _ := dev.MemGetInfo(); free != total {
		t.Fatalf("the opener is charged: free %d of %d", free, total)
	}
	// The owner frees it and goes: the opener still reads it.
	if err := od.Free(p); err != nil {
		t.Fatal(err)
	}
	owner.Close()
	waitFor(t, func() bool { return len(f.srv.Status().Sessions) == 1 })
	if err := dev.CopyDtoH(got[:16], q+4096); err != nil || !bytes.Equal(got[:16], mine) {
		t.Fatalf("after the owner went: %v", err)
	}
	if err := opener.IpcClose(q); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyDtoH(got[:16], q); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("after closing: %v", err)
	}
	// Gone for good: nobody opens it again.
	third := f.dial(t)
	if _, err := third.Attach(0, interpose.Share{Fraction: 0.25}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := third.IpcOpen(h); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("opening freed memory: %v", err)
	}
}

// TestBadIPC: another user's handle (a TCP peer is not the shared-memory
// uid), a forged key, a device outside the opener's reservation and a
// close of what was never opened get CUDA errors; a bystander goes on.
func TestBadIPC(t *testing.T) {
	f := newFixture(t, 2, 64<<20)
	by := newBystander(t, f) // TCP
	f.transport = "shm"
	owner := f.dial(t)
	od0, err := owner.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	od1, err := owner.Attach(1, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	p0, _ := od0.Alloc(4096)
	p1, _ := od1.Alloc(4096)
	h0, err := od0.IpcHandle(p0)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := od1.IpcHandle(p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := od0.IpcHandle(p0 + 8); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("export of an address inside an allocation: %v", err)
	}

	f.transport = "tcp"
	stranger := f.dial(t)
	if _, err := stranger.Attach(0, interpose.Share{Fraction: 0.25}); err != nil {
		t.Fatal(err)
	}
	f.transport = "shm"
	sameUser := f.dial(t)
	if _, err := sameUser.Attach(0, interpose.Share{Fraction: 0.25}); err != nil {
		t.Fatal(err)
	}
	forged := h0
	forged.Key[0] ^= 1
	wrongDevice := h0
	wrongDevice.Device = 1
	for _, tc := range []struct {
		name string
		s    *interpose.Session
		h    api.IpcMemHandle
		want api.Result
	}{
		{"another user's handle", stranger, h0, api.ErrInvalidValue},
		{"a forged key", sameUser, forged, api.ErrInvalidValue},
		{"a handle naming another device", sameUser, wrongDevice, api.ErrInvalidValue},
		{"memory on a device the opener does not hold", sameUser, h1, api.ErrInvalidDevice},
	} {
		if _, _, _, err := tc.s.IpcOpen(tc.h); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := sameUser.IpcClose(interpose.DevicePtr(p0)); err != nil {
		t.Fatal(err)
	}
	if err := sameUser.Devices()[0].Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("closing what was never opened: %v", err)
	}
	// The same user may still open it after all that.
	if _, _, _, err := sameUser.IpcOpen(h0); err != nil {
		t.Fatalf("the same user: %v", err)
	}
	by.check(13)
}

// TestIPCEvents: an event exported by one process orders another's stream
// after the first one's work; it outlives its owner's destroy while the
// opener holds it; another user cannot open it.
func TestIPCEvents(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	f.transport = "shm"
	owner := f.dial(t)
	od, err := owner.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := od.NewEvent(interpose.EventDisableTiming | 0x4) // CU_EVENT_INTERPROCESS
	if err != nil {
		t.Fatal(err)
	}
	h, err := ev.IpcEventHandle()
	if err != nil {
		t.Fatal(err)
	}
	opener := f.dial(t)
	dev, err := opener.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := dev.IpcOpenEvent(h)
	if err != nil {
		t.Fatal(err)
	}
	// The owner fills its memory and records; the opener waits for the
	// record, then reads the memory the owner exported.
	p, err := od.Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	mh, err := od.IpcHandle(p)
	if err != nil {
		t.Fatal(err)
	}
	q, _, _, err := opener.IpcOpen(mh)
	if err != nil {
		t.Fatal(err)
	}
	if err := od.DefaultStream().MemsetAsync(p, 0x17, 1, 4096); err != nil {
		t.Fatal(err)
	}
	if err := ev.Record(od.DefaultStream()); err != nil {
		t.Fatal(err)
	}
	// A wait targets the record made before it, as in CUDA, and the two
	// processes' calls are not ordered: the owner's query, answered after
	// its record is made, stands for the word processes would exchange.
	if _, err := ev.Query(); err != nil {
		t.Fatal(err)
	}
	if err := dev.DefaultStream().WaitEvent(theirs); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if err := dev.CopyDtoH(got, q); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x17}, 4096)) {
		t.Fatalf("the opener after waiting on the owner's event: %v", err)
	}
	// The owner destroys its event: the opener's still works.
	if err := ev.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := theirs.Synchronize(); err != nil {
		t.Fatalf("the opener's event after the owner destroyed its own: %v", err)
	}
	// Another user's session cannot open it.
	f.transport = "tcp"
	stranger := f.dial(t)
	sdev, err := stranger.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdev.IpcOpenEvent(h); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("another user's event: %v", err)
	}
	if err := theirs.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Synchronize(); err != nil {
		t.Fatal(err)
	}
}
