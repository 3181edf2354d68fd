package interpose_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// slotServer starts an in-process TCP server of one emulated device in
// address slot slot, and returns a session's device on it.
func slotServer(t testing.TB, slot int, memory uint64) (*interpose.Device, *engine.Server) {
	t.Helper()
	return slotServerOver(t, slot, memory, "tcp")
}

// slotServerOver is slotServer with the session's transport tr, tcp or
// shm (the server then listens on both).
func slotServerOver(t testing.TB, slot int, memory uint64, tr string) (*interpose.Device, *engine.Server) {
	t.Helper()
	dev, err := host.New(host.Config{MemorySize: memory, Slot: slot})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	offers := []string{"tcp:" + l.Addr()}
	var sl transport.Listener
	if tr == "shm" {
		_, port, _ := net.SplitHostPort(l.Addr())
		if sl, err = shm.Listen("@gpufabric-across-test-"+port, shm.Options{}); err != nil {
			t.Fatal(err)
		}
		offers = append(offers, "shm:@gpufabric-across-test-"+port)
	}
	srv, err := engine.NewServer(engine.Config{Offers: offers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	if sl != nil {
		go srv.Serve(sl)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, l.Addr(), interpose.Options{Transport: tr, BulkTransport: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	d, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: 1})
	if err != nil {
		t.Fatal(err)
	}
	return d, srv
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// TestCopyAcrossServers copies between devices of two servers, both ways,
// on each device's streams, at sizes from a byte to several pieces with a
// ragged end, and reads back the destination and the bytes around it.
func TestCopyAcrossServers(t *testing.T) {
	a, _ := slotServer(t, 1, 64<<20)
	b, _ := slotServer(t, 2, 64<<20)
	if err := interpose.CheckAddressRanges([]*interpose.Device{a, b}); err != nil {
		t.Fatal(err)
	}
	const guard = 64
	for _, n := range []int{1, 4096, 4<<20 + 1, 3*(4<<20) + 123} {
		for _, dir := range []struct {
			name     string
			src, dst *interpose.Device
			onSrc    bool // the copy's stream is the source's, else the destination's
		}{{"a-to-b on a's stream", a, b, true}, {"b-to-a on a's stream", b, a, false}, {"a-to-b on b's stream", a, b, false}} {
			src, err := dir.src.Alloc(uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			dst, err := dir.dst.Alloc(uint64(n + 2*guard))
			if err != nil {
				t.Fatal(err)
			}
			want := pattern(n, byte(n))
			if err := dir.src.CopyHtoD(src, want); err != nil {
				t.Fatal(err)
			}
			if err := dir.dst.Memset(dst, 0xEE, 1, uint64(n+2*guard)); err != nil {
				t.Fatal(err)
			}
			st, err := dir.dst.NewStream(0, 0)
			if dir.onSrc {
				st, err = dir.src.NewStream(0, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CopyPeer(dst+guard, dir.dst, src, dir.src, uint64(n), false); err != nil {
				t.Fatalf("%d bytes %s: %v", n, dir.name, err)
			}
			got := make([]byte, n+2*guard)
			if err := dir.dst.CopyDtoH(got, dst); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[guard:guard+n], want) {
				t.Fatalf("%d bytes %s: destination differs", n, dir.name)
			}
			for _, g := range [][]byte{got[:guard], got[guard+n:]} {
				if !bytes.Equal(g, bytes.Repeat([]byte{0xEE}, guard)) {
					t.Fatalf("%d bytes %s: a byte beside the destination changed", n, dir.name)
				}
			}
			for _, f := range []struct {
				d *interpose.Device
				p interpose.DevicePtr
			}{{dir.src, src}, {dir.dst, dst}} {
				if err := f.d.Free(f.p); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestCopyAcrossFollowsTheStream: work queued on the source's stream
// before the copy (a memset, not waited for) is in what the copy reads.
func TestCopyAcrossFollowsTheStream(t *testing.T) {
	a, _ := slotServer(t, 1, 64<<20)
	b, _ := slotServer(t, 2, 64<<20)
	const n = 9 << 20
	src, err := a.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := b.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MemsetAsync(src, 0x5A, 1, n); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyPeer(dst, b, src, a, n, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := b.CopyDtoH(got, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0x5A}, n)) {
		t.Fatal("the copy did not see the memset queued before it")
	}
}

// TestCheckAddressRanges: devices of two servers in one address slot are
// refused; in different slots, or of one session, they pass.
func TestCheckAddressRanges(t *testing.T) {
	a, _ := slotServer(t, 0, 1<<20)
	b, _ := slotServer(t, 0, 1<<20)
	c, _ := slotServer(t, 3, 1<<20)
	if err := interpose.CheckAddressRanges([]*interpose.Device{a, c}); err != nil {
		t.Fatalf("slots 0 and 3: %v", err)
	}
	err := interpose.CheckAddressRanges([]*interpose.Device{a, c, b})
	if !errors.Is(err, interpose.ErrAddressOverlap) {
		t.Fatalf("two servers in slot 0: %v, want ErrAddressOverlap", err)
	}
	t.Log(err)
	if err := interpose.CheckAddressRanges([]*interpose.Device{a, a}); err != nil {
		t.Fatalf("one session's device: %v", err)
	}
}

// TestCopyAcrossADeadServer: a copy from a server that died fails with
// CUDA_ERROR_DEINITIALIZED, and the other server's device goes on working.
func TestCopyAcrossADeadServer(t *testing.T) {
	a, srvA := slotServer(t, 1, 64<<20)
	b, _ := slotServer(t, 2, 64<<20)
	src, err := a.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := b.Alloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	srvA.Close()
	waitFor(t, func() bool { return a.Session().Ping() != nil })
	err = b.DefaultStream().CopyPeer(dst, b, src, a, 1<<20, true)
	if !errors.Is(err, api.ErrDeinitialized) {
		t.Fatalf("copy from a dead server: %v, want CUDA_ERROR_DEINITIALIZED", err)
	}
	want := pattern(1<<20, 3)
	if err := b.CopyHtoD(dst, want); err != nil {
		t.Fatalf("the living server's device: %v", err)
	}
	got := make([]byte, len(want))
	if err := b.CopyDtoH(got, dst); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the living server's device: %v", err)
	}
}

// BenchmarkCopyAcross measures a copy between devices of two servers beside
// its floor, measured in the same run: the same bytes read from one server
// into the client (DtoH) and written from the client to the other (HtoD),
// each alone. Pipelined, the copy can approach the slower of the two;
// unpipelined it would take their sum. Over TCP on loopback (servers on
// other hosts) and shared memory (servers on the client's host).
func BenchmarkCopyAcross(b *testing.B) {
	const n = 64 << 20
	for _, tr := range []string{"tcp", "shm"} {
		a, _ := slotServerOver(b, 1, 2*n, tr)
		c, _ := slotServerOver(b, 2, 2*n, tr)
		src, err := a.Alloc(n)
		if err != nil {
			b.Fatal(err)
		}
		dst, err := c.Alloc(n)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, n)
		for _, bc := range []struct {
			name string
			run  func() error
		}{
			{"floor-DtoH", func() error { return a.CopyDtoH(buf, src) }},
			{"floor-HtoD", func() error { return c.CopyHtoD(dst, buf) }},
			{"across", func() error { return a.DefaultStream().CopyPeer(dst, c, src, a, n, true) }},
		} {
			b.Run(tr+"/"+bc.name, func(b *testing.B) {
				b.SetBytes(n)
				for b.Loop() {
					if err := bc.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestWaitEventAcrossServers: a stream waiting for an event of another
// server's device runs its later work after the event's work: a copy out
// of device a queued after the wait sees what device b's stream wrote
// before its record, then copied across. The time between two servers'
// events is refused.
func TestWaitEventAcrossServers(t *testing.T) {
	a, _ := slotServer(t, 1, 64<<20)
	b, _ := slotServer(t, 2, 64<<20)
	const n = 8 << 20
	pb, err := b.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := a.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := a.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := b.NewEvent(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.MemsetAsync(pb, 0x3C, 1, n); err != nil {
		t.Fatal(err)
	}
	if err := ev.Record(sb); err != nil {
		t.Fatal(err)
	}
	if err := sa.WaitEvent(ev); err != nil {
		t.Fatal(err)
	}
	if done, err := ev.Query(); err != nil || !done {
		t.Fatalf("after the wait, b's event: done %v, %v", done, err)
	}
	evA, err := a.NewEvent(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := evA.Record(sa); err != nil {
		t.Fatal(err)
	}
	if _, err := interpose.ElapsedTime(ev, evA); !errors.Is(err, api.ErrInvalidHandle) {
		t.Fatalf("elapsed time between two servers' events: %v, want CUDA_ERROR_INVALID_HANDLE", err)
	}
	if err := sa.CopyPeer(pa, a, pb, b, n, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, n)
	if err := a.CopyDtoH(got, pa); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0x3C}, n)) {
		t.Fatal("work after the wait did not see the work before the record")
	}
}
