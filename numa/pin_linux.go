package numa

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// cpuSetSize is the number of CPUs unix.CPUSet holds (glibc's CPU_SETSIZE).
const cpuSetSize = len(unix.CPUSet{}) * 64

// maxNodes bounds the node mask passed to mbind: the kernel refuses masks
// longer than a page of bits.
const maxNodes = 4096 * 8

// PinCurrentThread restricts the calling OS thread to the given CPUs. The
// caller must have called runtime.LockOSThread, or the goroutine may move
// to a thread that is not pinned and leave this one pinned for others.
func PinCurrentThread(cpus []int) error {
	if len(cpus) == 0 {
		return fmt.Errorf("numa: pin to an empty CPU set: %w", ErrInvalidCPU)
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= cpuSetSize {
			return fmt.Errorf("numa: pin to CPU %d: %w", c, ErrInvalidCPU)
		}
		set.Set(c)
	}
	// pid 0 is the calling thread, not the whole process.
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("numa: pin thread to CPUs %s: %w", FormatCPUList(cpus), err)
	}
	return nil
}

// AllocOnNode returns size bytes of zeroed memory, mapped anonymously and
// outside the Go heap, whose pages the kernel prefers to take from the
// given node. Release it with FreeBuffer.
//
// Placement is a hint, as MPOL_PREFERRED is to the kernel: the buffer is
// correct wherever its pages live, only slower when remote. So where the
// policy cannot be set (a kernel without NUMA: ENOSYS; a seccomp profile
// that forbids mbind, as container runtimes' defaults do: EPERM; a node
// that is offline or outside this cpuset: EINVAL), and for a negative
// node (such as UnknownNode), the buffer is returned without a policy and
// without an error.
func AllocOnNode(size int, node int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("numa: allocate %d bytes: size must be positive", size)
	}
	// Not MAP_POPULATE: pages must be faulted in after the policy is set,
	// or they would land wherever the faulting thread runs.
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("numa: allocate %d bytes: %w", size, err)
	}
	if node < 0 || node >= maxNodes {
		return b, nil
	}
	mask := make([]uint64, node/64+1)
	mask[node/64] = 1 << (node % 64)
	err = mbind(b, unix.MPOL_PREFERRED, mask, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
		return b, nil
	}
	_ = unix.Munmap(b)
	return nil, fmt.Errorf("numa: bind %d bytes to node %d: %w", size, node, err)
}

// FreeBuffer unmaps a buffer from AllocOnNode. It must be given the slice
// AllocOnNode returned, not a reslice of it.
func FreeBuffer(b []byte) error {
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("numa: free buffer: %w", err)
	}
	return nil
}
