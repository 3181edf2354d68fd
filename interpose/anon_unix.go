//go:build unix

package interpose

import "golang.org/x/sys/unix"

// anonMap maps size bytes of anonymous memory: outside the Go heap, so a C
// caller (the interposer's cuMemAllocHost) may keep the pointer.
func anonMap(size int) ([]byte, error) {
	return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
}

// anonUnmap undoes anonMap.
func anonUnmap(b []byte) error { return unix.Munmap(b) }
