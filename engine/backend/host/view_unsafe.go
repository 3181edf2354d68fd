package host

import "unsafe"

// This file is the package's use of unsafe (with vmm_linux.go's mmap at
// fixed addresses, which says why there): built-in kernels view
// device bytes as the element types their CUDA signatures name.
//
// Why it is safe: every view is made from a slice of the arena, which is
// page-aligned (mmap), after span has checked that the device address is
// aligned to the element size; the length is whole elements of the slice,
// so the view never reaches past it; and the arena outlives every kernel
// (the engine frees memory only after the streams that use it are done).

func f32s(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}
