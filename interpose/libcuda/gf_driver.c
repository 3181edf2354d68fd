//go:build linux && cgo

// gf_driver.c: the driver API entry points that reach the GPU server. Each
// checks the library's state in C (see GF_CALL), takes the calling thread's
// current context from thread-local storage, and enters Go (gfgo_*) with
// the context, its device and the call's arguments.

#include <stdint.h>
#include <stdlib.h>

#include "_cgo_export.h"
#include "gf.h"

// GF_API defines an exported entry point; GF_API2 defines one and its
// per-thread default stream twin (_ptds/_ptsz) with the same body: the
// per-thread stream is served by the device's default stream.
#define GF_API(name, params, expr) \
	GF_EXPORT CUresult name params { GF_CALL(#name, expr); }
#define GF_API2(name, twin, params, expr) \
	GF_API(name, params, expr)            \
	GF_API(twin, params, expr)

#define H(x) ((uintptr_t)(x))
#define HP(x) ((uintptr_t *)(x))
#define DP(x) ((CUdeviceptr)(uintptr_t)(x))

// ---- devices ----

GF_API(cuDeviceGetName, (char *name, int len, CUdevice dev), gfgo_deviceName(name, len, dev))
GF_API(cuDeviceGetUuid, (CUuuid *uuid, CUdevice dev), gfgo_deviceUUID(uuid, dev))
GF_API(cuDeviceGetUuid_v2, (CUuuid *uuid, CUdevice dev), gfgo_deviceUUID(uuid, dev))
GF_API(cuDeviceTotalMem, (unsigned int *bytes, CUdevice dev), gfgo_deviceTotalMem(NULL, bytes, dev))
GF_API(cuDeviceTotalMem_v2, (size_t *bytes, CUdevice dev), gfgo_deviceTotalMem(bytes, NULL, dev))
GF_API(cuDeviceGetAttribute, (int *pi, int attrib, CUdevice dev), gfgo_deviceAttribute(pi, attrib, dev))
GF_API(cuDeviceGetPCIBusId, (char *pciBusId, int len, CUdevice dev), gfgo_devicePCIBusId(pciBusId, len, dev))
GF_API(cuDeviceGetByPCIBusId, (CUdevice *dev, const char *pciBusId), gfgo_deviceByPCIBusId(dev, (char *)pciBusId))

static CUresult compute_capability(int *major, int *minor, CUdevice dev) {
	if (!major || !minor)
		return GF_ERR_INVALID_VALUE;
	CUresult r = gfgo_deviceAttribute(major, 75, dev); // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	return r ? r : gfgo_deviceAttribute(minor, 76, dev);
}

GF_API(cuDeviceComputeCapability, (int *major, int *minor, CUdevice dev), compute_capability(major, minor, dev))

// Devices of a session are devices of one server: peers (peer.go).
GF_API(cuDeviceCanAccessPeer, (int *canAccessPeer, CUdevice dev, CUdevice peerDev),
       gfgo_canAccessPeer(canAccessPeer, dev, peerDev))

// ---- memory ----

GF_API(cuMemGetInfo_v2, (size_t *free, size_t *total), gfgo_memGetInfo(GF_CUR_DEV, free, total, NULL, NULL))
GF_API(cuMemGetInfo, (unsigned int *free, unsigned int *total), gfgo_memGetInfo(GF_CUR_DEV, NULL, NULL, free, total))
GF_API(cuMemAlloc_v2, (CUdeviceptr *dptr, size_t bytesize), gfgo_memAlloc(GF_CUR_CTX, GF_CUR_DEV, dptr, bytesize))
GF_API(cuMemFree_v2, (CUdeviceptr dptr), gfgo_memFree(dptr))
GF_API(cuMemGetAddressRange_v2, (CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr),
       gfgo_memGetAddressRange(pbase, psize, dptr))

GF_API(cuMemAllocHost_v2, (void **pp, size_t bytesize), gfgo_memHostAlloc(GF_CUR_CTX, GF_CUR_DEV, pp, bytesize, 0))
GF_API(cuMemAllocHost, (void **pp, unsigned int bytesize), gfgo_memHostAlloc(GF_CUR_CTX, GF_CUR_DEV, pp, bytesize, 0))
GF_API(cuMemHostAlloc, (void **pp, size_t bytesize, unsigned int flags),
       gfgo_memHostAlloc(GF_CUR_CTX, GF_CUR_DEV, pp, bytesize, flags))
GF_API(cuMemFreeHost, (void *p), gfgo_memFreeHost(p))
GF_API(cuMemHostRegister, (void *p, size_t bytesize, unsigned int flags),
       gfgo_memHostRegister(GF_CUR_CTX, GF_CUR_DEV, p, bytesize, flags))
GF_API(cuMemHostRegister_v2, (void *p, size_t bytesize, unsigned int flags),
       gfgo_memHostRegister(GF_CUR_CTX, GF_CUR_DEV, p, bytesize, flags))
GF_API(cuMemHostUnregister, (void *p), gfgo_memHostUnregister(p))
GF_API(cuMemHostGetFlags, (unsigned int *pFlags, void *p), gfgo_memHostGetFlags(pFlags, p))

// Copies: direction 0 lets unified addressing decide (cuMemcpy), 1 HtoD,
// 2 DtoH, 3 DtoD; the last argument says asynchronous.
GF_API2(cuMemcpyHtoD_v2, cuMemcpyHtoD_v2_ptds, (CUdeviceptr dst, const void *src, size_t n),
        gfgo_memcpy(GF_CUR_DEV, dst, DP(src), n, 1, 0, 0))
GF_API2(cuMemcpyDtoH_v2, cuMemcpyDtoH_v2_ptds, (void *dst, CUdeviceptr src, size_t n),
        gfgo_memcpy(GF_CUR_DEV, DP(dst), src, n, 2, 0, 0))
GF_API2(cuMemcpyDtoD_v2, cuMemcpyDtoD_v2_ptds, (CUdeviceptr dst, CUdeviceptr src, size_t n),
        gfgo_memcpy(GF_CUR_DEV, dst, src, n, 3, 0, 0))
GF_API2(cuMemcpy, cuMemcpy_ptds, (CUdeviceptr dst, CUdeviceptr src, size_t n), gfgo_memcpy(GF_CUR_DEV, dst, src, n, 0, 0, 0))
GF_API2(cuMemcpyHtoDAsync_v2, cuMemcpyHtoDAsync_v2_ptsz, (CUdeviceptr dst, const void *src, size_t n, CUstream s),
        gfgo_memcpy(GF_CUR_DEV, dst, DP(src), n, 1, H(s), 1))
GF_API2(cuMemcpyDtoHAsync_v2, cuMemcpyDtoHAsync_v2_ptsz, (void *dst, CUdeviceptr src, size_t n, CUstream s),
        gfgo_memcpy(GF_CUR_DEV, DP(dst), src, n, 2, H(s), 1))
GF_API2(cuMemcpyDtoDAsync_v2, cuMemcpyDtoDAsync_v2_ptsz, (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s),
        gfgo_memcpy(GF_CUR_DEV, dst, src, n, 3, H(s), 1))
GF_API2(cuMemcpyAsync, cuMemcpyAsync_ptsz, (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s),
        gfgo_memcpy(GF_CUR_DEV, dst, src, n, 0, H(s), 1))

GF_API2(cuMemsetD8_v2, cuMemsetD8_v2_ptds, (CUdeviceptr dst, unsigned char v, size_t n),
        gfgo_memset(GF_CUR_DEV, dst, v, 1, n, 0, 0))
GF_API2(cuMemsetD16_v2, cuMemsetD16_v2_ptds, (CUdeviceptr dst, unsigned short v, size_t n),
        gfgo_memset(GF_CUR_DEV, dst, v, 2, n, 0, 0))
GF_API2(cuMemsetD32_v2, cuMemsetD32_v2_ptds, (CUdeviceptr dst, unsigned int v, size_t n),
        gfgo_memset(GF_CUR_DEV, dst, v, 4, n, 0, 0))
GF_API2(cuMemsetD8Async, cuMemsetD8Async_ptsz, (CUdeviceptr dst, unsigned char v, size_t n, CUstream s),
        gfgo_memset(GF_CUR_DEV, dst, v, 1, n, H(s), 1))
GF_API2(cuMemsetD16Async, cuMemsetD16Async_ptsz, (CUdeviceptr dst, unsigned short v, size_t n, CUstream s),
        gfgo_memset(GF_CUR_DEV, dst, v, 2, n, H(s), 1))
GF_API2(cuMemsetD32Async, cuMemsetD32Async_ptsz, (CUdeviceptr dst, unsigned int v, size_t n, CUstream s),
        gfgo_memset(GF_CUR_DEV, dst, v, 4, n, H(s), 1))

GF_API(cuPointerGetAttribute, (void *data, int attribute, CUdeviceptr ptr), gfgo_pointerGetAttribute(data, attribute, ptr))
GF_API(cuPointerGetAttributes, (unsigned int n, int *attributes, void **data, CUdeviceptr ptr),
       gfgo_pointerGetAttributes(n, attributes, data, ptr))

// ---- modules and functions ----

GF_API(cuModuleLoad, (CUmodule *module, const char *fname), gfgo_moduleLoadFile(GF_CUR_DEV, HP(module), (char *)fname))
GF_API(cuModuleLoadData, (CUmodule *module, const void *image),
       gfgo_moduleLoad(GF_CUR_CTX, GF_CUR_DEV, HP(module), (void *)image, 0, NULL, NULL))
GF_API(cuModuleLoadDataEx,
       (CUmodule *module, const void *image, unsigned int numOptions, int *options, void **optionValues),
       gfgo_moduleLoad(GF_CUR_CTX, GF_CUR_DEV, HP(module), (void *)image, numOptions, options, optionValues))
GF_API(cuModuleLoadFatBinary, (CUmodule *module, const void *fatCubin),
       gfgo_moduleLoad(GF_CUR_CTX, GF_CUR_DEV, HP(module), (void *)fatCubin, 0, NULL, NULL))
GF_API(cuModuleUnload, (CUmodule hmod), gfgo_moduleUnload(H(hmod)))
GF_API(cuModuleGetFunction, (CUfunction *hfunc, CUmodule hmod, const char *name),
       gfgo_moduleGetFunction(HP(hfunc), H(hmod), (char *)name))
GF_API(cuModuleGetGlobal_v2, (CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name),
       gfgo_moduleGetGlobal(dptr, bytes, H(hmod), (char *)name))

GF_API(cuFuncGetModule, (CUmodule *hmod, CUfunction hfunc), gfgo_funcInfo(H(hfunc), 0, 0, hmod, NULL))
GF_API(cuFuncGetName, (const char **name, CUfunction hfunc), gfgo_funcInfo(H(hfunc), 1, 0, (void *)name, NULL))
GF_API(cuFuncGetParamInfo, (CUfunction func, size_t paramIndex, size_t *paramOffset, size_t *paramSize),
       gfgo_funcInfo(H(func), 2, (int)paramIndex, paramOffset, paramSize))
GF_API(cuFuncGetAttribute, (int *pi, int attrib, CUfunction hfunc), gfgo_funcInfo(H(hfunc), 3, attrib, pi, NULL))
GF_API(cuFuncSetAttribute, (CUfunction hfunc, int attrib, int value),
       gfgo_funcInfo(H(hfunc), 4, attrib, (void *)(intptr_t)value, NULL))
GF_API(cuFuncIsLoaded, (int *state, CUfunction function), gfgo_funcInfo(H(function), 5, 0, state, NULL))
GF_API(cuFuncLoad, (CUfunction function), gfgo_funcInfo(H(function), 5, 0, NULL, NULL))

// The cache and shared-memory preferences are hints the server's device
// decides for itself; a valid function accepts them.
GF_API(cuFuncSetCacheConfig, (CUfunction hfunc, int config), ((void)config, gfgo_funcInfo(H(hfunc), 5, 0, NULL, NULL)))
GF_API(cuFuncSetSharedMemConfig, (CUfunction hfunc, int config),
       ((void)config, gfgo_funcInfo(H(hfunc), 5, 0, NULL, NULL)))

// ---- libraries and kernels (context-independent loading, CUDA 12) ----

// JIT and library options are the server's to apply; none changes what the
// interposer does.
#define GF_IGNORE_OPTIONS                                                                            \
	((void)jitOptions, (void)jitOptionsValues, (void)numJitOptions, (void)libraryOptions,          \
	 (void)libraryOptionValues, (void)numLibraryOptions)

GF_API(cuLibraryLoadData,
       (CUlibrary *library, const void *code, int *jitOptions, void **jitOptionsValues, unsigned int numJitOptions,
        int *libraryOptions, void **libraryOptionValues, unsigned int numLibraryOptions),
       (GF_IGNORE_OPTIONS, gfgo_libraryLoad(GF_CUR_DEV, HP(library), (void *)code, NULL)))
GF_API(cuLibraryLoadFromFile,
       (CUlibrary *library, const char *fileName, int *jitOptions, void **jitOptionsValues, unsigned int numJitOptions,
        int *libraryOptions, void **libraryOptionValues, unsigned int numLibraryOptions),
       (GF_IGNORE_OPTIONS, gfgo_libraryLoad(GF_CUR_DEV, HP(library), NULL, (char *)fileName)))
GF_API(cuLibraryUnload, (CUlibrary library), gfgo_libraryUnload(H(library)))
GF_API(cuLibraryGetKernel, (CUkernel *pKernel, CUlibrary library, const char *name),
       gfgo_libraryGetKernel(HP(pKernel), H(library), (char *)name, GF_CUR_DEV))
GF_API(cuLibraryGetModule, (CUmodule *pMod, CUlibrary library), gfgo_libraryGetModule(HP(pMod), H(library), GF_CUR_DEV))
GF_API(cuLibraryGetGlobal, (CUdeviceptr *dptr, size_t *bytes, CUlibrary library, const char *name),
       gfgo_libraryGetGlobal(dptr, bytes, H(library), (char *)name, GF_CUR_DEV))
GF_API(cuKernelGetFunction, (CUfunction *pFunc, CUkernel kernel), gfgo_kernelInfo(H(kernel), 0, 0, pFunc, NULL, GF_CUR_DEV))
GF_API(cuKernelGetName, (const char **name, CUkernel kernel),
       gfgo_kernelInfo(H(kernel), 1, 0, (void *)name, NULL, GF_CUR_DEV))
GF_API(cuKernelGetParamInfo, (CUkernel kernel, size_t paramIndex, size_t *paramOffset, size_t *paramSize),
       gfgo_kernelInfo(H(kernel), 2, (int)paramIndex, paramOffset, paramSize, GF_CUR_DEV))
GF_API(cuKernelGetLibrary, (CUlibrary *pLib, CUkernel kernel), gfgo_kernelInfo(H(kernel), 3, 0, pLib, NULL, GF_CUR_DEV))
GF_API(cuKernelGetAttribute, (int *pi, int attrib, CUkernel kernel, CUdevice dev),
       gfgo_kernelInfo(H(kernel), 4, attrib, pi, NULL, dev))
GF_API(cuKernelSetAttribute, (int attrib, int val, CUkernel kernel, CUdevice dev),
       gfgo_kernelInfo(H(kernel), 5, attrib, (void *)(intptr_t)val, NULL, dev))

static CUresult kernel_accept(CUkernel kernel) {
	CUlibrary lib;
	return gfgo_kernelInfo(H(kernel), 3, 0, &lib, NULL, GF_CUR_DEV);
}

GF_API(cuKernelSetCacheConfig, (CUkernel kernel, int config, CUdevice dev), ((void)config, (void)dev, kernel_accept(kernel)))

// ---- launches ----

GF_API2(cuLaunchKernel, cuLaunchKernel_ptsz,
        (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
         unsigned int bz, unsigned int sharedMemBytes, CUstream s, void **kernelParams, void **extra),
        gfgo_launch(H(f), gx, gy, gz, bx, by, bz, sharedMemBytes, H(s), GF_CUR_DEV, kernelParams, extra))

// Launch attributes (cluster shape, cooperative, priority...) are hints the
// remote device's scheduler decides; the launch itself is what matters.
static CUresult launch_ex(const CUlaunchConfig *c, CUfunction f, void **params, void **extra) {
	if (!c)
		return GF_ERR_INVALID_VALUE;
	return gfgo_launch(H(f), c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ,
	                   c->sharedMemBytes, H(c->hStream), GF_CUR_DEV, params, extra);
}

GF_API2(cuLaunchKernelEx, cuLaunchKernelEx_ptsz,
        (const CUlaunchConfig *config, CUfunction f, void **kernelParams, void **extra),
        launch_ex(config, f, kernelParams, extra))

GF_API2(cuLaunchCooperativeKernel, cuLaunchCooperativeKernel_ptsz,
        (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
         unsigned int bz, unsigned int sharedMemBytes, CUstream s, void **kernelParams),
        gfgo_launch(H(f), gx, gy, gz, bx, by, bz, sharedMemBytes, H(s), GF_CUR_DEV, kernelParams, NULL))

// ---- streams ----

GF_API(cuStreamCreate, (CUstream *phStream, unsigned int flags),
       gfgo_streamCreate(GF_CUR_CTX, GF_CUR_DEV, HP(phStream), flags, 0))
GF_API(cuStreamCreateWithPriority, (CUstream *phStream, unsigned int flags, int priority),
       gfgo_streamCreate(GF_CUR_CTX, GF_CUR_DEV, HP(phStream), flags, priority))
GF_API(cuStreamDestroy, (CUstream s), gfgo_streamDestroy(H(s)))
GF_API(cuStreamDestroy_v2, (CUstream s), gfgo_streamDestroy(H(s)))
GF_API2(cuStreamSynchronize, cuStreamSynchronize_ptsz, (CUstream s), gfgo_streamSynchronize(H(s), GF_CUR_DEV))
GF_API2(cuStreamQuery, cuStreamQuery_ptsz, (CUstream s), gfgo_streamQuery(H(s), GF_CUR_DEV))
GF_API2(cuStreamWaitEvent, cuStreamWaitEvent_ptsz, (CUstream s, CUevent e, unsigned int flags),
        ((void)flags, gfgo_streamWaitEvent(H(s), GF_CUR_DEV, H(e))))
GF_API2(cuStreamGetPriority, cuStreamGetPriority_ptsz, (CUstream s, int *priority),
        gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 0, priority))
GF_API2(cuStreamGetFlags, cuStreamGetFlags_ptsz, (CUstream s, unsigned int *flags),
        gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 1, flags))
GF_API2(cuStreamGetCtx, cuStreamGetCtx_ptsz, (CUstream s, CUcontext *pctx),
        gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 2, pctx))
GF_API2(cuStreamGetId, cuStreamGetId_ptsz, (CUstream s, unsigned long long *id),
        gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 3, id))
GF_API2(cuStreamGetDevice, cuStreamGetDevice_ptsz, (CUstream s, CUdevice *dev),
        gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 4, dev))

static CUresult stream_get_ctx_v2(CUstream s, CUcontext *pctx, CUgreenCtx *pgreen) {
	if (pgreen)
		*pgreen = NULL; // no green contexts
	return gfgo_streamInfo(H(s), GF_CUR_CTX, GF_CUR_DEV, 2, pctx);
}

GF_API2(cuStreamGetCtx_v2, cuStreamGetCtx_v2_ptsz, (CUstream s, CUcontext *pctx, CUgreenCtx *pGreenCtx),
        stream_get_ctx_v2(s, pctx, pGreenCtx))

// ---- events ----

GF_API(cuEventCreate, (CUevent *phEvent, unsigned int flags), gfgo_eventCreate(GF_CUR_DEV, HP(phEvent), flags))
GF_API2(cuEventRecord, cuEventRecord_ptsz, (CUevent e, CUstream s), gfgo_eventRecord(H(e), H(s), GF_CUR_DEV))
GF_API2(cuEventRecordWithFlags, cuEventRecordWithFlags_ptsz, (CUevent e, CUstream s, unsigned int flags),
        ((void)flags, gfgo_eventRecord(H(e), H(s), GF_CUR_DEV)))
GF_API(cuEventSynchronize, (CUevent e), gfgo_eventSynchronize(H(e)))
GF_API(cuEventQuery, (CUevent e), gfgo_eventQuery(H(e)))
GF_API(cuEventElapsedTime, (float *ms, CUevent start, CUevent end), gfgo_eventElapsedTime(ms, H(start), H(end)))
GF_API(cuEventElapsedTime_v2, (float *ms, CUevent start, CUevent end), gfgo_eventElapsedTime(ms, H(start), H(end)))
GF_API(cuEventDestroy, (CUevent e), gfgo_eventDestroy(H(e)))
GF_API(cuEventDestroy_v2, (CUevent e), gfgo_eventDestroy(H(e)))
