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
	// Transparent huge pages, where the host offers them: Free scrubs
	// large ranges by dropping their pages (see Device.Free), which costs
	// a page-table walk per page, and first touch costs a fault per page.
	// With 2 MiB pages both are 512 times fewer: BenchmarkScrub64MiB
	// measured the scrub of 64 MiB at 2% of a 64 MiB copy instead of 14%,
	// and the copy into freshly scrubbed memory at 1.8x a warm copy
	// instead of 3x. The cost is memory: a touched byte backs its 2 MiB.
	// Failure (no THP) leaves ordinary pages, which work the same.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b, nil
}

func unmapArena(b []byte) error { return unix.Munmap(b) }

// release hands the pages of a freed range back to the host and reports
// whether it did. On a private anonymous mapping, MADV_DONTNEED drops the
// pages outright: the next touch faults in a fresh zero-filled page, so the
// range reads as zeros afterwards without this thread writing a byte.
func release(b []byte) bool { return unix.Madvise(b, unix.MADV_DONTNEED) == nil }
