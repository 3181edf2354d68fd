//go:build !linux || !cgo

package rdma

import (
	"fmt"
	"runtime"
)

// Library is the verbs library a Linux build opens at run time.
const Library = "libibverbs.so.1"

// why says what this build lacks.
func why() string {
	if runtime.GOOS != "linux" {
		return fmt.Sprintf("the verbs transport runs on linux only, not %s", runtime.GOOS)
	}
	return "built without cgo (CGO_ENABLED=0); the verbs transport needs cgo to dlopen " + Library
}

// Load always fails in this build.
func Load() error { return fmt.Errorf("%w: %s", ErrUnavailable, why()) }

// Devices always fails in this build.
func Devices() ([]string, error) { return nil, Load() }

// Open always fails in this build.
func Open(string, OpenOptions) (Device, error) { return nil, Load() }
