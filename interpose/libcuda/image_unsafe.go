//go:build linux

package main

/*
#include <string.h>
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// imageAt returns the module image at p as a slice over the caller's memory,
// which must stay valid while the slice is used (cuModuleLoadData's image
// does, for the duration of the call). This is the one place that trusts a
// bare pointer's format to tell its length; see image.go.
func imageAt(p unsafe.Pointer) ([]byte, imageKind, error) {
	for range 2 { // a wrapper, then what it wraps
		if p == nil {
			return nil, imagePTX, fmt.Errorf("%w: NULL image", errImage)
		}
		// Four bytes first: a PTX string may be shorter than any header.
		var head [4]byte
		copy(head[:], unsafe.Slice((*byte)(p), 4))
		if head[0] == 0 || head[1] == 0 || head[2] == 0 || head[3] == 0 {
			return nil, imagePTX, fmt.Errorf("%w: %d-byte image", errImage, C.strlen((*C.char)(p)))
		}
		switch kind := classify(head); kind {
		case imageWrapper:
			// {u32 magic, u32 version, const void *data, ...}
			p = *(*unsafe.Pointer)(unsafe.Add(p, 8))
			continue
		case imageFatbin:
			n, err := fatbinSize(unsafe.Slice((*byte)(p), 16))
			if err != nil {
				return nil, kind, err
			}
			return unsafe.Slice((*byte)(p), n), kind, nil
		case imageELF:
			n, err := elfSize(func(off, n uint64) []byte { return unsafe.Slice((*byte)(unsafe.Add(p, off)), n) })
			if err != nil {
				return nil, kind, err
			}
			return unsafe.Slice((*byte)(p), n), kind, nil
		default:
			// PTX: the text and its terminating NUL, as the driver takes it.
			n := int(C.strlen((*C.char)(p)))
			return unsafe.Slice((*byte)(p), n+1), kind, nil
		}
	}
	return nil, imageWrapper, fmt.Errorf("%w: a fatbin wrapper that wraps a wrapper", errImage)
}
