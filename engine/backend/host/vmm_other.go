//go:build !linux

package host

import (
	"github.com/gpufabric/gpufabric/engine/api"
)

// Elsewhere the arena is Go memory and nothing can be mapped into it.
const vmmSupported = false

type physical struct{ size uint64 }

func newPhysical(uint64) (*physical, error) {
	return nil, api.Errorf(api.ErrNotSupported, "virtual memory management: not on this system")
}

func (*physical) Release() error { return nil }

func (*physical) mapAt([]byte, uint64) error {
	return api.Errorf(api.ErrNotSupported, "virtual memory management: not on this system")
}

func unmapFixed([]byte) error {
	return api.Errorf(api.ErrNotSupported, "virtual memory management: not on this system")
}
