package numa

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the package's only use of unsafe: mbind(2) has no wrapper
// in x/sys/unix, so its pointers are passed as raw syscall arguments.
//
// Why it is safe: b is an mmap'd region outside the Go heap, so the garbage
// collector neither moves nor frees it, and its length is the mapping's;
// mask is a Go slice kept alive past the call by runtime.KeepAlive, and
// maxnode tells the kernel to read no more bits than it holds. The kernel
// only reads the mask and never retains either pointer.

// mbind sets the memory policy of b to mode over the nodes in mask.
func mbind(b []byte, mode int, mask []uint64) error {
	// maxnode counts bits and the kernel reads one fewer (its long-standing
	// off-by-one, which libnuma also compensates for).
	maxnode := uintptr(len(mask)*64 + 1)
	_, _, errno := unix.Syscall6(unix.SYS_MBIND,
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(mode), uintptr(unsafe.Pointer(unsafe.SliceData(mask))), maxnode, 0)
	runtime.KeepAlive(mask)
	if errno != 0 {
		return errno
	}
	return nil
}
