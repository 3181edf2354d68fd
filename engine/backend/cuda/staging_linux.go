//go:build cgo

package cuda

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
)

// Event flags (CUevent_flags).
const (
	// eventBlockingSync makes cuEventSynchronize sleep instead of spin: the
	// backend's waiters are goroutines, and a spinning one burns a CPU the
	// shards need.
	eventBlockingSync = 0x1
	// eventDisableTiming makes record and query cheaper; internal events
	// are never timed.
	eventDisableTiming = 0x2
)

// streamNonBlocking is CU_STREAM_NON_BLOCKING: the stream does not
// synchronise with the legacy default stream.
const streamNonBlocking = 0x1

// stagingBuf is one pinned staging buffer and the event that marks its
// last DMA.
type stagingBuf struct {
	mem      *pinned
	ev       handle
	inflight bool // ev was recorded and may not have completed
}

// stagingPool keeps a device's staging buffers. They are allocated on
// first use up to a cap (pinned memory is scarce and slow to allocate) and
// shared by all the device's streams. A buffer goes back to the pool with
// its DMA possibly still running; whoever takes it next waits for its
// event before touching it, which is usually long done.
type stagingPool struct {
	ctx  handle
	size int
	max  int

	mu     sync.Mutex
	cond   sync.Cond
	free   []*stagingBuf
	n      int // allocated
	closed bool
}

func newStagingPool(ctx handle, size, max int) *stagingPool {
	p := &stagingPool{ctx: ctx, size: size, max: max}
	p.cond.L = &p.mu
	return p
}

// get returns a buffer. With block false it returns nil rather than wait,
// so the caller can fall back to queuing the copy. A copy that already
// holds a buffer must not block for a second one: two copies that each hold
// one and wait for another would wait forever.
func (p *stagingPool) get(block bool) (*stagingBuf, error) {
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, api.Errorf(api.ErrDeinitialized, "device is closed")
		}
		// Prefer a buffer whose last DMA has finished: no wait at all.
		for i := len(p.free) - 1; i >= 0; i-- {
			b := p.free[i]
			if b.inflight && eventQuery(p.ctx, b.ev) != api.Success {
				continue
			}
			b.inflight = false
			p.free = slices.Delete(p.free, i, i+1)
			p.mu.Unlock()
			return b, nil
		}
		if p.n < p.max {
			p.n++
			p.mu.Unlock()
			b, err := p.alloc()
			if err != nil {
				p.mu.Lock()
				p.n--
				p.cond.Signal()
				p.mu.Unlock()
			}
			return b, err
		}
		if !block {
			p.mu.Unlock()
			return nil, nil
		}
		if len(p.free) > 0 {
			// All are busy: take the oldest; the copy waits for its
			// event before the first touch (stager.wait).
			b := p.free[0]
			p.free = p.free[1:]
			p.mu.Unlock()
			return b, nil
		}
		p.cond.Wait()
	}
}

func (p *stagingPool) alloc() (*stagingBuf, error) {
	mem, r := allocPinned(p.ctx, p.size)
	if err := check(r, "cuMemHostAlloc(%d bytes) for a staging buffer", p.size); err != nil {
		return nil, err
	}
	ev, r := eventCreate(p.ctx, eventBlockingSync|eventDisableTiming)
	if err := check(r, "cuEventCreate for a staging buffer"); err != nil {
		mem.free(p.ctx)
		return nil, err
	}
	return &stagingBuf{mem: mem, ev: ev}, nil
}

func (p *stagingPool) put(b *stagingBuf) {
	p.mu.Lock()
	p.free = append(p.free, b)
	p.cond.Signal()
	p.mu.Unlock()
}

// close frees the buffers in the pool, waiting for their last DMA first.
// It reports how many were still out (their memory goes with the context).
func (p *stagingPool) close() (out int) {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	out = p.n - len(free)
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, b := range free {
		if b.inflight {
			eventSync(p.ctx, b.ev)
		}
		eventDestroy(p.ctx, b.ev)
		b.mem.free(p.ctx)
	}
	return out
}

// eventPool recycles the internal events that Notify records: creating an
// event costs a driver call that a stream sync should not pay.
type eventPool struct {
	ctx  handle
	mu   sync.Mutex
	free []handle
}

func (p *eventPool) get() (handle, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		h := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	h, r := eventCreate(p.ctx, eventBlockingSync|eventDisableTiming)
	return h, check(r, "cuEventCreate")
}

func (p *eventPool) put(h handle) {
	p.mu.Lock()
	p.free = append(p.free, h)
	p.mu.Unlock()
}

func (p *eventPool) close() {
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, h := range free {
		eventDestroy(p.ctx, h)
	}
}

// copyStager is a stager over one stream and the one or two buffers a copy
// holds.
type copyStager struct {
	ctx, s handle
	bufs   []*stagingBuf
	// stop, when set, ends the copy at its next chunk: the stream was
	// cancelled (nil: never).
	stop *atomic.Bool
}

var _ stager = (*copyStager)(nil)

func (c *copyStager) nbuf() int        { return len(c.bufs) }
func (c *copyStager) buf(i int) []byte { return c.bufs[i].mem.b }

func (c *copyStager) htod(i int, dst uint64, n int) error {
	return check(c.bufs[i].mem.htod(c.ctx, dst, n, c.s), "cuMemcpyHtoDAsync(%#x, %d bytes)", dst, n)
}

func (c *copyStager) dtoh(i int, src uint64, n int) error {
	return check(c.bufs[i].mem.dtoh(c.ctx, src, n, c.s), "cuMemcpyDtoHAsync(%#x, %d bytes)", src, n)
}

func (c *copyStager) mark(i int) error {
	b := c.bufs[i]
	if err := check(eventRecord(c.ctx, b.ev, c.s), "cuEventRecord"); err != nil {
		// Nothing was recorded, so there is nothing to wait for; a
		// context that fails to record an event fails every call, and
		// the error reaches the client through the stream.
		return err
	}
	b.inflight = true
	return nil
}

func (c *copyStager) wait(i int) error {
	// Before every chunk, the pipelines wait for its buffer: the place to
	// notice a cancellation. The buffer's DMA may still be in flight; it
	// goes back to the pool marked so, and its next user waits for it.
	if c.stop != nil && c.stop.Load() {
		return errCancelled()
	}
	b := c.bufs[i]
	if !b.inflight {
		return nil
	}
	b.inflight = false
	return check(eventSync(c.ctx, b.ev), "cuEventSynchronize")
}
