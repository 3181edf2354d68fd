//go:build linux

package engine

import "golang.org/x/sys/unix"

// gettid is the calling thread's id, as the kernel (and its probes) know it.
func gettid() int { return unix.Gettid() }
