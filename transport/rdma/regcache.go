package rdma

import (
	"container/list"
	"fmt"
	"sync"
)

// RegCache keeps memory registered across calls: registering costs a
// system call and pins pages, far more than a small copy, so memory an
// application copies from again and again is registered once. But a
// registration pins the pages it was made on: if the memory is freed and
// other memory mapped at the same address, a cached registration would
// name the old pages, and data would go to the wrong place without a
// word. So the cache keeps only memory whose end it will hear of: memory
// pinned with Pin (an application's pinned host buffers, which it frees
// with a call the interposer sees), dropped with Drop before it is freed.
// Other memory is registered for one transfer and deregistered after
// (Get's release). Past maxBytes the least recently used pinned regions
// are deregistered, and registered per transfer again when next used.
type RegCache struct {
	dom      Domain
	maxBytes int

	mu    sync.Mutex
	lru   *list.List // of *regEntry, most recent first
	bytes int
	stats CacheStats
}

// CacheStats counts the cache's work.
type CacheStats struct {
	// Hits found pinned memory; Misses registered for one transfer.
	Hits, Misses, Pinned, Failures, Evictions, Drops int
}

type regEntry struct {
	start, end uintptr
	buf        []byte
	access     Access
	mr         MR
}

// NewRegCache returns a cache registering in dom, holding at most
// maxBytes registered.
func NewRegCache(dom Domain, maxBytes int) *RegCache {
	return &RegCache{dom: dom, maxBytes: maxBytes, lru: list.New()}
}

// Get returns b as an SGE of a registered region with at least access:
// a pinned one that holds it, or a registration made now, which release
// undoes (call it once the transfer is over). It fails, with ErrRegister,
// when b cannot be registered; the caller copies through memory of its
// own instead.
func (c *RegCache) Get(b []byte, access Access) (sge SGE, release func(), err error) {
	if len(b) == 0 {
		return SGE{}, nil, fmt.Errorf("%w: empty buffer", ErrRegister)
	}
	start := addrOf(b)
	end := start + uintptr(len(b))
	c.mu.Lock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		r := e.Value.(*regEntry)
		if start >= r.start && end <= r.end && r.access&access == access {
			c.lru.MoveToFront(e)
			c.stats.Hits++
			c.mu.Unlock()
			return SGE{MR: r.mr, Off: int(start - r.start), Len: len(b)}, func() {}, nil
		}
	}
	c.stats.Misses++
	c.mu.Unlock()
	mr, err := c.dom.Register(b, access)
	if err != nil {
		c.mu.Lock()
		c.stats.Failures++
		c.mu.Unlock()
		return SGE{}, nil, err
	}
	return SGE{MR: mr, Len: len(b)}, func() { mr.Close() }, nil
}

// Pin registers b with access and keeps it registered until Drop (or until
// it is the least recently used past maxBytes).
func (c *RegCache) Pin(b []byte, access Access) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty buffer", ErrRegister)
	}
	if len(b) > c.maxBytes {
		return fmt.Errorf("%w: %d bytes past the cache's %d", ErrRegister, len(b), c.maxBytes)
	}
	c.Drop(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.bytes+len(b) > c.maxBytes && c.lru.Len() > 0 {
		c.evict(c.lru.Back())
		c.stats.Evictions++
	}
	mr, err := c.dom.Register(b, access)
	if err != nil {
		c.stats.Failures++
		return err
	}
	start := addrOf(b)
	c.lru.PushFront(&regEntry{start: start, end: start + uintptr(len(b)), buf: b, access: access, mr: mr})
	c.bytes += len(b)
	c.stats.Pinned++
	return nil
}

// Drop deregisters every region overlapping b: call it before b's memory
// is freed.
func (c *RegCache) Drop(b []byte) {
	if len(b) == 0 {
		return
	}
	start := addrOf(b)
	end := start + uintptr(len(b))
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		r := e.Value.(*regEntry)
		if r.start < end && start < r.end {
			c.evict(e)
			c.stats.Drops++
		}
		e = next
	}
}

// Close deregisters everything.
func (c *RegCache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.evict(c.lru.Back())
	}
}

// Stats returns the counts so far.
func (c *RegCache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *RegCache) evict(e *list.Element) {
	r := c.lru.Remove(e).(*regEntry)
	r.mr.Close()
	c.bytes -= len(r.buf)
}
