package cuda

import (
	"github.com/gpufabric/gpufabric/engine/api"
)

// maxParams bounds the parameter-info loop: parameters fit in 32764 bytes
// (CUDA 12.1+), so no kernel has more one-byte parameters than that, and a
// driver that never says "no more" must not hang the loop.
const maxParams = 32764

// maxParamBytes is the largest parameter buffer CUDA accepts (12.1+ on
// Volta and later; older drivers and GPUs stop at 4 KiB and say so).
const maxParamBytes = 32764

// missing is what a driver wrapper returns when the driver lacks the
// optional symbol behind it (the shim's GF_MISSING, -1, as a CUresult).
const missing = api.Result(0xffffffff)

// paramQuery asks the driver for parameter i's offset and size
// (cuFuncGetParamInfo).
type paramQuery func(i int) (offset, size uint64, r api.Result)

// paramLayout asks for parameters 0, 1, ... until the driver answers
// CUDA_ERROR_INVALID_VALUE, which is how cuFuncGetParamInfo says "no
// parameter at this index". A kernel without parameters gets an empty,
// non-nil layout. Any other answer (the symbol missing from an older
// driver, an unexpected error, an implausible layout) gives nil: "layout
// unknown", which callers must not confuse with "no parameters".
func paramLayout(query paramQuery) []api.Param {
	params := []api.Param{}
	var end uint64
	for i := 0; i < maxParams; i++ {
		off, size, r := query(i)
		switch {
		case r == api.ErrInvalidValue:
			return params
		case r != api.Success:
			return nil
		case size == 0 || off < end || size > maxParamBytes || off > maxParamBytes-size:
			// Parameters come in order and do not overlap; anything else
			// is not a layout a client could pack. (Compared without
			// adding: off+size could wrap and pass.)
			return nil
		}
		params = append(params, api.Param{Offset: uint32(off), Size: uint32(size)})
		end = off + size
	}
	return nil
}

// checkParamBuffer checks a launch's packed buffer against a known layout:
// it must hold the last parameter. A nil layout (unknown) accepts any
// buffer up to the driver's limit, and the driver has the last word.
func checkParamBuffer(name string, layout []api.Param, buf []byte) error {
	if len(buf) > maxParamBytes {
		return api.Errorf(api.ErrInvalidValue, "%s: %d bytes of parameters exceed CUDA's %d", name, len(buf), maxParamBytes)
	}
	if n := len(layout); n > 0 {
		last := layout[n-1]
		if need := uint64(last.Offset) + uint64(last.Size); uint64(len(buf)) < need {
			return api.Errorf(api.ErrInvalidValue, "%s: %d bytes of parameters, the kernel needs %d", name, len(buf), need)
		}
	}
	return nil
}

// checkGeometry rejects what no GPU accepts before it costs a driver call;
// the device's own limits are the driver's to enforce.
func checkGeometry(name string, grid, block [3]uint32) error {
	for i := range 3 {
		if grid[i] == 0 || block[i] == 0 {
			return api.Errorf(api.ErrInvalidValue, "%s: grid %v, block %v has a zero dimension", name, grid, block)
		}
	}
	return nil
}
