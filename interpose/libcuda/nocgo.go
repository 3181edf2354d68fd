//go:build !linux || !cgo

package main

import (
	"fmt"
	"os"
)

// The interposer is a Linux c-shared library built with cgo; elsewhere the
// package compiles (its pure parts are tested everywhere) to a program that
// says so.
func main() {
	fmt.Fprintln(os.Stderr, "the gpufabric interposer needs Linux and cgo: go build -buildmode=c-shared on Linux")
	os.Exit(1)
}
