// gf.h: the C side of the interposer. Types of the CUDA driver API and NVML
// with their real ABI (written from the public API reference), the library's
// state that the C entry points check before entering Go, contexts (kept in
// C: a current context per thread), and the tracing hooks.
//
// Only declarations and static inline functions live here: cgo copies the
// preambles that include this file into _cgo_export.h.
#ifndef GF_H
#define GF_H

#include <stddef.h>
#include <stdint.h>

// ---- CUDA driver API types ----

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef unsigned long long cuuint64_t;
typedef unsigned int cuuint32_t;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUlib_st *CUlibrary;
typedef struct CUkern_st *CUkernel;
typedef struct CUevent_st *CUevent;
typedef struct CUstream_st *CUstream;
typedef struct CUgreenCtx_st *CUgreenCtx;
typedef struct CUuuid_st {
	char bytes[16];
} CUuuid;

typedef struct CUlaunchAttribute_st {
	int id;
	char pad[4];
	char value[64];
} CUlaunchAttribute;

typedef struct CUlaunchConfig_st {
	unsigned int gridDimX, gridDimY, gridDimZ;
	unsigned int blockDimX, blockDimY, blockDimZ;
	unsigned int sharedMemBytes;
	CUstream hStream;
	CUlaunchAttribute *attrs;
	unsigned int numAttrs;
} CUlaunchConfig;

// CUresult values the C side produces.
enum {
	GF_SUCCESS = 0,
	GF_ERR_INVALID_VALUE = 1,
	GF_ERR_OUT_OF_MEMORY = 2,
	GF_ERR_NOT_INITIALIZED = 3,
	GF_ERR_DEINITIALIZED = 4,
	GF_ERR_NO_DEVICE = 100,
	GF_ERR_INVALID_DEVICE = 101,
	GF_ERR_INVALID_CONTEXT = 201,
	GF_ERR_INVALID_HANDLE = 400,
	GF_ERR_NOT_FOUND = 500,
	GF_ERR_NOT_SUPPORTED = 801,
};

// Special stream handles of the driver API.
#define GF_STREAM_LEGACY ((uintptr_t)0x1)
#define GF_STREAM_PER_THREAD ((uintptr_t)0x2)

// ---- NVML types ----

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlMemory_st {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct nvmlUtilization_st {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct nvmlPciInfo_st {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

enum {
	GF_NVML_SUCCESS = 0,
	GF_NVML_ERROR_UNINITIALIZED = 1,
	GF_NVML_ERROR_INVALID_ARGUMENT = 2,
	GF_NVML_ERROR_NOT_SUPPORTED = 3,
	GF_NVML_ERROR_NOT_FOUND = 6,
	GF_NVML_ERROR_INSUFFICIENT_SIZE = 7,
	GF_NVML_ERROR_DRIVER_NOT_LOADED = 9,
	GF_NVML_ERROR_GPU_IS_LOST = 15,
	GF_NVML_ERROR_UNKNOWN = 999,
};

// ---- library state ----

#define GF_EXPORT __attribute__((visibility("default")))
#define GF_LIKELY(x) __builtin_expect(!!(x), 1)
#define GF_UNLIKELY(x) __builtin_expect(!!(x), 0)

// gf_state says whether calls may enter Go.
enum {
	GF_STATE_UNINIT = 0, // cuInit has not succeeded
	GF_STATE_READY = 1,  // connected
	GF_STATE_GONE = 2,   // the session ended: CUDA_ERROR_DEINITIALIZED
};
extern volatile int gf_state;
// gf_forked is set in a child forked after this library was loaded: the Go
// runtime of the parent is unusable there (its threads did not survive), so
// nothing may enter Go.
extern volatile int gf_forked;
extern int gf_trace_fd;       // GPUFABRIC_TRACE's file, -1 when off
extern int gf_device_count;   // devices of the session, set by cuInit
extern int gf_driver_version; // the server's, set by cuInit

void gf_set_state(int state);
void gf_set_devices(int count, int driver_version);
int gf_in_child(void);
CUresult gf_refuse(const char *name);
uint64_t gf_now_ns(void);
void gf_trace_call(const char *name, int result, uint64_t t0);
void gf_trace_proc(const char *name, int result, uint64_t t0, const char *symbol, int version, cuuint64_t flags, int status);
void gf_trace_table(int result, uint64_t t0, const CUuuid *id);
void gf_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// GF_TRACED returns expr, recording the call when tracing is on.
#define GF_TRACED(name, expr)                                \
	do {                                                     \
		if (GF_LIKELY(gf_trace_fd < 0))                      \
			return (expr);                                   \
		uint64_t t0_ = gf_now_ns();                          \
		int r_ = (expr);                                     \
		gf_trace_call(name, r_, t0_);                        \
		return r_;                                           \
	} while (0)

// GF_CALL is the entry of a call that needs an initialised, live session.
#define GF_CALL(name, expr)                                  \
	do {                                                     \
		if (GF_UNLIKELY(gf_state != GF_STATE_READY))         \
			return gf_refuse(name);                          \
		GF_TRACED(name, expr);                               \
	} while (0)

// GF_ANYTIME is the entry of a call that works before cuInit too.
#define GF_ANYTIME(name, expr)                               \
	do {                                                     \
		if (GF_UNLIKELY(gf_forked))                          \
			return gf_refuse(name);                          \
		GF_TRACED(name, expr);                               \
	} while (0)

// ---- contexts ----
//
// A CUcontext handle is (generation << 16 | slot) << 4 | 1: small, never
// NULL, never a valid host pointer, and stale handles of a reused slot do not
// match. Slots 1..GF_MAX_DEVICES are the devices' primary contexts.

#define GF_MAX_DEVICES 64
#define GF_MAX_CTX 4096
#define GF_CTX_STACK 64

struct gf_ctx {
	volatile int used;
	int dev;
	unsigned int flags;
	unsigned int gen;
	unsigned long long id;
};
extern struct gf_ctx gf_ctxs[GF_MAX_CTX];
extern __thread uintptr_t gf_tls_stack[GF_CTX_STACK];
extern __thread int gf_tls_depth;

static inline int gf_ctx_slot(uintptr_t h) {
	if ((h & 0xF) != 1)
		return -1;
	uintptr_t slot = (h >> 4) & 0xFFFF;
	if (slot == 0 || slot >= GF_MAX_CTX)
		return -1;
	struct gf_ctx *c = &gf_ctxs[slot];
	if (!__atomic_load_n(&c->used, __ATOMIC_ACQUIRE) || c->gen != (unsigned int)(h >> 20))
		return -1;
	return (int)slot;
}

// gf_ctx_dev is the device of a context handle, or -1.
static inline int gf_ctx_dev(uintptr_t h) {
	int s = gf_ctx_slot(h);
	return s < 0 ? -1 : gf_ctxs[s].dev;
}

// gf_cur_ctx is the calling thread's current context, or 0.
static inline uintptr_t gf_cur_ctx(void) {
	int d = gf_tls_depth;
	if (d <= 0)
		return 0;
	uintptr_t h = gf_tls_stack[d - 1];
	return gf_ctx_slot(h) < 0 ? 0 : h;
}

#define GF_CUR_CTX gf_cur_ctx()
#define GF_CUR_DEV gf_ctx_dev(gf_cur_ctx())

uintptr_t gf_primary_ctx(int dev);

// ---- host memory, for Go ----
void *gf_host_alloc(size_t size);
void gf_host_free(void *p);

// ---- the symbol table of stubs_gen.c ----
extern void *const gf_symbols[];
extern const int gf_symbol_count;

// ---- JIT option and launch helpers used from Go ----
static inline void *gf_ptr_at(void **array, int i) { return array[i]; }

#endif
