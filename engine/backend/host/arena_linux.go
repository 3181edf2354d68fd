package host

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mapArena reserves size bytes of address space. MAP_NORESERVE keeps the
// reservation free: pages are backed only when first touched, so a 16 GiB
// emulated device costs nothing until it is used.
func mapArena(size uint64) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("host: reserve %d bytes of device memory: %w", size, err)
	}
	return b, nil
}

func unmapArena(b []byte) error { return unix.Munmap(b) }

// release hands the pages of a freed range back to the host.
func release(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
