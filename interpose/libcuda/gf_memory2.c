//go:build linux && cgo

// gf_memory2.c: the driver API entry points of the pitched and 2D/3D
// memory family (cuMemAllocPitch, cuMemcpy2D/3D and async forms,
// cuMemsetD2D*), of stream-ordered allocation (cuMemAllocAsync,
// cuMemFreeAsync, the default memory pool) and of virtual memory
// management (cuMemAddressReserve, cuMemCreate, cuMemMap and the rest).
// 2D copies enter Go as the 3D copy of one slice.

#include <stdint.h>

#include "_cgo_export.h"
#include "gf.h"
#include "gf_memory2.h"

#define GF_API(name, params, expr) \
	GF_EXPORT CUresult name params { GF_CALL(#name, expr); }
#define GF_API2(name, twin, params, expr) \
	GF_API(name, params, expr)            \
	GF_API(twin, params, expr)
#define H(x) ((uintptr_t)(x))

// ---- pitched and 2D/3D memory ----

GF_API(cuMemAllocPitch_v2, (CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem),
       gfgo_memAllocPitch(GF_CUR_CTX, GF_CUR_DEV, dptr, pitch, width, height, elem))

// copy2d enters Go with a 2D copy as a 3D one; aligned asks for the pitch
// limits of cuMemcpy2D (cuMemcpy2DUnaligned has none).
static CUresult copy2d(const CUDA_MEMCPY2D *c, uintptr_t stream, int async, int aligned) {
	if (!c)
		return GF_ERR_INVALID_VALUE;
	CUDA_MEMCPY3D c3;
	gf_copy2d_as_3d(c, &c3);
	return gfgo_memcpy3D(GF_CUR_DEV, &c3, stream, async, aligned);
}

GF_API2(cuMemcpy2D_v2, cuMemcpy2D_v2_ptds, (const CUDA_MEMCPY2D *c), copy2d(c, 0, 0, 1))
GF_API2(cuMemcpy2DUnaligned_v2, cuMemcpy2DUnaligned_v2_ptds, (const CUDA_MEMCPY2D *c), copy2d(c, 0, 0, 0))
GF_API2(cuMemcpy2DAsync_v2, cuMemcpy2DAsync_v2_ptsz, (const CUDA_MEMCPY2D *c, CUstream s), copy2d(c, H(s), 1, 1))
GF_API2(cuMemcpy3D_v2, cuMemcpy3D_v2_ptds, (const CUDA_MEMCPY3D *c), gfgo_memcpy3D(GF_CUR_DEV, (CUDA_MEMCPY3D *)c, 0, 0, 1))
GF_API2(cuMemcpy3DAsync_v2, cuMemcpy3DAsync_v2_ptsz, (const CUDA_MEMCPY3D *c, CUstream s),
        gfgo_memcpy3D(GF_CUR_DEV, (CUDA_MEMCPY3D *)c, H(s), 1, 1))

// Widths of cuMemsetD2D* are in elements; pitches in bytes.
GF_API2(cuMemsetD2D8_v2, cuMemsetD2D8_v2_ptds, (CUdeviceptr dst, size_t pitch, unsigned char v, size_t w, size_t h),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 1, w, h, 0, 0))
GF_API2(cuMemsetD2D16_v2, cuMemsetD2D16_v2_ptds, (CUdeviceptr dst, size_t pitch, unsigned short v, size_t w, size_t h),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 2, w, h, 0, 0))
GF_API2(cuMemsetD2D32_v2, cuMemsetD2D32_v2_ptds, (CUdeviceptr dst, size_t pitch, unsigned int v, size_t w, size_t h),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 4, w, h, 0, 0))
GF_API2(cuMemsetD2D8Async, cuMemsetD2D8Async_ptsz,
        (CUdeviceptr dst, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 1, w, h, H(s), 1))
GF_API2(cuMemsetD2D16Async, cuMemsetD2D16Async_ptsz,
        (CUdeviceptr dst, size_t pitch, unsigned short v, size_t w, size_t h, CUstream s),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 2, w, h, H(s), 1))
GF_API2(cuMemsetD2D32Async, cuMemsetD2D32Async_ptsz,
        (CUdeviceptr dst, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s),
        gfgo_memset2D(GF_CUR_DEV, dst, pitch, v, 4, w, h, H(s), 1))

// ---- stream-ordered allocation ----

GF_API2(cuMemAllocAsync, cuMemAllocAsync_ptsz, (CUdeviceptr *dptr, size_t size, CUstream s),
        gfgo_memAllocAsync(GF_CUR_CTX, GF_CUR_DEV, dptr, size, 0, H(s)))
GF_API2(cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync_ptsz,
        (CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s),
        gfgo_memAllocAsync(GF_CUR_CTX, GF_CUR_DEV, dptr, size, H(pool) ? H(pool) : ~(uintptr_t)0, H(s)))
GF_API2(cuMemFreeAsync, cuMemFreeAsync_ptsz, (CUdeviceptr dptr, CUstream s), gfgo_memFreeAsync(GF_CUR_DEV, dptr, H(s)))
GF_API(cuDeviceGetDefaultMemPool, (CUmemoryPool *pool, CUdevice dev), gfgo_devicePool(dev, (uintptr_t *)pool, 0))
GF_API(cuDeviceGetMemPool, (CUmemoryPool *pool, CUdevice dev), gfgo_devicePool(dev, (uintptr_t *)pool, 1))
GF_API(cuDeviceSetMemPool, (CUdevice dev, CUmemoryPool pool), gfgo_deviceSetPool(dev, H(pool)))
GF_API(cuMemPoolGetAttribute, (CUmemoryPool pool, int attr, void *value), gfgo_poolAttribute(H(pool), attr, value, 0))
GF_API(cuMemPoolSetAttribute, (CUmemoryPool pool, int attr, void *value), gfgo_poolAttribute(H(pool), attr, value, 1))
GF_API(cuMemPoolTrimTo, (CUmemoryPool pool, size_t keep), gfgo_poolTrim(H(pool), keep))
GF_API(cuMemPoolCreate, (CUmemoryPool *pool, const CUmemPoolProps *props),
       gfgo_poolCreate((uintptr_t *)pool, (CUmemPoolProps *)props))
GF_API(cuMemPoolDestroy, (CUmemoryPool pool), gfgo_poolDestroy(H(pool)))

// ---- virtual memory management ----

GF_API(cuMemAddressReserve, (CUdeviceptr *ptr, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags),
       gfgo_memAddressReserve(GF_CUR_DEV, ptr, size, align, addr, flags))
GF_API(cuMemAddressFree, (CUdeviceptr ptr, size_t size), gfgo_memAddressFree(ptr, size))
GF_API(cuMemCreate, (CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags),
       gfgo_memCreate(h, size, (CUmemAllocationProp *)prop, flags))
GF_API(cuMemRelease, (CUmemGenericAllocationHandle h), gfgo_memRelease(h))
GF_API(cuMemMap, (CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle h, unsigned long long flags),
       gfgo_memMap(ptr, size, offset, h, flags))
GF_API(cuMemUnmap, (CUdeviceptr ptr, size_t size), gfgo_memUnmap(ptr, size))
GF_API(cuMemSetAccess, (CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count),
       gfgo_memSetAccess(ptr, size, (CUmemAccessDesc *)desc, count))
GF_API(cuMemGetAccess, (unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr),
       gfgo_memGetAccess(flags, (CUmemLocation *)location, ptr))
GF_API(cuMemGetAllocationGranularity, (size_t *granularity, const CUmemAllocationProp *prop, int option),
       gfgo_memGranularity(granularity, (CUmemAllocationProp *)prop, option))
GF_API(cuMemGetAllocationPropertiesFromHandle, (CUmemAllocationProp *prop, CUmemGenericAllocationHandle h),
       gfgo_memHandleProps(prop, h))
GF_API(cuMemRetainAllocationHandle, (CUmemGenericAllocationHandle *h, void *addr), gfgo_memRetainHandle(h, addr))

// ---- peers ----

GF_API(cuCtxEnablePeerAccess, (CUcontext peer, unsigned int flags),
       gfgo_peerAccess(GF_CUR_DEV, gf_ctx_dev(H(peer)), flags, 1))
GF_API(cuCtxDisablePeerAccess, (CUcontext peer), gfgo_peerAccess(GF_CUR_DEV, gf_ctx_dev(H(peer)), 0, 0))
GF_API2(cuMemcpyPeer, cuMemcpyPeer_ptds, (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n),
        gfgo_memcpyPeer(GF_CUR_DEV, dst, gf_ctx_dev(H(dctx)), src, gf_ctx_dev(H(sctx)), n, 0, 0))
GF_API2(cuMemcpyPeerAsync, cuMemcpyPeerAsync_ptsz,
        (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream s),
        gfgo_memcpyPeer(GF_CUR_DEV, dst, gf_ctx_dev(H(dctx)), src, gf_ctx_dev(H(sctx)), n, H(s), 1))

// ---- IPC ----

GF_API(cuIpcGetMemHandle, (CUipcMemHandle *handle, CUdeviceptr dptr), gfgo_ipcGetMemHandle(handle, dptr))
GF_API(cuIpcOpenMemHandle, (CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags),
       gfgo_ipcOpenMemHandle(pdptr, &handle, flags))
GF_API(cuIpcOpenMemHandle_v2, (CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags),
       gfgo_ipcOpenMemHandle(pdptr, &handle, flags))
GF_API(cuIpcCloseMemHandle, (CUdeviceptr dptr), gfgo_ipcCloseMemHandle(dptr))
GF_API(cuIpcGetEventHandle, (CUipcEventHandle *handle, CUevent event), gfgo_ipcGetEventHandle(handle, H(event)))
GF_API(cuIpcOpenEventHandle, (CUevent *event, CUipcEventHandle handle), gfgo_ipcOpenEventHandle((uintptr_t *)event, &handle))
