//go:build !linux

package host

// On other systems the arena is ordinary Go memory: it is committed up front,
// so keep --device-memory small there.
func mapArena(size uint64) ([]byte, error) { return make([]byte, size), nil }

func unmapArena([]byte) error { return nil }

// release cannot drop pages of Go memory: the caller zeroes them instead.
func release([]byte) bool { return false }
