//go:build !linux

package bench

import (
	"fmt"
	"time"
)

// ShmPingPong is the floor of a call through shared memory; it needs
// memfd_create, which only Linux has.
func ShmPingPong(b Budget) ([]time.Duration, error) {
	return nil, fmt.Errorf("shared-memory floor: %w", ErrNotSupported)
}
