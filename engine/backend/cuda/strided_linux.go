//go:build cgo

package cuda

/*
#include "cuda_shim.h"
*/
import "C"

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Pitched slices of device memory in one driver call each
// (cuMemcpy2DAsync, cuMemsetD2D*Async) instead of one per row; a driver
// without them is served a row at a time.

var _ backend.StridedStream = (*stream)(nil)

func (s *stream) CopyDtoD2D(dst backend.DevicePtr, dstPitch uint64, src backend.DevicePtr, srcPitch uint64, width, rows uint64) error {
	return s.run(func() error {
		r := C.gf_memcpy2d_dtod(C.gf_handle(s.d.ctx), C.uint64_t(dst), C.size_t(dstPitch), C.uint64_t(src), C.size_t(srcPitch), C.size_t(width), C.size_t(rows), C.gf_handle(s.h))
		if r != C.GF_MISSING {
			return check(res(r), "cuMemcpy2DAsync(%#x, pitch %d, %#x, pitch %d, %d x %d)", dst, dstPitch, src, srcPitch, width, rows)
		}
		for i := range rows {
			if err := check(memcpyDtoD(s.d.ctx, dst+i*dstPitch, src+i*srcPitch, width, s.h), "cuMemcpyDtoDAsync of row %d", i); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *stream) Memset2D(dst backend.DevicePtr, pitch uint64, value uint32, elemSize int, count, rows uint64) error {
	switch elemSize {
	case 1, 2, 4:
	default:
		return api.Errorf(api.ErrInvalidValue, "memset element size %d", elemSize)
	}
	if dst%uint64(elemSize) != 0 || pitch%uint64(elemSize) != 0 {
		return api.Errorf(api.ErrInvalidValue, "memset of %d-byte elements at %#x, pitch %d: unaligned", elemSize, dst, pitch)
	}
	return s.run(func() error {
		r := C.gf_memset2d(C.gf_handle(s.d.ctx), C.uint64_t(dst), C.size_t(pitch), C.uint(value), C.int(elemSize), C.size_t(count), C.size_t(rows), C.gf_handle(s.h))
		if r != C.GF_MISSING {
			return check(res(r), "cuMemsetD2D%dAsync(%#x, pitch %d, %d x %d)", 8*elemSize, dst, pitch, count, rows)
		}
		for i := range rows {
			if err := check(memset(s.d.ctx, dst+i*pitch, value, elemSize, count, s.h), "cuMemsetD%dAsync of row %d", 8*elemSize, i); err != nil {
				return err
			}
		}
		return nil
	})
}
