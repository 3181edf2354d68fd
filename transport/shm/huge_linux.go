//go:build linux

package shm

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Transparent huge pages for host regions. A 64 MiB copy reads memory in
// 4 KiB pages 25-35 % slower than memory in 2 MiB pages on the 2-vCPU
// Xeon VM this was measured on (2026-12-03: a memfd mapping or a plain
// anonymous one 5.4-5.5 GB/s, an anonymous one with MADV_HUGEPAGE 7.3 GB/s,
// into the same heap buffer), and a pinned copy is one such read. Whether
// shared memory may use huge pages is the kernel's choice
// (/sys/kernel/mm/transparent_hugepage/shmem_enabled):
//
//   - always, within_size, force: fallocate already allocates the file's
//     memory in huge pages, and mappings of it are aligned for them; there
//     is nothing to ask.
//   - advise: only a mapping that asks (MADV_HUGEPAGE) faults in huge
//     pages, and fallocate, which has no mapping, allocates small ones. So
//     the region is mapped first, asks, and is populated through the
//     mapping, then fallocate allocates whatever that left (and reports a
//     shortage as an error, not a SIGBUS later).
//   - never, deny (the machine above): 4 KiB pages whatever is asked.

// shmemHugePolicy is the kernel's shmem_enabled setting, the bracketed
// word; "" where the file is missing (no THP).
var shmemHugePolicy = sync.OnceValue(func() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
	if err != nil {
		return ""
	}
	return bracketed(b)
})

// bracketed returns the word of a sysfs choice list that is in brackets.
func bracketed(b []byte) string {
	_, rest, ok := bytes.Cut(b, []byte("["))
	if !ok {
		return ""
	}
	word, _, ok := bytes.Cut(rest, []byte("]"))
	if !ok {
		return ""
	}
	return string(word)
}

// adviseHuge says whether host regions must ask for huge pages through
// their mappings. A variable so that tests can take the advise path on
// kernels that do not offer it.
var adviseHuge = func() bool { return shmemHugePolicy() == "advise" }

// mapHostFile maps size bytes of fd, shared and read-write, with the
// file's memory allocated (an error, not a later SIGBUS, if it cannot be),
// asking for huge pages where the kernel lets a mapping ask. populate adds
// MAP_POPULATE where no mapping asks: the page tables filled in at once.
// Callers make the pages writable in the page tables (populateWrite).
func mapHostFile(fd, size int, populate bool) ([]byte, error) {
	huge := adviseHuge()
	flags := unix.MAP_SHARED
	if !huge {
		if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
			return nil, fmt.Errorf("fallocate: %w", err)
		}
		if populate {
			flags |= unix.MAP_POPULATE
		}
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if huge {
		_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // best effort: small pages work the same
		populateWrite(mem)
		if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
			unix.Munmap(mem)
			return nil, fmt.Errorf("fallocate: %w", err)
		}
	}
	return mem, nil
}

// Reserved huge pages (hugetlbfs). Where the operator has reserved huge
// pages (vm.nr_hugepages), a host region of at least one huge page is
// created in them (memfd_create with MFD_HUGETLB): its memory is in 2 MiB
// pages whatever shmem_enabled says, and it is allocated when the file is
// (fallocate), so a shortage shows at once and the region falls back to
// ordinary shared memory. Smaller regions never take one: rounding a 4 KiB
// cuMemAllocHost up to a 2 MiB page would spend 512 times its size of a
// pool the operator sized for large buffers.

// hugeTLBPageSize is the default hugetlbfs page size in bytes (the one
// MFD_HUGETLB without a size flag uses); 0 where the kernel has none.
var hugeTLBPageSize = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return meminfoKiB(b, "Hugepagesize:") << 10
})

// hugeTLBFree reports how many huge pages of size bytes are free in the
// pool; 0 when it cannot tell. Read at each allocation: the pool is the
// whole machine's, and others take from it.
func hugeTLBFree(size int) int {
	b, err := os.ReadFile(fmt.Sprintf("/sys/kernel/mm/hugepages/hugepages-%dkB/free_hugepages", size>>10))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0
	}
	return n
}

// meminfoKiB returns the value of the /proc/meminfo line that starts with
// key, in kB; 0 when there is none.
func meminfoKiB(b []byte, key string) int {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))))
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// useHugeTLB says whether host regions may be created in reserved huge
// pages. A variable so that tests can take the fallback path on a machine
// with a pool.
var useHugeTLB = true

// newHugeTLBFile creates a memfd of size bytes rounded up to whole huge
// pages, in reserved huge pages, allocated; ok is false (nothing left
// open) where the region is smaller than a huge page, the kernel has no
// pool or the pool has too few free pages.
func newHugeTLBFile(size int) (fd, rounded int, ok bool) {
	page := hugeTLBPageSize()
	if !useHugeTLB || page == 0 || size < page {
		return -1, 0, false
	}
	rounded = (size + page - 1) &^ (page - 1)
	if hugeTLBFree(page)*page < rounded {
		return -1, 0, false // skip three system calls that would fail
	}
	fd, err := unix.MemfdCreate("gpufabric-pinned", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_HUGETLB)
	if err != nil {
		return -1, 0, false
	}
	// The pool may have shrunk since we looked: fallocate takes the pages
	// now, or fails, rather than a later fault raising SIGBUS.
	if unix.Ftruncate(fd, int64(rounded)) != nil || unix.Fallocate(fd, 0, 0, int64(rounded)) != nil {
		unix.Close(fd)
		return -1, 0, false
	}
	return fd, rounded, true
}
