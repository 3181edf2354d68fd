package numa

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the package's only use of unsafe: mbind(2) and
// get_mempolicy(2) have no wrappers in x/sys/unix, so their pointers are
// passed as raw syscall arguments.
//
// Why it is safe: b is an mmap'd region outside the Go heap, so the garbage
// collector neither moves nor frees it, and its length is the mapping's;
// get_mempolicy only uses b's first address to find the mapping and never
// dereferences it. mask and mode are Go variables kept alive past the call
// by runtime.KeepAlive, and maxnode tells the kernel to read (mbind) or
// write (get_mempolicy) no more bits than mask holds; mode is a C int, so
// an int32 is exactly what the kernel writes. The kernel retains none of
// the pointers after the call. addrOf only reads an address as a number,
// never turns a number back into a pointer.

// maskArg is the maxnode argument for a mask of len(mask) words: a count of
// bits of which the kernel uses one fewer (its long-standing off-by-one,
// which libnuma also compensates for).
func maskArg(mask []uint64) uintptr { return uintptr(len(mask)*64 + 1) }

// mbind sets the memory policy of b to mode over the nodes in mask; flags
// are MPOL_MF_* flags, such as MPOL_MF_MOVE to migrate the pages b already
// has.
func mbind(b []byte, mode int, mask []uint64, flags int) error {
	_, _, errno := unix.Syscall6(unix.SYS_MBIND,
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(mode), uintptr(unsafe.Pointer(unsafe.SliceData(mask))), maskArg(mask), uintptr(flags))
	runtime.KeepAlive(mask)
	if errno != 0 {
		return errno
	}
	return nil
}

// getMempolicy returns the policy mode of the mapping holding b's first
// byte (MPOL_F_ADDR) and writes its nodes into mask. b must not be empty.
func getMempolicy(b []byte, mask []uint64) (mode int, err error) {
	var m int32
	_, _, errno := unix.Syscall6(unix.SYS_GET_MEMPOLICY,
		uintptr(unsafe.Pointer(&m)), uintptr(unsafe.Pointer(unsafe.SliceData(mask))), maskArg(mask),
		uintptr(unsafe.Pointer(&b[0])), unix.MPOL_F_ADDR, 0)
	runtime.KeepAlive(mask)
	runtime.KeepAlive(&m)
	if errno != 0 {
		return 0, errno
	}
	return int(m), nil
}

// addrOf is the address of b's first byte, for alignment checks.
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
