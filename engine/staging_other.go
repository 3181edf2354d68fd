//go:build !linux

package engine

// bigBuffer comes from the heap where there is no mmap to call.
func bigBuffer(n, size int) []byte { return make([]byte, n, size) }

func freeBigBuffer([]byte) {}
