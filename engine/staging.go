package engine

import (
	"math/bits"
	"sync"
)

// Staging buffers hold host-to-device payloads (and module images, and
// device-to-host data handed over in pieces) between the connection and
// the stream that copies them, by power-of-two size class from 4 KiB.
//
// A payload is announced at its full size before its bytes arrive, and a
// tenant may announce 256 MiB and send one byte. The buffer it is read
// into must then cost what has arrived, not what was announced: the
// transport writes into it as bytes come, so pages untouched until then
// cost nothing, but memory the Go heap hands out again is zeroed first,
// which touches all of it. So buffers of a megabyte and more are mapped
// fresh from the kernel (bigBuffer, on Linux: in huge pages where it gives
// them, so what was sent is rounded up to 2 MiB), and kept for reuse only
// a few per class: a stalled payload may hold one of those, touched, and
// otherwise holds only what it was sent. Smaller ones come from the heap,
// pooled.
const (
	minStagingShift = 12
	bigStagingShift = 20 // from here on, mapped and kept a few per class
	maxStagingShift = 26 // larger ones are not kept at all
	keptPerClass    = 2
)

var (
	stagingPools [bigStagingShift]sync.Pool

	keptMu sync.Mutex
	kept   [maxStagingShift + 1][][]byte
)

func stagingClass(n int) int {
	if n <= 1<<minStagingShift {
		return minStagingShift
	}
	return bits.Len(uint(n - 1))
}

func getStaging(n int) []byte {
	c := stagingClass(n)
	switch {
	case c < bigStagingShift:
		if p, ok := stagingPools[c].Get().(*[]byte); ok {
			return (*p)[:n]
		}
		return make([]byte, n, 1<<c)
	case c <= maxStagingShift:
		keptMu.Lock()
		if k := kept[c]; len(k) > 0 {
			b := k[len(k)-1]
			kept[c] = k[:len(k)-1]
			keptMu.Unlock()
			return b[:n]
		}
		keptMu.Unlock()
		return bigBuffer(n, 1<<c)
	default:
		return bigBuffer(n, n)
	}
}

// putStaging gives back a buffer of getStaging's, which nothing may use
// after.
func putStaging(b []byte) {
	c := stagingClass(cap(b))
	switch {
	case c < bigStagingShift:
		if cap(b) == 1<<c {
			b = b[:cap(b)]
			stagingPools[c].Put(&b)
		}
	case c <= maxStagingShift && cap(b) == 1<<c:
		keptMu.Lock()
		if len(kept[c]) < keptPerClass {
			kept[c] = append(kept[c], b[:cap(b)])
			keptMu.Unlock()
			return
		}
		keptMu.Unlock()
		freeBigBuffer(b)
	default:
		freeBigBuffer(b)
	}
}
