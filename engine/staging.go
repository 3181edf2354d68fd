package engine

import (
	"math/bits"
	"sync"
)

// Staging buffers hold host-to-device payloads between the connection and
// the stream that copies them. They are pooled by power-of-two size class,
// from 4 KiB to 64 MiB; larger ones are not kept.
const (
	minStagingShift = 12
	maxStagingShift = 26
)

var stagingPools [maxStagingShift + 1]sync.Pool

func stagingClass(n int) int {
	if n <= 1<<minStagingShift {
		return minStagingShift
	}
	return bits.Len(uint(n - 1))
}

func getStaging(n int) []byte {
	c := stagingClass(n)
	if c > maxStagingShift {
		return make([]byte, n)
	}
	if p, ok := stagingPools[c].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<c)
}

func putStaging(b []byte) {
	c := stagingClass(cap(b))
	if c > maxStagingShift || cap(b) != 1<<c {
		return
	}
	b = b[:cap(b)]
	stagingPools[c].Put(&b)
}
