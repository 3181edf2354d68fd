package rdma

import (
	"container/list"
	"fmt"
	"sync"
)

// RegCache keeps memory registered across calls: registering costs a
// system call and pins pages, far more than a small copy, so a buffer an
// application copies from again and again is registered once. Regions are
// found by address; one holds a lookup for any slice inside it. Past
// maxBytes the least recently used regions are deregistered.
//
// Memory must be dropped from the cache before it is freed (Drop), or a
// later buffer at the same address would be found registered to pages that
// are no longer its own. Go slices cannot be freed while the cache holds
// them; C memory (an application's pinned host buffers) can, and whoever
// frees it calls Drop first.
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
	Hits, Misses, Failures, Evictions, Drops int
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

// Get returns b as an SGE of a region registered with at least access,
// registering b when no region holds it. It fails, with ErrRegister, when
// b cannot be registered; the caller copies through memory of its own
// instead.
func (c *RegCache) Get(b []byte, access Access) (SGE, error) {
	if len(b) == 0 {
		return SGE{}, fmt.Errorf("%w: empty buffer", ErrRegister)
	}
	start := addrOf(b)
	end := start + uintptr(len(b))
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		r := e.Value.(*regEntry)
		if start >= r.start && end <= r.end && r.access&access == access {
			c.lru.MoveToFront(e)
			c.stats.Hits++
			return SGE{MR: r.mr, Off: int(start - r.start), Len: len(b)}, nil
		}
	}
	c.stats.Misses++
	if len(b) > c.maxBytes {
		c.stats.Failures++
		return SGE{}, fmt.Errorf("%w: %d bytes past the cache's %d", ErrRegister, len(b), c.maxBytes)
	}
	for c.bytes+len(b) > c.maxBytes && c.lru.Len() > 0 {
		c.evict(c.lru.Back())
		c.stats.Evictions++
	}
	mr, err := c.dom.Register(b, access)
	if err != nil {
		c.stats.Failures++
		return SGE{}, err
	}
	c.lru.PushFront(&regEntry{start: start, end: end, buf: b, access: access, mr: mr})
	c.bytes += len(b)
	return SGE{MR: mr, Off: 0, Len: len(b)}, nil
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
