/*
 * gpufabric_cuda.h: the CUDA driver API declarations the gpufabric examples
 * use, written for this project from NVIDIA's public driver API reference
 * (types, values and signatures are the API's; no NVIDIA header is copied).
 *
 * Programs load the driver the way the CUDA runtime does: dlopen
 * libcuda.so.1, dlsym cuGetProcAddress, and resolve every other entry point
 * by its base name for the CUDA version they were written against, so they
 * get the versioned symbol (cuMemAlloc -> cuMemAlloc_v2) the driver picks.
 *
 *     gf_driver cu;
 *     gf_load_driver(&cu);            // exits with a message on failure
 *     GF_CHECK(cu.cuInit(0));
 */
#ifndef GPUFABRIC_CUDA_H
#define GPUFABRIC_CUDA_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The CUDA version the examples are written against (1000*major + 10*minor). */
#define GF_CUDA_API_VERSION 12000

typedef enum cudaError_enum {
	CUDA_SUCCESS = 0,
	CUDA_ERROR_INVALID_VALUE = 1,
	CUDA_ERROR_OUT_OF_MEMORY = 2,
	CUDA_ERROR_NOT_INITIALIZED = 3,
	CUDA_ERROR_DEINITIALIZED = 4,
	CUDA_ERROR_NO_DEVICE = 100,
	CUDA_ERROR_INVALID_DEVICE = 101,
	CUDA_ERROR_INVALID_IMAGE = 200,
	CUDA_ERROR_INVALID_CONTEXT = 201,
	CUDA_ERROR_INVALID_HANDLE = 400,
	CUDA_ERROR_NOT_FOUND = 500,
	CUDA_ERROR_NOT_READY = 600,
	CUDA_ERROR_ILLEGAL_ADDRESS = 700,
	CUDA_ERROR_LAUNCH_FAILED = 719,
	CUDA_ERROR_NOT_SUPPORTED = 801,
	CUDA_ERROR_UNKNOWN = 999
} CUresult;

typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUlib_st *CUlibrary;
typedef struct CUkern_st *CUkernel;
typedef struct CUevent_st *CUevent;
typedef struct CUstream_st *CUstream;
typedef struct CUuuid_st {
	char bytes[16];
} CUuuid;

typedef enum CUdevice_attribute_enum {
	CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1,
	CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
	CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41,
	CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
	CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
} CUdevice_attribute;

typedef enum CUpointer_attribute_enum {
	CU_POINTER_ATTRIBUTE_CONTEXT = 1,
	CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2,
	CU_POINTER_ATTRIBUTE_DEVICE_POINTER = 3,
	CU_POINTER_ATTRIBUTE_HOST_POINTER = 4,
	CU_POINTER_ATTRIBUTE_BUFFER_ID = 7,
	CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9,
	CU_POINTER_ATTRIBUTE_RANGE_START_ADDR = 11,
	CU_POINTER_ATTRIBUTE_RANGE_SIZE = 12,
	CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE = 17
} CUpointer_attribute;

typedef enum CUmemorytype_enum {
	CU_MEMORYTYPE_HOST = 1,
	CU_MEMORYTYPE_DEVICE = 2,
	CU_MEMORYTYPE_ARRAY = 3,
	CU_MEMORYTYPE_UNIFIED = 4
} CUmemorytype;

typedef enum CUdriverProcAddressQueryResult_enum {
	CU_GET_PROC_ADDRESS_SUCCESS = 0,
	CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND = 1,
	CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT = 2
} CUdriverProcAddressQueryResult;

#define CU_GET_PROC_ADDRESS_DEFAULT 0
#define CU_GET_PROC_ADDRESS_LEGACY_STREAM 1
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM 2

#define CU_STREAM_DEFAULT 0x0
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_STREAM_LEGACY ((CUstream)0x1)
#define CU_STREAM_PER_THREAD ((CUstream)0x2)
#define CU_EVENT_DEFAULT 0x0
#define CU_EVENT_DISABLE_TIMING 0x2
#define CU_MEMHOSTALLOC_PORTABLE 0x1
#define CU_CTX_SCHED_AUTO 0x0

#define CU_LAUNCH_PARAM_END ((void *)0x00)
#define CU_LAUNCH_PARAM_BUFFER_POINTER ((void *)0x01)
#define CU_LAUNCH_PARAM_BUFFER_SIZE ((void *)0x02)

/*
 * The entry points the examples use, by base name: X(name, version, return,
 * params). The version is the CUDA version whose signature the examples
 * call: GF_V (GF_CUDA_API_VERSION) for most, 3020 for cuCtxCreate, whose
 * 12.0 signature is cuCtxCreate_v3's (execution affinity parameters).
 */
#define GF_V GF_CUDA_API_VERSION
#define GF_DRIVER_FUNCS(X)                                                                                     \
	X(cuInit, GF_V, CUresult, (unsigned int flags))                                                                  \
	X(cuDriverGetVersion, GF_V, CUresult, (int *version))                                                            \
	X(cuGetErrorName, GF_V, CUresult, (CUresult error, const char **str))                                           \
	X(cuGetErrorString, GF_V, CUresult, (CUresult error, const char **str))                                         \
	X(cuDeviceGetCount, GF_V, CUresult, (int *count))                                                                \
	X(cuDeviceGet, GF_V, CUresult, (CUdevice * device, int ordinal))                                                 \
	X(cuDeviceGetName, GF_V, CUresult, (char *name, int len, CUdevice dev))                                          \
	X(cuDeviceGetUuid, GF_V, CUresult, (CUuuid * uuid, CUdevice dev))                                                \
	X(cuDeviceTotalMem, GF_V, CUresult, (size_t * bytes, CUdevice dev))                                              \
	X(cuDeviceGetAttribute, GF_V, CUresult, (int *value, CUdevice_attribute attr, CUdevice dev))                     \
	X(cuDeviceGetPCIBusId, GF_V, CUresult, (char *busId, int len, CUdevice dev))                                     \
	X(cuDevicePrimaryCtxRetain, GF_V, CUresult, (CUcontext * ctx, CUdevice dev))                                     \
	X(cuDevicePrimaryCtxRelease, GF_V, CUresult, (CUdevice dev))                                                     \
	X(cuDevicePrimaryCtxGetState, GF_V, CUresult, (CUdevice dev, unsigned int *flags, int *active))                  \
	X(cuCtxCreate, 3020, CUresult, (CUcontext * ctx, unsigned int flags, CUdevice dev))                              \
	X(cuCtxDestroy, GF_V, CUresult, (CUcontext ctx))                                                                 \
	X(cuCtxSetCurrent, GF_V, CUresult, (CUcontext ctx))                                                              \
	X(cuCtxGetCurrent, GF_V, CUresult, (CUcontext * ctx))                                                            \
	X(cuCtxPushCurrent, GF_V, CUresult, (CUcontext ctx))                                                             \
	X(cuCtxPopCurrent, GF_V, CUresult, (CUcontext * ctx))                                                            \
	X(cuCtxGetDevice, GF_V, CUresult, (CUdevice * dev))                                                              \
	X(cuCtxSynchronize, GF_V, CUresult, (void))                                                                      \
	X(cuCtxGetStreamPriorityRange, GF_V, CUresult, (int *least, int *greatest))                                     \
	X(cuMemGetInfo, GF_V, CUresult, (size_t * free, size_t *total))                                                  \
	X(cuMemAlloc, GF_V, CUresult, (CUdeviceptr * dptr, size_t size))                                                 \
	X(cuMemFree, GF_V, CUresult, (CUdeviceptr dptr))                                                                 \
	X(cuMemAllocHost, GF_V, CUresult, (void **p, size_t size))                                                       \
	X(cuMemFreeHost, GF_V, CUresult, (void *p))                                                                      \
	X(cuMemGetAddressRange, GF_V, CUresult, (CUdeviceptr * base, size_t *size, CUdeviceptr dptr))                    \
	X(cuMemcpyHtoD, GF_V, CUresult, (CUdeviceptr dst, const void *src, size_t n))                                    \
	X(cuMemcpyDtoH, GF_V, CUresult, (void *dst, CUdeviceptr src, size_t n))                                          \
	X(cuMemcpyDtoD, GF_V, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t n))                                    \
	X(cuMemcpy, GF_V, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t n))                                        \
	X(cuMemcpyHtoDAsync, GF_V, CUresult, (CUdeviceptr dst, const void *src, size_t n, CUstream s))                   \
	X(cuMemcpyDtoHAsync, GF_V, CUresult, (void *dst, CUdeviceptr src, size_t n, CUstream s))                         \
	X(cuMemsetD32, GF_V, CUresult, (CUdeviceptr dst, unsigned int v, size_t n))                                      \
	X(cuMemsetD8Async, GF_V, CUresult, (CUdeviceptr dst, unsigned char v, size_t n, CUstream s))                     \
	X(cuMemsetD32Async, GF_V, CUresult, (CUdeviceptr dst, unsigned int v, size_t n, CUstream s))                     \
	X(cuPointerGetAttribute, GF_V, CUresult, (void *data, CUpointer_attribute attr, CUdeviceptr ptr))                \
	X(cuPointerGetAttributes, GF_V,                                                                                  \
	  CUresult, (unsigned int n, CUpointer_attribute * attrs, void **data, CUdeviceptr ptr))                   \
	X(cuModuleLoadData, GF_V, CUresult, (CUmodule * mod, const void *image))                                         \
	X(cuModuleUnload, GF_V, CUresult, (CUmodule mod))                                                                \
	X(cuModuleGetFunction, GF_V, CUresult, (CUfunction * f, CUmodule mod, const char *name))                         \
	X(cuLibraryLoadData, GF_V, CUresult,                                                                             \
	  (CUlibrary * lib, const void *code, void *jitOpts, void **jitVals, unsigned int nJit, void *libOpts,       \
	   void **libVals, unsigned int nLib))                                                                     \
	X(cuLibraryGetKernel, GF_V, CUresult, (CUkernel * k, CUlibrary lib, const char *name))                           \
	X(cuLibraryUnload, GF_V, CUresult, (CUlibrary lib))                                                              \
	X(cuKernelGetFunction, GF_V, CUresult, (CUfunction * f, CUkernel k))                                             \
	X(cuLaunchKernel, GF_V, CUresult,                                                                                \
	  (CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,       \
	   unsigned int bz, unsigned int shmem, CUstream s, void **params, void **extra))                          \
	X(cuStreamCreate, GF_V, CUresult, (CUstream * s, unsigned int flags))                                            \
	X(cuStreamCreateWithPriority, GF_V, CUresult, (CUstream * s, unsigned int flags, int priority))                  \
	X(cuStreamDestroy, GF_V, CUresult, (CUstream s))                                                                 \
	X(cuStreamSynchronize, GF_V, CUresult, (CUstream s))                                                             \
	X(cuStreamQuery, GF_V, CUresult, (CUstream s))                                                                   \
	X(cuStreamWaitEvent, GF_V, CUresult, (CUstream s, CUevent e, unsigned int flags))                                \
	X(cuEventCreate, GF_V, CUresult, (CUevent * e, unsigned int flags))                                              \
	X(cuEventRecord, GF_V, CUresult, (CUevent e, CUstream s))                                                        \
	X(cuEventSynchronize, GF_V, CUresult, (CUevent e))                                                               \
	X(cuEventQuery, GF_V, CUresult, (CUevent e))                                                                     \
	X(cuEventElapsedTime, GF_V, CUresult, (float *ms, CUevent start, CUevent end))                                   \
	X(cuEventDestroy, GF_V, CUresult, (CUevent e))                                                                   \
	X(cuGetExportTable, GF_V, CUresult, (const void **table, const CUuuid *id))

typedef CUresult (*PFN_cuGetProcAddress_v2)(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                            CUdriverProcAddressQueryResult *status);

#define GF_FIELD(name, version, ret, params) ret(*name) params;
typedef struct gf_driver {
	void *lib;
	PFN_cuGetProcAddress_v2 cuGetProcAddress;
	GF_DRIVER_FUNCS(GF_FIELD)
} gf_driver;
#undef GF_FIELD

static gf_driver *gf_cu_for_errors;

/* gf_die prints a message and exits with status 1. */
static inline void gf_die(const char *what) {
	fprintf(stderr, "FAIL: %s\n", what);
	exit(1);
}

/* gf_result_name names a CUresult through the driver, or numerically. */
static inline const char *gf_result_name(CUresult r) {
	static __thread char buf[32];
	const char *s = NULL;
	if (gf_cu_for_errors && gf_cu_for_errors->cuGetErrorName && gf_cu_for_errors->cuGetErrorName(r, &s) == 0 && s)
		return s;
	snprintf(buf, sizeof buf, "CUresult %d", (int)r);
	return buf;
}

/* GF_CHECK exits with the failing call and its result. */
#define GF_CHECK(call)                                                                                  \
	do {                                                                                                \
		CUresult gf_r_ = (call);                                                                        \
		if (gf_r_ != CUDA_SUCCESS) {                                                                    \
			fprintf(stderr, "FAIL: %s:%d: %s = %d (%s)\n", __FILE__, __LINE__, #call, (int)gf_r_,       \
			        gf_result_name(gf_r_));                                                             \
			exit(1);                                                                                    \
		}                                                                                               \
	} while (0)

/* GF_EXPECT exits unless call returns want. */
#define GF_EXPECT(call, want)                                                                           \
	do {                                                                                                \
		CUresult gf_r_ = (call);                                                                        \
		if (gf_r_ != (want)) {                                                                          \
			fprintf(stderr, "FAIL: %s:%d: %s = %d (%s), want %d\n", __FILE__, __LINE__, #call, (int)gf_r_, \
			        gf_result_name(gf_r_), (int)(want));                                                \
			exit(1);                                                                                    \
		}                                                                                               \
	} while (0)

/*
 * gf_load_driver opens libcuda.so.1 and resolves the entry points through
 * cuGetProcAddress_v2, as cudart does. It exits with a message on failure.
 */
static inline void gf_load_driver(gf_driver *d) {
	memset(d, 0, sizeof *d);
	d->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!d->lib) {
		fprintf(stderr, "FAIL: dlopen libcuda.so.1: %s\n", dlerror());
		exit(1);
	}
	d->cuGetProcAddress = (PFN_cuGetProcAddress_v2)dlsym(d->lib, "cuGetProcAddress_v2");
	if (!d->cuGetProcAddress)
		gf_die("libcuda.so.1 has no cuGetProcAddress_v2");
#define GF_RESOLVE(name, version, ret, params)                                                                   \
	{                                                                                                   \
		void *p_ = NULL;                                                                                \
		CUdriverProcAddressQueryResult st_ = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;                      \
		CUresult r_ = d->cuGetProcAddress(#name, &p_, version, CU_GET_PROC_ADDRESS_DEFAULT, &st_); \
		if (r_ != CUDA_SUCCESS || st_ != CU_GET_PROC_ADDRESS_SUCCESS || !p_) {                          \
			fprintf(stderr, "FAIL: cuGetProcAddress(%s) = %d, status %d\n", #name, (int)r_, (int)st_);  \
			exit(1);                                                                                    \
		}                                                                                               \
		memcpy(&d->name, &p_, sizeof p_);                                                               \
	}
	GF_DRIVER_FUNCS(GF_RESOLVE)
#undef GF_RESOLVE
	gf_cu_for_errors = d;
}

/* gf_read_file reads a whole file, NUL-terminated; exits on failure. */
static inline char *gf_read_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "FAIL: open %s\n", path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = (char *)malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "FAIL: read %s\n", path);
		exit(1);
	}
	buf[n] = 0;
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* gf_kernels_path is the PTX of the example kernels: argv, then
 * $GPUFABRIC_KERNELS, then examples/kernels.ptx. */
static inline const char *gf_kernels_path(const char *arg) {
	if (arg && *arg)
		return arg;
	const char *env = getenv("GPUFABRIC_KERNELS");
	return env && *env ? env : "examples/kernels.ptx";
}

/* gf_now_ms is a monotonic clock in milliseconds. */
static inline double gf_now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* gf_setup initialises the driver and makes device 0's primary context
 * current, as the CUDA runtime does. */
static inline CUcontext gf_setup(gf_driver *cu) {
	gf_load_driver(cu);
	GF_CHECK(cu->cuInit(0));
	CUdevice dev;
	GF_CHECK(cu->cuDeviceGet(&dev, 0));
	CUcontext ctx;
	GF_CHECK(cu->cuDevicePrimaryCtxRetain(&ctx, dev));
	GF_CHECK(cu->cuCtxSetCurrent(ctx));
	return ctx;
}

/* ---- memory families: pitched and 2D/3D memory, stream-ordered allocation ----
 * (the cudamem area; conf_memory.c uses it). Load with gf_load_memory after
 * gf_load_driver. */

typedef struct CUarray_st *CUarray;
typedef struct CUmemPoolHandle_st *CUmemoryPool;

typedef struct CUDA_MEMCPY2D_st {
	size_t srcXInBytes, srcY;
	CUmemorytype srcMemoryType;
	const void *srcHost;
	CUdeviceptr srcDevice;
	CUarray srcArray;
	size_t srcPitch;
	size_t dstXInBytes, dstY;
	CUmemorytype dstMemoryType;
	void *dstHost;
	CUdeviceptr dstDevice;
	CUarray dstArray;
	size_t dstPitch;
	size_t WidthInBytes, Height;
} CUDA_MEMCPY2D;

typedef struct CUDA_MEMCPY3D_st {
	size_t srcXInBytes, srcY, srcZ, srcLOD;
	CUmemorytype srcMemoryType;
	const void *srcHost;
	CUdeviceptr srcDevice;
	CUarray srcArray;
	void *reserved0;
	size_t srcPitch, srcHeight;
	size_t dstXInBytes, dstY, dstZ, dstLOD;
	CUmemorytype dstMemoryType;
	void *dstHost;
	CUdeviceptr dstDevice;
	CUarray dstArray;
	void *reserved1;
	size_t dstPitch, dstHeight;
	size_t WidthInBytes, Height, Depth;
} CUDA_MEMCPY3D;

typedef enum CUmemPool_attribute_enum {
	CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES = 1,
	CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC = 2,
	CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES = 3,
	CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = 4,
	CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT = 5,
	CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH = 6,
	CU_MEMPOOL_ATTR_USED_MEM_CURRENT = 7,
	CU_MEMPOOL_ATTR_USED_MEM_HIGH = 8
} CUmemPool_attribute;

typedef struct CUipcMemHandle_st {
	char reserved[64];
} CUipcMemHandle;
#define CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS 0x1
typedef struct CUipcEventHandle_st {
	char reserved[64];
} CUipcEventHandle;
#define CU_EVENT_INTERPROCESS 0x4

typedef unsigned long long CUmemGenericAllocationHandle;
typedef struct CUmemLocation_st {
	int type; /* CU_MEM_LOCATION_TYPE_DEVICE */
	int id;
} CUmemLocation;
typedef struct CUmemAllocationProp_st {
	int type; /* CU_MEM_ALLOCATION_TYPE_PINNED */
	int requestedHandleTypes;
	CUmemLocation location;
	void *win32HandleMetaData;
	struct {
		unsigned char compressionType;
		unsigned char gpuDirectRDMACapable;
		unsigned short usage;
		unsigned char reserved[4];
	} allocFlags;
} CUmemAllocationProp;
typedef struct CUmemAccessDesc_st {
	CUmemLocation location;
	int flags; /* CU_MEM_ACCESS_FLAGS_PROT_* */
} CUmemAccessDesc;
#define CU_MEM_ALLOCATION_TYPE_PINNED 1
#define CU_MEM_LOCATION_TYPE_DEVICE 1
#define CU_MEM_ACCESS_FLAGS_PROT_READWRITE 3
#define CU_MEM_ALLOC_GRANULARITY_MINIMUM 0
#define CU_MEM_ALLOC_GRANULARITY_RECOMMENDED 1
#define CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED_ 704
#define CUDA_ERROR_PEER_ACCESS_NOT_ENABLED_ 705

typedef struct CUmemPoolProps_st {
	int allocType;
	int handleTypes;
	CUmemLocation location;
	void *win32SecurityAttributes;
	size_t maxSize;
	unsigned short usage;
	unsigned char reserved[54];
} CUmemPoolProps;

#define GF_MEMORY_FUNCS(X)                                                                                      \
	X(cuMemAllocPitch, GF_V, CUresult,                                                                         \
	  (CUdeviceptr * dptr, size_t *pitch, size_t width, size_t height, unsigned int elemSize))             \
	X(cuMemcpy2D, GF_V, CUresult, (const CUDA_MEMCPY2D *c))                                                     \
	X(cuMemcpy2DUnaligned, GF_V, CUresult, (const CUDA_MEMCPY2D *c))                                            \
	X(cuMemcpy2DAsync, GF_V, CUresult, (const CUDA_MEMCPY2D *c, CUstream s))                                    \
	X(cuMemcpy3D, GF_V, CUresult, (const CUDA_MEMCPY3D *c))                                                     \
	X(cuMemcpy3DAsync, GF_V, CUresult, (const CUDA_MEMCPY3D *c, CUstream s))                                    \
	X(cuMemsetD2D8, GF_V, CUresult, (CUdeviceptr dst, size_t pitch, unsigned char v, size_t w, size_t h))      \
	X(cuMemsetD2D16, GF_V, CUresult, (CUdeviceptr dst, size_t pitch, unsigned short v, size_t w, size_t h))    \
	X(cuMemsetD2D32, GF_V, CUresult, (CUdeviceptr dst, size_t pitch, unsigned int v, size_t w, size_t h))      \
	X(cuMemsetD2D8Async, GF_V, CUresult,                                                                       \
	  (CUdeviceptr dst, size_t pitch, unsigned char v, size_t w, size_t h, CUstream s))                    \
	X(cuMemsetD2D32Async, GF_V, CUresult,                                                                      \
	  (CUdeviceptr dst, size_t pitch, unsigned int v, size_t w, size_t h, CUstream s))                     \
	X(cuMemAllocAsync, GF_V, CUresult, (CUdeviceptr * dptr, size_t size, CUstream s))                           \
	X(cuMemAllocFromPoolAsync, GF_V, CUresult, (CUdeviceptr * dptr, size_t size, CUmemoryPool pool, CUstream s)) \
	X(cuMemFreeAsync, GF_V, CUresult, (CUdeviceptr dptr, CUstream s))                                           \
	X(cuDeviceGetDefaultMemPool, GF_V, CUresult, (CUmemoryPool * pool, CUdevice dev))                           \
	X(cuDeviceGetMemPool, GF_V, CUresult, (CUmemoryPool * pool, CUdevice dev))                                  \
	X(cuDeviceSetMemPool, GF_V, CUresult, (CUdevice dev, CUmemoryPool pool))                                    \
	X(cuMemPoolGetAttribute, GF_V, CUresult, (CUmemoryPool pool, CUmemPool_attribute attr, void *value))        \
	X(cuMemPoolSetAttribute, GF_V, CUresult, (CUmemoryPool pool, CUmemPool_attribute attr, void *value))        \
	X(cuMemPoolTrimTo, GF_V, CUresult, (CUmemoryPool pool, size_t keep))                                        \
	X(cuMemPoolCreate, GF_V, CUresult, (CUmemoryPool * pool, const CUmemPoolProps *props))                      \
	X(cuMemPoolDestroy, GF_V, CUresult, (CUmemoryPool pool))                                                    \
	X(cuMemAddressReserve, GF_V, CUresult,                                                                     \
	  (CUdeviceptr * ptr, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags))           \
	X(cuMemAddressFree, GF_V, CUresult, (CUdeviceptr ptr, size_t size))                                        \
	X(cuMemCreate, GF_V, CUresult,                                                                             \
	  (CUmemGenericAllocationHandle * h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags)) \
	X(cuMemRelease, GF_V, CUresult, (CUmemGenericAllocationHandle h))                                          \
	X(cuMemMap, GF_V, CUresult,                                                                                \
	  (CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle h, unsigned long long flags)) \
	X(cuMemUnmap, GF_V, CUresult, (CUdeviceptr ptr, size_t size))                                              \
	X(cuMemSetAccess, GF_V, CUresult, (CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)) \
	X(cuMemGetAllocationGranularity, GF_V, CUresult,                                                           \
	  (size_t * granularity, const CUmemAllocationProp *prop, int option))                                   \
	X(cuMemGetAllocationPropertiesFromHandle, GF_V, CUresult,                                                  \
	  (CUmemAllocationProp * prop, CUmemGenericAllocationHandle h))                                          \
	X(cuMemRetainAllocationHandle, GF_V, CUresult, (CUmemGenericAllocationHandle * h, void *addr))              \
	X(cuDeviceCanAccessPeer, GF_V, CUresult, (int *can, CUdevice dev, CUdevice peer))                            \
	X(cuCtxEnablePeerAccess, GF_V, CUresult, (CUcontext peer, unsigned int flags))                               \
	X(cuCtxDisablePeerAccess, GF_V, CUresult, (CUcontext peer))                                                  \
	X(cuMemcpyPeer, GF_V, CUresult, (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)) \
	X(cuMemcpyPeerAsync, GF_V, CUresult,                                                                       \
	  (CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n, CUstream s))                \
	X(cuIpcGetMemHandle, GF_V, CUresult, (CUipcMemHandle * h, CUdeviceptr p))                                     \
	X(cuIpcOpenMemHandle, GF_V, CUresult, (CUdeviceptr * p, CUipcMemHandle h, unsigned int flags))                \
	X(cuIpcCloseMemHandle, GF_V, CUresult, (CUdeviceptr p))                                                       \
	X(cuIpcGetEventHandle, GF_V, CUresult, (CUipcEventHandle * h, CUevent e))                                     \
	X(cuIpcOpenEventHandle, GF_V, CUresult, (CUevent * e, CUipcEventHandle h))

#define GF_FIELD(name, version, ret, params) ret(*name) params;
typedef struct gf_memory {
	GF_MEMORY_FUNCS(GF_FIELD)
} gf_memory;
#undef GF_FIELD

/* gf_resolve is cuGetProcAddress of name at version through d, or exits
 * with a message. */
static inline void *gf_resolve(gf_driver *d, const char *name, int version) {
	void *p = NULL;
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	CUresult r = d->cuGetProcAddress(name, &p, version, CU_GET_PROC_ADDRESS_DEFAULT, &st);
	if (r != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS || !p) {
		fprintf(stderr, "FAIL: cuGetProcAddress(%s) = %d, status %d\n", name, (int)r, (int)st);
		exit(1);
	}
	return p;
}

/* gf_load_memory resolves the memory families' entry points. */
static inline void gf_load_memory(gf_driver *d, gf_memory *m) {
	memset(m, 0, sizeof *m);
#define GF_RESOLVE(name, version, ret, params)                        \
	{                                                                 \
		void *p_ = gf_resolve(d, #name, version);                     \
		memcpy(&m->name, &p_, sizeof p_);                             \
	}
	GF_MEMORY_FUNCS(GF_RESOLVE)
#undef GF_RESOLVE
}
/* ---- end of the memory families ---- */

/* ==== execution families (graphs, host functions, stream memory
 * operations, occupancy): resolved apart from gf_driver, by gf_load_exec,
 * so that programs that do not use them need nothing more. ==== */

typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUgraphNode_st *CUgraphNode;
typedef void (*CUhostFn)(void *userData);
typedef void (*CUstreamCallback)(CUstream hStream, CUresult status, void *userData);
typedef size_t (*CUoccupancyB2DSize)(int blockSize);

#define CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED ((CUresult)900)
#define CUDA_ERROR_STREAM_CAPTURE_INVALIDATED ((CUresult)901)

typedef enum CUstreamCaptureMode_enum {
	CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
	CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
	CU_STREAM_CAPTURE_MODE_RELAXED = 2
} CUstreamCaptureMode;

typedef enum CUstreamCaptureStatus_enum {
	CU_STREAM_CAPTURE_STATUS_NONE = 0,
	CU_STREAM_CAPTURE_STATUS_ACTIVE = 1,
	CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2
} CUstreamCaptureStatus;

#define CU_STREAM_WAIT_VALUE_GEQ 0x0
#define CU_STREAM_WAIT_VALUE_EQ 0x1
#define CU_STREAM_WAIT_VALUE_AND 0x2
#define CU_STREAM_WAIT_VALUE_NOR 0x3
#define CU_STREAM_WRITE_VALUE_DEFAULT 0x0

typedef enum CUstreamBatchMemOpType_enum {
	CU_STREAM_MEM_OP_WAIT_VALUE_32 = 1,
	CU_STREAM_MEM_OP_WRITE_VALUE_32 = 2,
	CU_STREAM_MEM_OP_WAIT_VALUE_64 = 4,
	CU_STREAM_MEM_OP_WRITE_VALUE_64 = 5,
	CU_STREAM_MEM_OP_BARRIER = 6
} CUstreamBatchMemOpType;

/* One operation of cuStreamBatchMemOp: a union of six 64-bit words. */
typedef union CUstreamBatchMemOpParams_union {
	CUstreamBatchMemOpType operation;
	struct {
		CUstreamBatchMemOpType operation;
		CUdeviceptr address;
		union {
			unsigned int value;
			cuuint64_t value64;
		};
		unsigned int flags;
		CUdeviceptr alias;
	} waitValue, writeValue;
	cuuint64_t pad[6];
} CUstreamBatchMemOpParams;

typedef struct CUlinkState_st *CUlinkState;

typedef enum CUjit_option_enum {
	CU_JIT_ERROR_LOG_BUFFER = 5,
	CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
} CUjit_option;

typedef enum CUjitInputType_enum {
	CU_JIT_INPUT_CUBIN = 0,
	CU_JIT_INPUT_PTX = 1,
	CU_JIT_INPUT_FATBINARY = 2
} CUjitInputType;

#define CU_DEVICE_ATTRIBUTE_WARP_SIZE 10
#define CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR 39

#define GF_EXEC_FUNCS(X)                                                                                       \
	X(cuStreamBeginCapture, GF_V, CUresult, (CUstream s, CUstreamCaptureMode mode))                            \
	X(cuStreamEndCapture, GF_V, CUresult, (CUstream s, CUgraph * g))                                           \
	X(cuStreamIsCapturing, GF_V, CUresult, (CUstream s, CUstreamCaptureStatus * status))                       \
	X(cuStreamGetCaptureInfo, 11030, CUresult,                                                                 \
	  (CUstream s, CUstreamCaptureStatus * status, cuuint64_t * id, CUgraph * g, const CUgraphNode **deps,     \
	   size_t *ndeps))                                                                                         \
	X(cuGraphInstantiate, GF_V, CUresult, (CUgraphExec * exec, CUgraph g, unsigned long long flags))           \
	X(cuGraphLaunch, GF_V, CUresult, (CUgraphExec exec, CUstream s))                                           \
	X(cuGraphUpload, GF_V, CUresult, (CUgraphExec exec, CUstream s))                                           \
	X(cuGraphExecDestroy, GF_V, CUresult, (CUgraphExec exec))                                                  \
	X(cuGraphDestroy, GF_V, CUresult, (CUgraph g))                                                             \
	X(cuMemcpyDtoDAsync, GF_V, CUresult, (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s))             \
	X(cuLaunchHostFunc, GF_V, CUresult, (CUstream s, CUhostFn fn, void *data))                                 \
	X(cuStreamAddCallback, GF_V, CUresult, (CUstream s, CUstreamCallback cb, void *data, unsigned int flags))  \
	X(cuStreamWaitValue32, GF_V, CUresult, (CUstream s, CUdeviceptr addr, unsigned int v, unsigned int flags)) \
	X(cuStreamWaitValue64, GF_V, CUresult, (CUstream s, CUdeviceptr addr, cuuint64_t v, unsigned int flags))   \
	X(cuStreamWriteValue32, GF_V, CUresult, (CUstream s, CUdeviceptr addr, unsigned int v, unsigned int flags)) \
	X(cuStreamWriteValue64, GF_V, CUresult, (CUstream s, CUdeviceptr addr, cuuint64_t v, unsigned int flags))  \
	X(cuStreamBatchMemOp, GF_V, CUresult,                                                                      \
	  (CUstream s, unsigned int count, CUstreamBatchMemOpParams * ops, unsigned int flags))                    \
	X(cuOccupancyMaxActiveBlocksPerMultiprocessor, GF_V, CUresult,                                             \
	  (int *blocks, CUfunction f, int blockSize, size_t dynSmem))                                              \
	X(cuOccupancyMaxPotentialBlockSize, GF_V, CUresult,                                                        \
	  (int *minGrid, int *blockSize, CUfunction f, CUoccupancyB2DSize b2smem, size_t dynSmem, int limit))      \
	X(cuLinkCreate, GF_V, CUresult, (unsigned int n, CUjit_option * opts, void **vals, CUlinkState * state))   \
	X(cuLinkAddData, GF_V, CUresult,                                                                           \
	  (CUlinkState state, CUjitInputType type, void *data, size_t size, const char *name, unsigned int n,      \
	   CUjit_option *opts, void **vals))                                                                       \
	X(cuLinkComplete, GF_V, CUresult, (CUlinkState state, void **cubin, size_t *size))                         \
	X(cuLinkDestroy, GF_V, CUresult, (CUlinkState state))

#define GF_FIELD(name, version, ret, params) ret(*name) params;
typedef struct gf_exec {
	GF_EXEC_FUNCS(GF_FIELD)
} gf_exec;
#undef GF_FIELD

/* gf_load_exec resolves the execution families through d's
 * cuGetProcAddress; it exits with a message on failure. */
static inline void gf_load_exec(gf_exec *x, gf_driver *d) {
#define GF_RESOLVE_EXEC(name, version, ret, params)                   \
	{                                                                 \
		void *p_ = gf_resolve(d, #name, version);                     \
		memcpy(&x->name, &p_, sizeof p_);                             \
	}
	GF_EXEC_FUNCS(GF_RESOLVE_EXEC)
#undef GF_RESOLVE_EXEC
}
/* ==== end of the execution families ==== */


#endif /* GPUFABRIC_CUDA_H */
