package numa

import "errors"

var (
	// ErrNotSupported is matched by the errors of thread pinning and node
	// placement on systems other than Linux.
	ErrNotSupported = errors.New("not supported on this platform")

	// ErrInvalidCPUList is matched by errors from parsing a malformed
	// kernel CPU list such as "0-3,8,10-11".
	ErrInvalidCPUList = errors.New("invalid CPU list")

	// ErrInvalidCPU is matched when a CPU set to pin to is empty or names
	// a CPU the kernel's affinity mask cannot hold.
	ErrInvalidCPU = errors.New("invalid CPU")
)
