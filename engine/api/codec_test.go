package api

import (
	"testing"
	"unsafe"
)

// TestCacheLineSized: encoders and decoders are recycled between goroutines
// of a client and a server in one process; each must fill a cache line so
// that two never share one (see encoders).
func TestCacheLineSized(t *testing.T) {
	if e, d := unsafe.Sizeof(Encoder{}), unsafe.Sizeof(Decoder{}); e != 64 || d != 64 {
		t.Errorf("Encoder is %d bytes and Decoder %d, want 64", e, d)
	}
}
