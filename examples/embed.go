// Package examples holds the programs and kernels of the demo and the tests:
// kernels.ptx (the PTX of the built-in kernels), Go clients under its
// subdirectories, and C programs against the driver API.
package examples

import _ "embed"

// KernelsPTX is examples/kernels.ptx, for Go programs and tests that load it
// as a module.
//
//go:embed kernels.ptx
var KernelsPTX []byte
