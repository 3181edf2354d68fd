//go:build cgo

// See cuda_shim.h. The driver's types and signatures below are declared
// here, from the public driver API reference, so the build needs no CUDA
// toolkit; the driver itself is found at run time.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_shim.h"

typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef unsigned long long CUdeviceptr;
typedef struct { char bytes[16]; } CUuuid;

#define CUDA_SUCCESS 0
#define CUDA_ERROR_INVALID_VALUE 1
#define CUDA_ERROR_OUT_OF_MEMORY 2
#define CUDA_ERROR_NOT_SUPPORTED 801
#define CU_MEMHOSTREGISTER_PORTABLE 0x1

// The `extra` keys of cuLaunchKernel.
#define CU_LAUNCH_PARAM_END ((void *)0)
#define CU_LAUNCH_PARAM_BUFFER_POINTER ((void *)1)
#define CU_LAUNCH_PARAM_BUFFER_SIZE ((void *)2)

static struct {
	void *lib;
	CUresult (*cuInit)(unsigned int);
	CUresult (*cuDriverGetVersion)(int *);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetName)(char *, int, CUdevice);
	CUresult (*cuDeviceGetUuid)(CUuuid *, CUdevice);
	CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
	CUresult (*cuDeviceGetPCIBusId)(char *, int, CUdevice);
	CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
	CUresult (*cuCtxSetCurrent)(CUcontext);
	CUresult (*cuMemGetInfo)(size_t *, size_t *);
	CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemHostAlloc)(void **, size_t, unsigned int);
	CUresult (*cuMemFreeHost)(void *);
	CUresult (*cuMemHostRegister)(void *, size_t, unsigned int);
	CUresult (*cuMemHostUnregister)(void *);
	CUresult (*cuStreamCreateWithPriority)(CUstream *, unsigned int, int);
	CUresult (*cuStreamDestroy)(CUstream);
	CUresult (*cuStreamQuery)(CUstream);
	CUresult (*cuStreamWaitEvent)(CUstream, CUevent, unsigned int);
	CUresult (*cuEventCreate)(CUevent *, unsigned int);
	CUresult (*cuEventDestroy)(CUevent);
	CUresult (*cuEventRecord)(CUevent, CUstream);
	CUresult (*cuEventQuery)(CUevent);
	CUresult (*cuEventSynchronize)(CUevent);
	CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*cuModuleLoadData)(CUmodule *, const void *);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*cuModuleGetGlobal)(CUdeviceptr *, size_t *, CUmodule, const char *);
	CUresult (*cuFuncGetParamInfo)(CUfunction, size_t, size_t *, size_t *);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned int, unsigned int, unsigned int,
		unsigned int, unsigned int, unsigned int, unsigned int, CUstream, void **, void **);
	CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*cuMemcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
	CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
	CUresult (*cuMemsetD16Async)(CUdeviceptr, unsigned short, size_t, CUstream);
	CUresult (*cuMemsetD32Async)(CUdeviceptr, unsigned int, size_t, CUstream);
	CUresult (*cuGetErrorString)(CUresult, const char **);
	// Virtual memory management (vmm_linux.go), optional: drivers >= 10.2.
	CUresult (*cuMemAddressReserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
	CUresult (*cuMemAddressFree)(CUdeviceptr, size_t);
	CUresult (*cuMemCreate)(unsigned long long *, size_t, const void *, unsigned long long);
	CUresult (*cuMemRelease)(unsigned long long);
	CUresult (*cuMemMap)(CUdeviceptr, size_t, size_t, unsigned long long, unsigned long long);
	CUresult (*cuMemUnmap)(CUdeviceptr, size_t);
	CUresult (*cuMemSetAccess)(CUdeviceptr, size_t, const void *, size_t);
	CUresult (*cuMemcpyPeerAsync)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t, CUstream);
	CUresult (*cuMemcpy2DAsync)(const void *, CUstream);
	CUresult (*cuMemsetD2D8Async)(CUdeviceptr, size_t, unsigned char, size_t, size_t, CUstream);
	CUresult (*cuMemsetD2D16Async)(CUdeviceptr, size_t, unsigned short, size_t, size_t, CUstream);
	CUresult (*cuMemsetD2D32Async)(CUdeviceptr, size_t, unsigned int, size_t, size_t, CUstream);
	CUresult (*cuStreamWriteValue32)(CUstream, CUdeviceptr, unsigned int, unsigned int);
	CUresult (*cuStreamWriteValue64)(CUstream, CUdeviceptr, unsigned long long, unsigned int);
	CUresult (*cuLinkCreate)(unsigned int, int *, void **, void **);
	CUresult (*cuLinkAddData)(void *, int, void *, size_t, const char *, unsigned int, int *, void **);
	CUresult (*cuLinkComplete)(void *, void **, size_t *);
	CUresult (*cuLinkDestroy)(void *);
	CUresult (*cuFuncGetAttribute)(int *, int, CUfunction);
} cu;

// One entry per driver function: the slot it fills, whether the backend can
// run without it, and the exported names to try, newest first. Versioned
// names (_v2) are the ones cuda.h maps the plain names to; the plain ones
// are fallbacks for older drivers (JetPack's driver lacks
// cuEventElapsedTime_v2, drivers before 11.4 lack cuDeviceGetUuid_v2).
struct sym {
	void **slot;
	int required;
	const char *names[3];
};

#define SLOT(f) ((void **)&cu.f)

static const struct sym syms[] = {
	{SLOT(cuInit), 1, {"cuInit"}},
	{SLOT(cuDriverGetVersion), 1, {"cuDriverGetVersion"}},
	{SLOT(cuDeviceGetCount), 1, {"cuDeviceGetCount"}},
	{SLOT(cuDeviceGet), 1, {"cuDeviceGet"}},
	{SLOT(cuDeviceGetName), 1, {"cuDeviceGetName"}},
	{SLOT(cuDeviceGetUuid), 1, {"cuDeviceGetUuid_v2", "cuDeviceGetUuid"}},
	{SLOT(cuDeviceTotalMem), 1, {"cuDeviceTotalMem_v2"}},
	{SLOT(cuDeviceGetPCIBusId), 1, {"cuDeviceGetPCIBusId"}},
	{SLOT(cuDeviceGetAttribute), 1, {"cuDeviceGetAttribute"}},
	{SLOT(cuDevicePrimaryCtxRetain), 1, {"cuDevicePrimaryCtxRetain"}},
	{SLOT(cuDevicePrimaryCtxRelease), 1, {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"}},
	{SLOT(cuCtxSetCurrent), 1, {"cuCtxSetCurrent"}},
	{SLOT(cuMemGetInfo), 1, {"cuMemGetInfo_v2"}},
	{SLOT(cuMemAlloc), 1, {"cuMemAlloc_v2"}},
	{SLOT(cuMemFree), 1, {"cuMemFree_v2"}},
	{SLOT(cuMemHostAlloc), 1, {"cuMemHostAlloc"}},
	{SLOT(cuMemFreeHost), 1, {"cuMemFreeHost"}},
	{SLOT(cuMemHostRegister), 0, {"cuMemHostRegister_v2", "cuMemHostRegister"}},
	{SLOT(cuMemHostUnregister), 0, {"cuMemHostUnregister"}},
	{SLOT(cuStreamCreateWithPriority), 1, {"cuStreamCreateWithPriority"}},
	{SLOT(cuStreamDestroy), 1, {"cuStreamDestroy_v2", "cuStreamDestroy"}},
	{SLOT(cuStreamQuery), 1, {"cuStreamQuery"}},
	{SLOT(cuStreamWaitEvent), 1, {"cuStreamWaitEvent"}},
	{SLOT(cuEventCreate), 1, {"cuEventCreate"}},
	{SLOT(cuEventDestroy), 1, {"cuEventDestroy_v2", "cuEventDestroy"}},
	{SLOT(cuEventRecord), 1, {"cuEventRecord"}},
	{SLOT(cuEventQuery), 1, {"cuEventQuery"}},
	{SLOT(cuEventSynchronize), 1, {"cuEventSynchronize"}},
	{SLOT(cuEventElapsedTime), 1, {"cuEventElapsedTime_v2", "cuEventElapsedTime"}},
	{SLOT(cuModuleLoadData), 1, {"cuModuleLoadData"}},
	{SLOT(cuModuleUnload), 1, {"cuModuleUnload"}},
	{SLOT(cuModuleGetFunction), 1, {"cuModuleGetFunction"}},
	{SLOT(cuModuleGetGlobal), 1, {"cuModuleGetGlobal_v2"}},
	{SLOT(cuFuncGetParamInfo), 0, {"cuFuncGetParamInfo"}}, // driver >= 12.4
	{SLOT(cuLaunchKernel), 1, {"cuLaunchKernel"}},
	{SLOT(cuMemcpyHtoDAsync), 1, {"cuMemcpyHtoDAsync_v2"}},
	{SLOT(cuMemcpyDtoHAsync), 1, {"cuMemcpyDtoHAsync_v2"}},
	{SLOT(cuMemcpyDtoDAsync), 1, {"cuMemcpyDtoDAsync_v2"}},
	{SLOT(cuMemsetD8Async), 1, {"cuMemsetD8Async"}},
	{SLOT(cuMemsetD16Async), 1, {"cuMemsetD16Async"}},
	{SLOT(cuMemsetD32Async), 1, {"cuMemsetD32Async"}},
	{SLOT(cuGetErrorString), 0, {"cuGetErrorString"}},
	{SLOT(cuMemAddressReserve), 0, {"cuMemAddressReserve"}},
	{SLOT(cuMemAddressFree), 0, {"cuMemAddressFree"}},
	{SLOT(cuMemCreate), 0, {"cuMemCreate"}},
	{SLOT(cuMemRelease), 0, {"cuMemRelease"}},
	{SLOT(cuMemMap), 0, {"cuMemMap"}},
	{SLOT(cuMemUnmap), 0, {"cuMemUnmap"}},
	{SLOT(cuMemSetAccess), 0, {"cuMemSetAccess"}},
	{SLOT(cuMemcpyPeerAsync), 0, {"cuMemcpyPeerAsync"}},
	{SLOT(cuMemcpy2DAsync), 0, {"cuMemcpy2DAsync_v2"}},
	{SLOT(cuMemsetD2D8Async), 0, {"cuMemsetD2D8Async"}},
	{SLOT(cuMemsetD2D16Async), 0, {"cuMemsetD2D16Async"}},
	{SLOT(cuMemsetD2D32Async), 0, {"cuMemsetD2D32Async"}},
	// Stream memory operations: enabled by default from 11.7 (_v2).
	{SLOT(cuStreamWriteValue32), 0, {"cuStreamWriteValue32_v2", "cuStreamWriteValue32"}},
	{SLOT(cuStreamWriteValue64), 0, {"cuStreamWriteValue64_v2", "cuStreamWriteValue64"}},
	// JIT linking.
	{SLOT(cuLinkCreate), 0, {"cuLinkCreate_v2", "cuLinkCreate"}},
	{SLOT(cuLinkAddData), 0, {"cuLinkAddData_v2", "cuLinkAddData"}},
	{SLOT(cuLinkComplete), 0, {"cuLinkComplete"}},
	{SLOT(cuLinkDestroy), 0, {"cuLinkDestroy"}},
	{SLOT(cuFuncGetAttribute), 0, {"cuFuncGetAttribute"}},
};

// gf_open is called by the Go side under its own lock, once it succeeds
// never again, so the table needs no synchronisation of its own: it is
// written before any wrapper can be reached.
int gf_open(const char *path, char *err, size_t errlen) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return GF_OPEN_DLOPEN;
	}
	// A libcuda.so.1 that is a Go c-shared library is our own interposer
	// (found first because build/lib is on LD_LIBRARY_PATH): loading it
	// into the server would send the server's calls back to a server.
	if (dlsym(lib, "gpufabric_interposer") || dlsym(lib, "crosscall2")) {
		snprintf(err, errlen, "%s is gpufabric's interposer (a Go c-shared library), not NVIDIA's driver", path);
		dlclose(lib);
		return GF_OPEN_INTERPOSER;
	}
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *p = NULL;
		for (int j = 0; j < 3 && syms[i].names[j] && !p; j++)
			p = dlsym(lib, syms[i].names[j]);
		if (!p && syms[i].required) {
			snprintf(err, errlen, "%s has no symbol %s", path, syms[i].names[0]);
			memset(&cu, 0, sizeof cu);
			dlclose(lib);
			return GF_OPEN_SYMBOL;
		}
		*syms[i].slot = p;
	}
	cu.lib = lib;
	return GF_OPEN_OK;
}

// gf_loaded_path gives the file the driver was loaded from, for logs.
int gf_loaded_path(char *buf, size_t len) {
	Dl_info info;
	if (!cu.lib || !dladdr(*(void **)SLOT(cuInit), &info) || !info.dli_fname)
		return 0;
	snprintf(buf, len, "%s", info.dli_fname);
	return 1;
}

int gf_has_param_info(void) { return cu.cuFuncGetParamInfo != NULL; }

const char *gf_error_string(int result) {
	const char *s = NULL;
	if (cu.cuGetErrorString && cu.cuGetErrorString(result, &s) == CUDA_SUCCESS)
		return s;
	return NULL;
}

#define WITH_CTX(ctx)                                                  \
	do {                                                           \
		CUresult r_ = cu.cuCtxSetCurrent((CUcontext)(ctx));    \
		if (r_ != CUDA_SUCCESS)                                \
			return r_;                                     \
	} while (0)

int gf_init(void) { return cu.cuInit(0); }
int gf_driver_version(int *v) { return cu.cuDriverGetVersion(v); }
int gf_device_count(int *n) { return cu.cuDeviceGetCount(n); }
int gf_device_get(int ordinal, int *dev) { return cu.cuDeviceGet(dev, ordinal); }
int gf_device_name(int dev, char *buf, int len) { return cu.cuDeviceGetName(buf, len, dev); }

int gf_device_uuid(int dev, unsigned char *out) {
	CUuuid u;
	CUresult r = cu.cuDeviceGetUuid(&u, dev);
	if (r == CUDA_SUCCESS)
		memcpy(out, u.bytes, 16);
	return r;
}

int gf_device_total_mem(int dev, size_t *bytes) { return cu.cuDeviceTotalMem(bytes, dev); }
int gf_device_pci_bus_id(int dev, char *buf, int len) { return cu.cuDeviceGetPCIBusId(buf, len, dev); }
int gf_device_attribute(int dev, int attr, int *v) { return cu.cuDeviceGetAttribute(v, attr, dev); }

int gf_ctx_retain(int dev, gf_handle *ctx) {
	CUcontext c = NULL;
	CUresult r = cu.cuDevicePrimaryCtxRetain(&c, dev);
	*ctx = (gf_handle)c;
	return r;
}

int gf_ctx_release(int dev) { return cu.cuDevicePrimaryCtxRelease(dev); }

int gf_mem_info(gf_handle ctx, size_t *free_bytes, size_t *total_bytes) {
	WITH_CTX(ctx);
	return cu.cuMemGetInfo(free_bytes, total_bytes);
}

int gf_mem_alloc(gf_handle ctx, size_t n, uint64_t *ptr) {
	WITH_CTX(ctx);
	CUdeviceptr p = 0;
	CUresult r = cu.cuMemAlloc(&p, n);
	*ptr = p;
	return r;
}

int gf_mem_free(gf_handle ctx, uint64_t ptr) {
	WITH_CTX(ctx);
	return cu.cuMemFree(ptr);
}

int gf_host_alloc(gf_handle ctx, size_t n, void **p) {
	WITH_CTX(ctx);
	return cu.cuMemHostAlloc(p, n, 0);
}

int gf_host_free(gf_handle ctx, void *p) {
	WITH_CTX(ctx);
	return cu.cuMemFreeHost(p);
}

// Registered memory is registered for every context (PORTABLE): the same
// client region may be copied to several devices of a session.
int gf_host_register(gf_handle ctx, void *p, size_t n) {
	if (!cu.cuMemHostRegister || !cu.cuMemHostUnregister)
		return CUDA_ERROR_NOT_SUPPORTED;
	WITH_CTX(ctx);
	return cu.cuMemHostRegister(p, n, CU_MEMHOSTREGISTER_PORTABLE);
}

int gf_host_unregister(gf_handle ctx, void *p) {
	if (!cu.cuMemHostUnregister)
		return CUDA_ERROR_NOT_SUPPORTED;
	WITH_CTX(ctx);
	return cu.cuMemHostUnregister(p);
}

int gf_stream_create(gf_handle ctx, unsigned flags, int priority, gf_handle *stream) {
	WITH_CTX(ctx);
	CUstream s = NULL;
	CUresult r = cu.cuStreamCreateWithPriority(&s, flags, priority);
	*stream = (gf_handle)s;
	return r;
}

int gf_stream_destroy(gf_handle ctx, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuStreamDestroy((CUstream)stream);
}

int gf_stream_query(gf_handle ctx, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuStreamQuery((CUstream)stream);
}

int gf_stream_wait_event(gf_handle ctx, gf_handle stream, gf_handle event) {
	WITH_CTX(ctx);
	return cu.cuStreamWaitEvent((CUstream)stream, (CUevent)event, 0);
}

int gf_event_create(gf_handle ctx, unsigned flags, gf_handle *event) {
	WITH_CTX(ctx);
	CUevent e = NULL;
	CUresult r = cu.cuEventCreate(&e, flags);
	*event = (gf_handle)e;
	return r;
}

int gf_event_destroy(gf_handle ctx, gf_handle event) {
	WITH_CTX(ctx);
	return cu.cuEventDestroy((CUevent)event);
}

int gf_event_record(gf_handle ctx, gf_handle event, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuEventRecord((CUevent)event, (CUstream)stream);
}

int gf_event_query(gf_handle ctx, gf_handle event) {
	WITH_CTX(ctx);
	return cu.cuEventQuery((CUevent)event);
}

int gf_event_sync(gf_handle ctx, gf_handle event) {
	WITH_CTX(ctx);
	return cu.cuEventSynchronize((CUevent)event);
}

int gf_event_elapsed(gf_handle ctx, gf_handle start, gf_handle end, float *ms) {
	WITH_CTX(ctx);
	return cu.cuEventElapsedTime(ms, (CUevent)start, (CUevent)end);
}

// gf_module_load copies the image into C memory with a NUL after it: PTX is
// read as a C string, and the Go caller's slice must not be what the driver
// reads (cgo's rules, and the driver may read past a cubin's header).
int gf_module_load(gf_handle ctx, const void *image, size_t n, gf_handle *module) {
	WITH_CTX(ctx);
	char *copy = malloc(n + 1);
	if (!copy)
		return CUDA_ERROR_OUT_OF_MEMORY;
	memcpy(copy, image, n);
	copy[n] = 0;
	CUmodule m = NULL;
	CUresult r = cu.cuModuleLoadData(&m, copy);
	free(copy);
	*module = (gf_handle)m;
	return r;
}

int gf_module_unload(gf_handle ctx, gf_handle module) {
	WITH_CTX(ctx);
	return cu.cuModuleUnload((CUmodule)module);
}

int gf_module_function(gf_handle ctx, gf_handle module, const char *name, gf_handle *fn) {
	WITH_CTX(ctx);
	CUfunction f = NULL;
	CUresult r = cu.cuModuleGetFunction(&f, (CUmodule)module, name);
	*fn = (gf_handle)f;
	return r;
}

int gf_module_global(gf_handle ctx, gf_handle module, const char *name, uint64_t *ptr, size_t *size) {
	WITH_CTX(ctx);
	CUdeviceptr p = 0;
	CUresult r = cu.cuModuleGetGlobal(&p, size, (CUmodule)module, name);
	*ptr = p;
	return r;
}

int gf_func_param_info(gf_handle ctx, gf_handle fn, size_t index, size_t *offset, size_t *size) {
	if (!cu.cuFuncGetParamInfo)
		return GF_MISSING;
	WITH_CTX(ctx);
	return cu.cuFuncGetParamInfo((CUfunction)fn, index, offset, size);
}

// gf_launch passes the packed parameter buffer through `extra`. The buffer
// is copied to C memory first (the stack for the usual few hundred bytes):
// the driver reads it during the call, and a Go slice must not be stored in
// the C array that points the driver at it.
int gf_launch(gf_handle ctx, gf_handle fn, unsigned gx, unsigned gy, unsigned gz,
	unsigned bx, unsigned by, unsigned bz, unsigned shared_mem, gf_handle stream,
	const void *params, size_t n) {
	WITH_CTX(ctx);
	_Alignas(16) unsigned char local[4096];
	void *buf = local;
	if (n > sizeof local) {
		buf = malloc(n);
		if (!buf)
			return CUDA_ERROR_OUT_OF_MEMORY;
	}
	if (n)
		memcpy(buf, params, n);
	size_t size = n;
	void *extra[] = {
		CU_LAUNCH_PARAM_BUFFER_POINTER, buf,
		CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
		CU_LAUNCH_PARAM_END,
	};
	CUresult r = cu.cuLaunchKernel((CUfunction)fn, gx, gy, gz, bx, by, bz, shared_mem,
		(CUstream)stream, NULL, n ? extra : NULL);
	if (buf != local)
		free(buf);
	return r;
}

int gf_memcpy_htod(gf_handle ctx, uint64_t dst, const void *src, size_t n, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuMemcpyHtoDAsync(dst, src, n, (CUstream)stream);
}

int gf_memcpy_dtoh(gf_handle ctx, void *dst, uint64_t src, size_t n, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuMemcpyDtoHAsync(dst, src, n, (CUstream)stream);
}

int gf_memcpy_dtod(gf_handle ctx, uint64_t dst, uint64_t src, size_t n, gf_handle stream) {
	WITH_CTX(ctx);
	return cu.cuMemcpyDtoDAsync(dst, src, n, (CUstream)stream);
}

int gf_memset(gf_handle ctx, uint64_t dst, unsigned value, int elem_size, size_t count, gf_handle stream) {
	WITH_CTX(ctx);
	switch (elem_size) {
	case 1:
		return cu.cuMemsetD8Async(dst, (unsigned char)value, count, (CUstream)stream);
	case 2:
		return cu.cuMemsetD16Async(dst, (unsigned short)value, count, (CUstream)stream);
	case 4:
		return cu.cuMemsetD32Async(dst, value, count, (CUstream)stream);
	}
	return CUDA_ERROR_INVALID_VALUE;
}

// ---- virtual memory management ----
//
// The driver's structures, from the API reference: CUmemAllocationProp
// (type, requested handle types, location {type, id}, win32 metadata,
// allocation flags) and CUmemAccessDesc (location, flags).

struct gf_mem_location { int type, id; };
struct gf_mem_prop {
	int type, handle_types;
	struct gf_mem_location location;
	void *win32;
	unsigned char compression, rdma;
	unsigned short usage;
	unsigned char reserved[4];
};
struct gf_mem_access { struct gf_mem_location location; int flags; };

#define GF_ALLOC_PINNED 1
#define GF_LOCATION_DEVICE 1
#define GF_ACCESS_READWRITE 3

int gf_has_vmm(void) {
	return cu.cuMemAddressReserve && cu.cuMemAddressFree && cu.cuMemCreate && cu.cuMemRelease &&
	       cu.cuMemMap && cu.cuMemUnmap && cu.cuMemSetAccess;
}

int gf_vmm_reserve(gf_handle ctx, size_t size, size_t align, uint64_t *ptr) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	CUdeviceptr p = 0;
	CUresult r = cu.cuMemAddressReserve(&p, size, align, 0, 0);
	*ptr = p;
	return r;
}

int gf_vmm_free(gf_handle ctx, uint64_t ptr, size_t size) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	return cu.cuMemAddressFree(ptr, size);
}

int gf_vmm_create(gf_handle ctx, int dev, size_t size, uint64_t *handle) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	struct gf_mem_prop prop = {0};
	prop.type = GF_ALLOC_PINNED;
	prop.location.type = GF_LOCATION_DEVICE;
	prop.location.id = dev;
	unsigned long long h = 0;
	CUresult r = cu.cuMemCreate(&h, size, &prop, 0);
	*handle = h;
	return r;
}

int gf_vmm_release(gf_handle ctx, uint64_t handle) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	return cu.cuMemRelease(handle);
}

// gf_vmm_map maps and grants the device read-write access, which a mapping
// needs before any access; a failed grant takes the mapping out again.
int gf_vmm_map(gf_handle ctx, int dev, uint64_t ptr, size_t size, size_t offset, uint64_t handle) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	CUresult r = cu.cuMemMap(ptr, size, offset, handle, 0);
	if (r != CUDA_SUCCESS)
		return r;
	struct gf_mem_access a = {{GF_LOCATION_DEVICE, dev}, GF_ACCESS_READWRITE};
	r = cu.cuMemSetAccess(ptr, size, &a, 1);
	if (r != CUDA_SUCCESS)
		cu.cuMemUnmap(ptr, size);
	return r;
}

int gf_vmm_unmap(gf_handle ctx, uint64_t ptr, size_t size) {
	if (!gf_has_vmm())
		return GF_MISSING;
	WITH_CTX(ctx);
	return cu.cuMemUnmap(ptr, size);
}

// ---- copies between devices ----

int gf_memcpy_peer(gf_handle ctx, uint64_t dst, gf_handle dst_ctx, uint64_t src, gf_handle src_ctx, size_t n,
                   gf_handle stream) {
	if (!cu.cuMemcpyPeerAsync)
		return GF_MISSING;
	WITH_CTX(ctx);
	return cu.cuMemcpyPeerAsync(dst, (CUcontext)dst_ctx, src, (CUcontext)src_ctx, n, (CUstream)stream);
}

// ---- pitched slices of device memory ----

// CUDA_MEMCPY2D, from the API reference.
struct gf_memcpy2d {
	size_t src_x, src_y;
	int src_type;
	const void *src_host;
	CUdeviceptr src_device;
	void *src_array;
	size_t src_pitch;
	size_t dst_x, dst_y;
	int dst_type;
	void *dst_host;
	CUdeviceptr dst_device;
	void *dst_array;
	size_t dst_pitch;
	size_t width, height;
};

#define GF_MEMORYTYPE_DEVICE 2

int gf_memcpy2d_dtod(gf_handle ctx, uint64_t dst, size_t dst_pitch, uint64_t src, size_t src_pitch, size_t width,
                     size_t height, gf_handle stream) {
	if (!cu.cuMemcpy2DAsync)
		return GF_MISSING;
	WITH_CTX(ctx);
	struct gf_memcpy2d c = {0};
	c.src_type = GF_MEMORYTYPE_DEVICE, c.src_device = src, c.src_pitch = src_pitch;
	c.dst_type = GF_MEMORYTYPE_DEVICE, c.dst_device = dst, c.dst_pitch = dst_pitch;
	c.width = width, c.height = height;
	return cu.cuMemcpy2DAsync(&c, (CUstream)stream);
}

int gf_memset2d(gf_handle ctx, uint64_t dst, size_t pitch, unsigned value, int elem_size, size_t width, size_t height,
                gf_handle stream) {
	WITH_CTX(ctx);
	switch (elem_size) {
	case 1:
		return cu.cuMemsetD2D8Async ? cu.cuMemsetD2D8Async(dst, pitch, (unsigned char)value, width, height, (CUstream)stream) : GF_MISSING;
	case 2:
		return cu.cuMemsetD2D16Async ? cu.cuMemsetD2D16Async(dst, pitch, (unsigned short)value, width, height, (CUstream)stream) : GF_MISSING;
	case 4:
		return cu.cuMemsetD2D32Async ? cu.cuMemsetD2D32Async(dst, pitch, value, width, height, (CUstream)stream) : GF_MISSING;
	}
	return CUDA_ERROR_INVALID_VALUE;
}


// gf_stream_write_value queues cuStreamWriteValue32/64 of size (4 or 8)
// bytes at ptr on stream.
int gf_stream_write_value(gf_handle ctx, gf_handle stream, uint64_t ptr, uint64_t value, int size) {
	if (size == 4 ? !cu.cuStreamWriteValue32 : !cu.cuStreamWriteValue64)
		return GF_MISSING;
	WITH_CTX(ctx);
	if (size == 4)
		return cu.cuStreamWriteValue32((CUstream)stream, (CUdeviceptr)ptr, (unsigned int)value, 0);
	return cu.cuStreamWriteValue64((CUstream)stream, (CUdeviceptr)ptr, (unsigned long long)value, 0);
}

// gf_link links n inputs with the driver's linker. Their bytes are data,
// back to back (sizes[i] each, of types[i]); their names are names, each
// NUL-terminated, back to back. Each input is copied into C memory first,
// with a NUL after it (PTX is read as a C string). The image is returned in
// memory the caller frees (free); the linker's error log goes to log.
int gf_link(gf_handle ctx, int n, const int *types, const void *data, const size_t *sizes, const char *names,
	void **out, size_t *out_size, char *log, size_t loglen) {
	if (!cu.cuLinkCreate || !cu.cuLinkAddData || !cu.cuLinkComplete || !cu.cuLinkDestroy)
		return GF_MISSING;
	WITH_CTX(ctx);
	int opts[] = {5, 6}; // CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
	void *vals[] = {log, (void *)(uintptr_t)loglen};
	if (loglen > 0)
		log[0] = 0;
	void *state = NULL;
	CUresult r = cu.cuLinkCreate(loglen > 0 ? 2 : 0, opts, vals, &state);
	if (r != CUDA_SUCCESS)
		return r;
	const char *p = data;
	for (int i = 0; i < n && r == CUDA_SUCCESS; i++) {
		char *copy = malloc(sizes[i] + 1);
		if (!copy) {
			r = CUDA_ERROR_OUT_OF_MEMORY;
			break;
		}
		memcpy(copy, p, sizes[i]);
		copy[sizes[i]] = 0;
		r = cu.cuLinkAddData(state, types[i], copy, sizes[i] + 1, names, 0, NULL, NULL);
		free(copy);
		p += sizes[i];
		names += strlen(names) + 1;
	}
	void *image = NULL;
	size_t size = 0;
	if (r == CUDA_SUCCESS)
		r = cu.cuLinkComplete(state, &image, &size);
	if (r == CUDA_SUCCESS) {
		*out = malloc(size ? size : 1);
		if (*out) {
			memcpy(*out, image, size);
			*out_size = size;
		} else {
			r = CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	cu.cuLinkDestroy(state); // the image is the state's: copied above
	return r;
}

// gf_func_attributes reads n CUfunction_attribute values (0 to n-1) of fn
// into values; one the driver refuses is -1.
int gf_func_attributes(gf_handle ctx, gf_handle fn, int n, int *values) {
	if (!cu.cuFuncGetAttribute)
		return GF_MISSING;
	WITH_CTX(ctx);
	for (int i = 0; i < n; i++)
		if (cu.cuFuncGetAttribute(&values[i], i, (CUfunction)fn) != CUDA_SUCCESS)
			values[i] = -1;
	return CUDA_SUCCESS;
}
