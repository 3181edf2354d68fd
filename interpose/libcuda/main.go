//go:build linux

package main

//go:generate go run ./gen

// Only the API's names are exported from the library: everything else of
// the C side is hidden, so it cannot clash with the application's symbols.

// #cgo CFLAGS: -fvisibility=hidden
import "C"

// main is never called: the package is a c-shared library.
func main() {}
