package rdma

import "unsafe"

// addrOf is the address of b's first byte, the key the registration cache
// files regions under. It is the only use of unsafe in the package outside
// the cgo layer: the address is compared and subtracted, never turned back
// into a pointer, so it cannot outlive or misname what b points at. A
// region the cache holds keeps its slice, so Go memory cannot be freed
// and its address reused while registered.
func addrOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}
