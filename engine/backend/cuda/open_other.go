//go:build !linux || !cgo

package cuda

import (
	"fmt"
	"runtime"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// why says what this build lacks.
func why() string {
	if runtime.GOOS != "linux" {
		return fmt.Sprintf("the cuda backend runs on linux only, not %s", runtime.GOOS)
	}
	return "built without cgo (CGO_ENABLED=0); the cuda backend needs cgo to dlopen " + DefaultLibrary
}

// Open always fails in this build; the error matches ErrUnavailable and
// api.ErrNotSupported.
func Open(Options) ([]backend.Device, error) {
	return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, why(), api.ErrNotSupported)
}

// SystemInventory always fails in this build (go-nvml needs cgo on linux).
func SystemInventory() ([]GPU, error) {
	return nil, fmt.Errorf("%w: %s", ErrNoNVML, why())
}
