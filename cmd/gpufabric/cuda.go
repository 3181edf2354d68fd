package main

import (
	"errors"

	"github.com/gpufabric/gpufabric/engine/backend"
)

// openCUDA opens the real GPUs. The cuda backend is wired in when it lands.
func openCUDA() ([]backend.Device, error) {
	return nil, errors.New("the cuda backend is not built into this binary")
}
