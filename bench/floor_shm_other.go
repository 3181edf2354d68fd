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

// ShmPingPongProcesses is the floor of a call through shared memory between
// two processes; it needs memfd_create, which only Linux has.
func ShmPingPongProcesses(b Budget) ([]time.Duration, error) {
	return nil, fmt.Errorf("shared-memory floor: %w", ErrNotSupported)
}

// ServeFloorChild does nothing where ShmPingPongProcesses starts no child.
func ServeFloorChild() {}

// FloorChildEnv marks the child of ShmPingPongProcesses.
const FloorChildEnv = "GPUFABRIC_BENCH_FLOOR_CHILD"
