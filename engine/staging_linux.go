//go:build linux

package engine

import "golang.org/x/sys/unix"

// bigBuffer maps size bytes of fresh anonymous memory, of which the first
// n are returned: pages the kernel fills with zeros on first touch, so a
// buffer costs only what has been written to it. Should the mapping fail,
// the heap serves.
func bigBuffer(n, size int) []byte {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n, size)
	}
	return b[:n]
}

// freeBigBuffer unmaps a buffer of bigBuffer's; one the heap served is left
// to the collector.
func freeBigBuffer(b []byte) {
	// A buffer the heap served (when mapping failed) is unknown to Munmap,
	// which says so and leaves it to the collector.
	_ = unix.Munmap(b[:cap(b)])
}
