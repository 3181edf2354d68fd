//go:build !linux

package probe

import (
	"errors"
	"fmt"
	"runtime"
)

// Probes is a set of loaded probes; on this system there are none.
type Probes struct{}

// Open fails: eBPF probes need Linux.
func Open(Options) (*Probes, error) {
	return nil, fmt.Errorf("probe: eBPF probes need Linux, not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Track registers nothing.
func (*Probes) Track(tid int, role string) error { return errors.ErrUnsupported }

// Untrack does nothing.
func (*Probes) Untrack(tid int) error { return errors.ErrUnsupported }

// Process does nothing.
func (*Probes) Process(pid int) error { return errors.ErrUnsupported }

// WatchPort does nothing.
func (*Probes) WatchPort(port int) error { return errors.ErrUnsupported }

// Snapshot returns nothing.
func (*Probes) Snapshot() (Snapshot, error) { return Snapshot{}, errors.ErrUnsupported }

// Disabled returns nothing.
func (*Probes) Disabled() map[string]error { return nil }

// Close does nothing.
func (*Probes) Close() error { return nil }
