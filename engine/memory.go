package engine

import (
	"slices"
	"sort"
	"sync"
)

// allocGranularity is the unit allocations are accounted in, so that a share
// cannot be exceeded by many tiny allocations that the device rounds up.
const allocGranularity = 512

func accounted(size uint64) uint64 {
	return (size + allocGranularity - 1) &^ (allocGranularity - 1)
}

type allocation struct {
	base, size uint64
	global     bool // a module global: addressable, not freeable, not charged
}

// allocTable is one session's allocations on one device, sorted by base,
// plus the bytes they are charged.
type allocTable struct {
	mu      sync.Mutex
	allocs  []allocation
	charged uint64 // accounted bytes of allocs
}

func (t *allocTable) insert(base, size uint64) { t.add(allocation{base: base, size: size}) }

func (t *allocTable) insertGlobal(base, size uint64) {
	t.add(allocation{base: base, size: size, global: true})
}

func (t *allocTable) add(a allocation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.allocs), func(i int) bool { return t.allocs[i].base >= a.base })
	t.allocs = slices.Insert(t.allocs, i, a)
}

// remove takes the allocation at base out of the table; it stays charged
// until uncharge.
func (t *allocTable) remove(base uint64) (allocation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.allocs), func(i int) bool { return t.allocs[i].base >= base })
	if i == len(t.allocs) || t.allocs[i].base != base {
		return allocation{}, false
	}
	a := t.allocs[i]
	t.allocs = slices.Delete(t.allocs, i, i+1)
	return a, true
}

// charge accounts n more bytes if that stays within quota.
func (t *allocTable) charge(n, quota uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.charged+n > quota || t.charged+n < n {
		return false
	}
	t.charged += n
	return true
}

func (t *allocTable) uncharge(n uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.charged -= n
}

// Contains reports whether [ptr, ptr+n) lies inside one allocation. It is
// the backend.Memory a launch is checked against.
func (t *allocTable) Contains(ptr, n uint64) bool {
	if ptr+n < ptr {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.allocs), func(i int) bool { return t.allocs[i].base > ptr })
	if i == 0 {
		return false
	}
	a := t.allocs[i-1]
	return ptr+n <= a.base+a.size
}

// all returns a copy of the live allocations.
func (t *allocTable) all() []allocation {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.allocs)
}

func (t *allocTable) usage() (charged uint64, count int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.charged, len(t.allocs)
}
