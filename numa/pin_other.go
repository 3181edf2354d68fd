//go:build !linux

package numa

import "fmt"

// PinCurrentThread restricts the calling OS thread to the given CPUs.
// Only Linux is supported.
func PinCurrentThread(cpus []int) error {
	return fmt.Errorf("numa: pin thread to CPUs %s: %w", FormatCPUList(cpus), ErrNotSupported)
}

// AllocOnNode returns size bytes of memory placed on a node. Only Linux is
// supported.
func AllocOnNode(size int, node int) ([]byte, error) {
	return nil, fmt.Errorf("numa: allocate %d bytes on node %d: %w", size, node, ErrNotSupported)
}

// FreeBuffer releases a buffer from AllocOnNode. Only Linux is supported.
func FreeBuffer(b []byte) error {
	return fmt.Errorf("numa: free buffer: %w", ErrNotSupported)
}

// MoveToNode places an existing mapping on a node. Only Linux is supported.
func MoveToNode(b []byte, node int) error {
	return fmt.Errorf("numa: move %d bytes to node %d: %w", len(b), node, ErrNotSupported)
}

// PolicyOf returns the memory policy of a mapping. Only Linux is supported.
func PolicyOf(b []byte) (mode int, nodes []int, err error) {
	return 0, nil, fmt.Errorf("numa: policy of %d bytes: %w", len(b), ErrNotSupported)
}
