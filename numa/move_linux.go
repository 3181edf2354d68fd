package numa

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MoveToNode places an existing mapping on the given node: the pages b
// already has migrate there, and pages allocated for it later prefer it.
// It is meant for memory that was allocated before its user was known,
// such as a MAP_SHARED mapping of a memfd whose pages were fallocated by
// this or another process. b must be a whole mapping or a page-aligned
// part of one.
//
// The pages are first mapped into this process's page tables
// (MADV_POPULATE_READ, or a read of one byte per page where the kernel
// lacks it), because mbind migrates only pages this process maps; then the
// policy is set with MPOL_PREFERRED and MPOL_MF_MOVE. MPOL_MF_MOVE moves
// only pages mapped by this process alone, so pages another process has
// touched too stay where they are; moving those (MPOL_MF_MOVE_ALL) needs
// CAP_SYS_NICE and is not attempted. For a shared file the policy is the
// file's, so later allocations prefer node whichever process makes them.
//
// Placement is a hint, as for AllocOnNode: a node that is negative (such
// as UnknownNode) or beyond what a node mask can hold is no preference,
// and a policy the kernel refuses (ENOSYS, EPERM, EINVAL) is not an error.
func MoveToNode(b []byte, node int) error {
	if len(b) == 0 || node < 0 || node >= maxNodes {
		return nil
	}
	if a := addrOf(b); a%uintptr(os.Getpagesize()) != 0 {
		return fmt.Errorf("numa: move %d bytes at %#x to node %d: start is not page aligned: %w", len(b), a, node, unix.EINVAL)
	}
	if err := populate(b); err != nil {
		return fmt.Errorf("numa: move %d bytes to node %d: map pages: %w", len(b), node, err)
	}
	mask := make([]uint64, node/64+1)
	mask[node/64] = 1 << (node % 64)
	err := mbind(b, unix.MPOL_PREFERRED, mask, unix.MPOL_MF_MOVE)
	switch {
	case err == nil, errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
		return nil
	}
	return fmt.Errorf("numa: move %d bytes to node %d: %w", len(b), node, err)
}

// populate maps b's pages into this process's page tables without writing
// them. Kernels before 5.14 refuse MADV_POPULATE_READ with EINVAL; there a
// read of one byte per page does the same. Other errors (EFAULT for pages
// past the end of the file, which a read would turn into SIGBUS) are
// returned.
func populate(b []byte) error {
	err := unix.Madvise(b, unix.MADV_POPULATE_READ)
	if errors.Is(err, unix.EINVAL) {
		touchPages(b)
		return nil
	}
	return err
}

// touchSink receives a value computed from the bytes touchPages reads, so
// that the compiler cannot drop the reads. It is atomic so that concurrent
// calls do not race on it.
var touchSink atomic.Uint32

// touchPages reads one byte of each page of b.
func touchPages(b []byte) {
	var x byte
	for i := 0; i < len(b); i += os.Getpagesize() {
		x ^= b[i]
	}
	touchSink.Add(uint32(x))
}

// PolicyOf returns the memory policy of the mapping that holds b's first
// byte, as get_mempolicy(2) with MPOL_F_ADDR reports it: mode is an MPOL_*
// mode (MPOL_DEFAULT, MPOL_PREFERRED, ...) with the mode flags
// (MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES) cleared, and nodes are the
// nodes of the policy's mask in increasing order (none for MPOL_DEFAULT).
// The mask read back holds maxNodes bits, a page of them, the most the
// kernel accepts and more than any kernel has nodes. Errors from the
// kernel are wrapped, so a caller can tell ENOSYS (no NUMA) and EPERM (a
// seccomp profile) apart.
func PolicyOf(b []byte) (mode int, nodes []int, err error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("numa: policy of an empty buffer: %w", unix.EINVAL)
	}
	mask := make([]uint64, maxNodes/64)
	mode, err = getMempolicy(b, mask)
	if err != nil {
		return 0, nil, fmt.Errorf("numa: policy of %d bytes: %w", len(b), err)
	}
	for i, w := range mask {
		for ; w != 0; w &= w - 1 {
			nodes = append(nodes, i*64+bits.TrailingZeros64(w))
		}
	}
	return mode &^ unix.MPOL_MODE_FLAGS, nodes, nil
}
