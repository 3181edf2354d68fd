//go:build linux

package main

/*
#include <stdlib.h>
#include "gf.h"
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// linkState is a CUlinkState: the inputs gathered here, sent to the
// server's device in one call at cuLinkComplete, whose linked image it
// then holds (in C memory, as the caller reads it) until cuLinkDestroy.
type linkState struct {
	dev C.int
	// The options of cuLinkCreate: the caller keeps them valid until
	// cuLinkDestroy, and the logs they ask for are written at complete.
	nopt C.uint
	opts *C.int
	vals *unsafe.Pointer

	mu     sync.Mutex
	inputs []interpose.LinkInput
	image  unsafe.Pointer
}

// CUjitInputType values: CUBIN 0, PTX 1, FATBINARY 2, OBJECT 3, LIBRARY 4,
// NVVM 5.
const jitInputLast = 5

//export gfgo_linkCreate
func gfgo_linkCreate(dev C.int, nopt C.uint, opts *C.int, vals *unsafe.Pointer, out *C.uintptr_t) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if out == nil || nopt > 0 && (opts == nil || vals == nil) {
		return res(api.ErrInvalidValue)
	}
	*out = C.uintptr_t(objects.add(kindLink, &linkState{dev: dev, nopt: nopt, opts: opts, vals: vals}))
	return 0
}

// gfgo_linkAdd adds data (size bytes) or, when path is not NULL, a file.
//
//export gfgo_linkAdd
func gfgo_linkAdd(h C.uintptr_t, typ C.int, data unsafe.Pointer, size C.size_t, name *C.char, path *C.char) C.CUresult {
	l, r := lookup[*linkState](uintptr(h), kindLink)
	if r != api.Success {
		return res(r)
	}
	if typ < 0 || typ > jitInputLast {
		return res(api.ErrInvalidValue)
	}
	var in interpose.LinkInput
	in.Type = uint8(typ)
	switch {
	case path != nil:
		b, r := readImage(C.GoString(path))
		if r != api.Success {
			return res(r)
		}
		in.Name, in.Data = C.GoString(path), b
	case data == nil || size == 0:
		return res(api.ErrInvalidValue)
	default:
		in.Data = C.GoBytes(data, C.int(size))
		if name != nil {
			in.Name = C.GoString(name)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inputs) >= api.MaxLinkInputs {
		return res(api.ErrInvalidValue)
	}
	l.inputs = append(l.inputs, in)
	return 0
}

//export gfgo_linkComplete
func gfgo_linkComplete(h C.uintptr_t, out *unsafe.Pointer, size *C.size_t) C.CUresult {
	l, r := lookup[*linkState](uintptr(h), kindLink)
	if r != api.Success {
		return res(r)
	}
	if out == nil || size == nil {
		return res(api.ErrInvalidValue)
	}
	d, r := device(l.dev)
	if r != api.Success {
		return res(r)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	image, err := d.Link(l.inputs)
	jitResults(l.nopt, l.opts, l.vals, err)
	if err != nil {
		return ret(err)
	}
	if l.image != nil {
		C.free(l.image)
	}
	l.image = C.CBytes(image)
	*out, *size = l.image, C.size_t(len(image))
	return 0
}

//export gfgo_linkDestroy
func gfgo_linkDestroy(h C.uintptr_t) C.CUresult {
	l, ok := objects.remove(uintptr(h), kindLink).(*linkState)
	if !ok {
		return res(api.ErrInvalidHandle)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.image != nil {
		C.free(l.image)
		l.image = nil
	}
	return 0
}
