//go:build linux

package shm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// trySizes are frame shapes that take every path of send: inline in the
// record, a body inline and its payload in the slab, a body too large for
// a record, a payload as large as the slab allows and one past it.
func trySizes(slab int) [][2]int {
	return [][2]int{
		{0, 0}, {40, 0}, {64, 200}, {100, 900}, {64, 1500}, {2000, 0},
		{100, slab / 4}, {100, slab/4 + 1}, {100, slab / 2}, {0, slab}, {10, slab + 1},
	}
}

// TestTrySend: against a consumer that does not read, TrySend fills the
// ring and slab and then returns ErrWouldBlock, never waiting (with Spin
// < 0 any wait is a futex sleep, and counted); every frame it accepted
// arrives whole and in order, with frames sent by Send between them; none
// it refused does.
func TestTrySend(t *testing.T) {
	opts := Options{RingSize: minRingSize, SlabSize: 4 * minSlabSize, Spin: -1}
	opts.EagerLimit = 1 << 10
	c, s := pair(t, opts)
	sizes := trySizes(4 * minSlabSize)
	rng := rand.New(rand.NewPCG(1, 2))

	type frame struct{ body, payload []byte }
	var sent []frame
	done := make(chan error, 1)
	go func() {
		refused := 0
		for i := 0; refused < 500; i++ {
			sz := sizes[rng.IntN(len(sizes))]
			body := binary.LittleEndian.AppendUint32(make([]byte, 0, sz[0]+4), uint32(i))
			body = append(body, pattern(sz[0], uint64(i))...)
			payload := pattern(sz[1], uint64(i)+1000)
			var err error
			if i%7 == 0 && len(sent) < 3 {
				err = c.Send(body, payload) // room for it: the consumer has not started
			} else {
				err = c.TrySend(body, payload)
			}
			switch {
			case errors.Is(err, transport.ErrWouldBlock):
				refused++
				continue
			case err != nil:
				done <- err
				return
			}
			sent = append(sent, frame{bytes.Clone(body), bytes.Clone(payload)})
			clear(payload) // sent: ours again
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(prompt):
		t.Fatal("TrySend waited for the consumer")
	}
	if n := c.sendSleeps.Load(); n != 0 {
		t.Fatalf("the producer slept %d times in TrySend", n)
	}
	if len(sent) < 2 {
		t.Fatalf("only %d frames sent before the ring was full", len(sent))
	}
	for i, f := range sent {
		body, payload, err := recvFrame(s)
		if err != nil {
			t.Fatalf("frame %d of %d: %v", i, len(sent), err)
		}
		if !bytes.Equal(body, f.body) || !bytes.Equal(payload, f.payload) {
			t.Fatalf("frame %d: body or payload differs from what was sent", i)
		}
	}
	// Nothing of a refused frame was written: the next frame is the next
	// one sent.
	if err := c.TrySend([]byte("after"), nil); err != nil {
		t.Fatalf("TrySend into an empty ring: %v", err)
	}
	if body, _, err := recvFrame(s); err != nil || string(body) != "after" {
		t.Fatalf("got %q, %v; want the frame sent after the drain", body, err)
	}
}

// TestTrySendRefuses: a payload past the slab never fits, a body past
// MaxBody is an error, a closed connection says so.
func TestTrySendRefuses(t *testing.T) {
	c, _ := pair(t, Options{SlabSize: minSlabSize})
	cases := []struct {
		name    string
		body    int
		payload int
		want    error
	}{
		{"payload past the slab", 10, 1 << 20, transport.ErrWouldBlock},
		{"body past MaxBody", transport.DefaultMaxBody + 1, 0, transport.ErrFrameTooLarge},
	}
	for _, tc := range cases {
		if err := c.TrySend(make([]byte, tc.body), make([]byte, tc.payload)); !errors.Is(err, tc.want) {
			t.Errorf("%s: TrySend: %v, want %v", tc.name, err, tc.want)
		}
	}
	c.Close()
	if err := c.TrySend([]byte("x"), nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("TrySend after Close: %v, want ErrClosed", err)
	}
}

// TestTrySendAllocs: a small TrySend allocates nothing.
func TestTrySendAllocs(t *testing.T) {
	c, s := pair(t, Options{})
	body := make([]byte, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.TrySend(body, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per small TrySend, want 0", allocs)
	}
}
