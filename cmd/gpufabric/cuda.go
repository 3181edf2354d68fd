package main

import (
	"log/slog"

	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/cuda"
)

// openCUDA opens the real GPUs; where there are none, the error says why.
func openCUDA(log *slog.Logger) ([]backend.Device, error) {
	return cuda.Open(cuda.Options{Logger: log})
}
