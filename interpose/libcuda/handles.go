package main

import (
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
)

// kind is the low four bits of a handle given to the application.
type kind uintptr

const (
	kindContext  kind = 1 // kept in C; see gf.h
	kindStream   kind = 2
	kindEvent    kind = 3
	kindModule   kind = 4
	kindFunction kind = 5
	kindLibrary  kind = 6
	kindKernel   kind = 7
	kindGraph    kind = 8  // a captured graph (CUgraph); see exec.go
	kindExec     kind = 9  // an instantiated graph (CUgraphExec)
	kindLink     kind = 10 // a JIT link (CUlinkState)
)

// objects maps the application's handles to the objects behind them. A
// handle is index<<4 | kind; freed indexes are reused.
var objects handleTable

type handleTable struct {
	mu    sync.RWMutex
	slots []any // slots[0] is never used, so no handle is below 0x10
	free  []uintptr
}

func (t *handleTable) add(k kind, v any) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.slots) == 0 {
		t.slots = append(t.slots, nil)
	}
	var i uintptr
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[i] = v
	} else {
		i = uintptr(len(t.slots))
		t.slots = append(t.slots, v)
	}
	return i<<4 | uintptr(k)
}

func (t *handleTable) get(h uintptr, k kind) any {
	if kind(h&0xF) != k {
		return nil
	}
	i := h >> 4
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i == 0 || i >= uintptr(len(t.slots)) {
		return nil
	}
	return t.slots[i]
}

func (t *handleTable) remove(h uintptr, k kind) any {
	if kind(h&0xF) != k {
		return nil
	}
	i := h >> 4
	t.mu.Lock()
	defer t.mu.Unlock()
	if i == 0 || i >= uintptr(len(t.slots)) || t.slots[i] == nil {
		return nil
	}
	v := t.slots[i]
	t.slots[i] = nil
	t.free = append(t.free, i)
	return v
}

// lookup returns the handle's object if it is of type T.
func lookup[T any](h uintptr, k kind) (T, api.Result) {
	v, ok := objects.get(h, k).(T)
	if !ok {
		return v, api.ErrInvalidHandle
	}
	return v, api.Success
}
