package host

import (
	"slices"
	"sort"
)

// allocAlign is the alignment and granularity of allocations. CUDA
// guarantees 256 bytes; 512 keeps float4 and double2 loads aligned too.
const allocAlign = 512

// extent is a range [off, off+size) of the arena.
type extent struct{ off, size uint64 }

// allocator is a first-fit allocator over [0, size) with coalescing frees.
// It is not safe for concurrent use: the device calls it from its shard.
type allocator struct {
	size  uint64
	used  uint64
	free  []extent          // sorted by off, never adjacent
	alloc map[uint64]uint64 // off → size of live allocations
}

func newAllocator(size uint64) *allocator {
	size &^= allocAlign - 1
	return &allocator{size: size, free: []extent{{0, size}}, alloc: map[uint64]uint64{}}
}

// roundUp returns n rounded up to the allocation granularity, and false if
// that overflows.
func roundUp(n uint64) (uint64, bool) {
	r := (n + allocAlign - 1) &^ (allocAlign - 1)
	return r, r >= n
}

// get allocates n bytes (n > 0); ok is false when no free extent is large enough.
func (a *allocator) get(n uint64) (off uint64, ok bool) {
	n, ok = roundUp(n)
	if !ok || n == 0 {
		return 0, false
	}
	for i, e := range a.free {
		if e.size < n {
			continue
		}
		off = e.off
		if e.size == n {
			a.free = slices.Delete(a.free, i, i+1)
		} else {
			a.free[i] = extent{e.off + n, e.size - n}
		}
		a.alloc[off] = n
		a.used += n
		return off, true
	}
	return 0, false
}

// put frees the allocation at off and returns its size, or 0 if there is none.
func (a *allocator) put(off uint64) uint64 {
	n, ok := a.alloc[off]
	if !ok {
		return 0
	}
	delete(a.alloc, off)
	a.used -= n
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > off })
	e := extent{off, n}
	// Merge with the following extent, then the preceding one.
	if i < len(a.free) && e.off+e.size == a.free[i].off {
		e.size += a.free[i].size
		a.free = slices.Delete(a.free, i, i+1)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].size == e.off {
		a.free[i-1].size += e.size
		return n
	}
	a.free = slices.Insert(a.free, i, e)
	return n
}
