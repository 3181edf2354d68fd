package cuda

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

const fakeBase = 0x7000_0000

// fakeDMA is a stager whose copies really are asynchronous: a copy engine
// goroutine runs the queued copies in order, each after a random delay, as
// a GPU's DMA engine runs a stream's. A pipeline that touches a staging
// buffer before its DMA is done reads or writes the wrong bytes, and the
// tests see it in the result.
type fakeDMA struct {
	dev  []byte
	bufs [][]byte
	ops  chan func()
	quit chan struct{}

	mu     sync.Mutex
	cond   sync.Cond
	marked []uint64 // per buffer: the latest mark queued
	done   []uint64 // per buffer: the latest mark the engine reached

	failCopy int // fail the failCopy-th htod/dtoh call (1-based); 0: never
	copies   int
}

func newFakeDMA(t *testing.T, devSize, nbuf, chunk int) *fakeDMA {
	f := &fakeDMA{
		dev:    make([]byte, devSize),
		ops:    make(chan func(), 1024),
		quit:   make(chan struct{}),
		marked: make([]uint64, nbuf),
		done:   make([]uint64, nbuf),
	}
	f.cond.L = &f.mu
	for range nbuf {
		f.bufs = append(f.bufs, make([]byte, chunk))
	}
	go func() {
		defer close(f.quit)
		for op := range f.ops {
			if rand.IntN(3) == 0 {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
			}
			op()
		}
	}()
	t.Cleanup(func() {
		close(f.ops)
		<-f.quit
	})
	return f
}

func (f *fakeDMA) nbuf() int        { return len(f.bufs) }
func (f *fakeDMA) buf(i int) []byte { return f.bufs[i] }

func (f *fakeDMA) fail() error {
	f.copies++
	if f.copies == f.failCopy {
		return errors.New("injected copy failure")
	}
	return nil
}

func (f *fakeDMA) htod(i int, dst uint64, n int) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.ops <- func() { copy(f.dev[dst-fakeBase:], f.bufs[i][:n]) }
	return nil
}

func (f *fakeDMA) dtoh(i int, src uint64, n int) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.ops <- func() { copy(f.bufs[i][:n], f.dev[src-fakeBase:src-fakeBase+uint64(n)]) }
	return nil
}

func (f *fakeDMA) mark(i int) error {
	f.mu.Lock()
	f.marked[i]++
	gen := f.marked[i]
	f.mu.Unlock()
	f.ops <- func() {
		f.mu.Lock()
		f.done[i] = gen
		f.cond.Broadcast()
		f.mu.Unlock()
	}
	return nil
}

func (f *fakeDMA) wait(i int) error {
	f.mu.Lock()
	for f.done[i] < f.marked[i] {
		f.cond.Wait()
	}
	f.mu.Unlock()
	return nil
}

// drain waits until every queued copy has run.
func (f *fakeDMA) drain() {
	for i := range f.bufs {
		f.mark(i)
		f.wait(i)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>8)
	}
	return b
}

func TestStagedCopies(t *testing.T) {
	const chunk = 64
	for _, nbuf := range []int{1, 2} {
		for _, n := range []int{0, 1, 63, 64, 65, 128, 1000, 4096 + 3} {
			t.Run(fmt.Sprintf("%d buffers/%d bytes", nbuf, n), func(t *testing.T) {
				f := newFakeDMA(t, 8192, nbuf, chunk)
				src := pattern(n, byte(n))
				const at = 100 // an unaligned device offset
				if err := stageHtoD(f, fakeBase+at, src); err != nil {
					t.Fatal(err)
				}
				f.drain()
				if !bytes.Equal(f.dev[at:at+n], src) {
					t.Fatalf("device holds %x..., want %x...", head(f.dev[at:at+n]), head(src))
				}

				var got []byte
				var offs []uint64
				calls := 0
				err := stageDtoH(f, fakeBase+at, uint64(n), func(off uint64, b []byte) error {
					calls++
					if len(b) > chunk {
						t.Errorf("piece of %d bytes exceeds a chunk", len(b))
					}
					offs = append(offs, off)
					got = append(got, b...)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, src) {
					t.Fatalf("sink got %x..., want %x...", head(got), head(src))
				}
				for i, off := range offs {
					if off != uint64(i*chunk) {
						t.Fatalf("piece %d at offset %d, want %d (pieces must come in order)", i, off, i*chunk)
					}
				}
				if want := max(1, (n+chunk-1)/chunk); calls != want {
					t.Errorf("sink called %d times, want %d", calls, want)
				}
			})
		}
	}
}

func TestStageDtoHSinkError(t *testing.T) {
	f := newFakeDMA(t, 4096, 2, 64)
	stop := errors.New("client went away")
	calls := 0
	err := stageDtoH(f, fakeBase, 1000, func(off uint64, b []byte) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("stageDtoH = %v, want the sink's error", err)
	}
	if calls != 3 {
		t.Fatalf("sink called %d times after failing on the 3rd", calls)
	}
}

func TestStagedCopyErrors(t *testing.T) {
	for _, failAt := range []int{1, 2, 5} {
		t.Run(fmt.Sprint("copy ", failAt), func(t *testing.T) {
			f := newFakeDMA(t, 4096, 2, 64)
			f.failCopy = failAt
			if err := stageHtoD(f, fakeBase, make([]byte, 1000)); err == nil {
				t.Error("stageHtoD hid a copy failure")
			}
			f.drain()
			f.copies, f.failCopy = 0, failAt
			err := stageDtoH(f, fakeBase, 1000, func(uint64, []byte) error { return nil })
			if err == nil {
				t.Error("stageDtoH hid a copy failure")
			}
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }
