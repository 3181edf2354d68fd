//go:build linux && cgo

// gf_core.c: the parts of the interposer that never need the network:
// library state and fork safety, tracing, the stubs' handler, error strings,
// contexts (a current context per thread, in thread-local storage),
// cuGetProcAddress and cuGetExportTable.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_cgo_export.h"
#include "gf.h"

volatile int gf_state = GF_STATE_UNINIT;
volatile int gf_forked = 0;
int gf_trace_fd = -1;
int gf_device_count = 0;
int gf_driver_version = 0;

static pid_t gf_load_pid;
static int gf_log_quiet;

struct gf_ctx gf_ctxs[GF_MAX_CTX];
__thread uintptr_t gf_tls_stack[GF_CTX_STACK];
__thread int gf_tls_depth;

// In a child the state leaves READY too, so every GF_CALL entry refuses
// with its one existing branch.
static void gf_after_fork_child(void) {
	gf_forked = 1;
	gf_state = GF_STATE_UNINIT;
}

__attribute__((constructor)) static void gf_load(void) {
	gf_load_pid = getpid();
	pthread_atfork(NULL, NULL, gf_after_fork_child);
	const char *path = getenv("GPUFABRIC_TRACE");
	if (path && *path) {
		gf_trace_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (gf_trace_fd < 0)
			fprintf(stderr, "gpufabric: GPUFABRIC_TRACE=%s: %s; tracing off\n", path, strerror(errno));
	}
	const char *log = getenv("GPUFABRIC_LOG");
	gf_log_quiet = log && (!strcmp(log, "0") || !strcmp(log, "quiet") || !strcmp(log, "off"));
}

// gf_unload runs at exit (after the application's atexit handlers, the
// CUDA runtime's teardown among them) and at dlclose: the session says
// Goodbye and waits, bounded, for the server to free what it held, so a
// program's capacity is free once its exit is seen. The trace records it
// as "(exit)". A forked child never owned the session: it only drops its
// copy.
__attribute__((destructor)) static void gf_unload(void) {
	if (gf_in_child())
		return;
	uint64_t t0 = gf_now_ns();
	struct gfgo_exit_return r = gfgo_exit();
	if (r.r0 && gf_trace_fd >= 0)
		gf_trace_call("(exit)", r.r1, t0);
}

// gf_in_child reports whether this is a child forked after the library was
// loaded: the atfork flag, and the pid for forks that bypassed atfork.
int gf_in_child(void) { return gf_forked || getpid() != gf_load_pid; }

void gf_set_state(int state) { __atomic_store_n(&gf_state, state, __ATOMIC_RELEASE); }

void gf_log(const char *fmt, ...) {
	if (gf_log_quiet)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w = write(2, buf, n);
	(void)w;
}

CUresult gf_refuse(const char *name) {
	CUresult r = GF_ERR_NOT_INITIALIZED;
	if (!gf_forked && gf_state == GF_STATE_GONE)
		r = GF_ERR_DEINITIALIZED;
	if (gf_trace_fd >= 0)
		gf_trace_call(name, r, gf_now_ns());
	return r;
}

// ---- tracing ----

uint64_t gf_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void trace_write(const char *line, int n) {
	if (n <= 0)
		return;
	// O_APPEND makes each line one atomic write, whatever the thread.
	ssize_t w = write(gf_trace_fd, line, (size_t)n);
	(void)w;
}

void gf_trace_call(const char *name, int result, uint64_t t0) {
	char line[256];
	int n = snprintf(line, sizeof line, "{\"name\":\"%s\",\"result\":%d,\"ns\":%llu,\"tid\":%d}\n", name, result,
	                 (unsigned long long)(gf_now_ns() - t0), (int)gettid());
	if (n >= (int)sizeof line)
		n = sizeof line - 1;
	trace_write(line, n);
}

// json_str copies s into dst as the inside of a JSON string.
static void json_str(char *dst, size_t cap, const char *s) {
	size_t j = 0;
	for (; s && *s && j + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)c;
		} else if (c < 0x20) {
			j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", c);
		} else {
			dst[j++] = (char)c;
		}
	}
	dst[j] = 0;
}

void gf_trace_proc(const char *name, int result, uint64_t t0, const char *symbol, int version, cuuint64_t flags,
                   int status) {
	char sym[160], line[512];
	json_str(sym, sizeof sym, symbol);
	int n = snprintf(line, sizeof line,
	                 "{\"name\":\"%s\",\"result\":%d,\"ns\":%llu,\"tid\":%d,\"symbol\":\"%s\",\"version\":%d,"
	                 "\"flags\":%llu,\"status\":%d}\n",
	                 name, result, (unsigned long long)(gf_now_ns() - t0), (int)gettid(), sym, version,
	                 (unsigned long long)flags, status);
	if (n >= (int)sizeof line)
		n = sizeof line - 1;
	trace_write(line, n);
}

void gf_trace_table(int result, uint64_t t0, const CUuuid *id) {
	char hex[33] = "";
	if (id)
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", (unsigned char)id->bytes[i]);
	char line[256];
	int n = snprintf(line, sizeof line, "{\"name\":\"cuGetExportTable\",\"result\":%d,\"ns\":%llu,\"tid\":%d,\"uuid\":\"%s\"}\n",
	                 result, (unsigned long long)(gf_now_ns() - t0), (int)gettid(), hex);
	trace_write(line, n);
}

// ---- stubs ----

extern const int gf_stub_count;
extern const char *const gf_stub_names[];
static unsigned char gf_stub_logged[2048];

int gf_stub(int index) {
	const char *name = index >= 0 && index < gf_stub_count ? gf_stub_names[index] : "?";
	if (GF_UNLIKELY(gf_forked))
		return gf_refuse(name);
	if (index >= 0 && index < (int)sizeof gf_stub_logged &&
	    !__atomic_exchange_n(&gf_stub_logged[index], 1, __ATOMIC_RELAXED))
		gf_log("gpufabric: %s is not supported by the gpufabric interposer (CUDA_ERROR_NOT_SUPPORTED)", name);
	if (gf_trace_fd >= 0)
		gf_trace_call(name, GF_ERR_NOT_SUPPORTED, gf_now_ns());
	return GF_ERR_NOT_SUPPORTED;
}

// ---- error names and strings ----

struct gf_err {
	int code;
	const char *name, *text;
};

static const struct gf_err gf_errs[] = {
	{0, "CUDA_SUCCESS", "no error"},
	{1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
	{2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
	{3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
	{4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
	{5, "CUDA_ERROR_PROFILER_DISABLED", "profiler disabled while using external profiling tool"},
	{6, "CUDA_ERROR_PROFILER_NOT_INITIALIZED", "profiler not initialized"},
	{7, "CUDA_ERROR_PROFILER_ALREADY_STARTED", "profiler already started"},
	{8, "CUDA_ERROR_PROFILER_ALREADY_STOPPED", "profiler already stopped"},
	{34, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
	{46, "CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"},
	{100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
	{101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
	{102, "CUDA_ERROR_DEVICE_NOT_LICENSED", "device doesn't have valid Grid license"},
	{200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
	{201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
	{202, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT", "context already current"},
	{205, "CUDA_ERROR_MAP_FAILED", "mapping of buffer object failed"},
	{206, "CUDA_ERROR_UNMAP_FAILED", "unmapping of buffer object failed"},
	{207, "CUDA_ERROR_ARRAY_IS_MAPPED", "array is mapped"},
	{208, "CUDA_ERROR_ALREADY_MAPPED", "resource already mapped"},
	{209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"},
	{210, "CUDA_ERROR_ALREADY_ACQUIRED", "resource already acquired"},
	{211, "CUDA_ERROR_NOT_MAPPED", "resource not mapped"},
	{212, "CUDA_ERROR_NOT_MAPPED_AS_ARRAY", "resource not mapped as array"},
	{213, "CUDA_ERROR_NOT_MAPPED_AS_POINTER", "resource not mapped as pointer"},
	{214, "CUDA_ERROR_ECC_UNCORRECTABLE", "uncorrectable ECC error encountered"},
	{215, "CUDA_ERROR_UNSUPPORTED_LIMIT", "limit is not supported on this architecture"},
	{216, "CUDA_ERROR_CONTEXT_ALREADY_IN_USE", "exclusive-thread device already in use by a different thread"},
	{217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED", "peer access is not supported between these two devices"},
	{218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
	{219, "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT", "invalid OpenGL or DirectX context"},
	{220, "CUDA_ERROR_NVLINK_UNCORRECTABLE", "uncorrectable NVLink error detected during the execution"},
	{221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND", "PTX JIT compiler library not found"},
	{222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."},
	{223, "CUDA_ERROR_JIT_COMPILATION_DISABLED", "PTX JIT compilation was disabled"},
	{224, "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY", "the provided execution affinity is not supported"},
	{225, "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC", "the provided PTX contains unsupported call to cudaDeviceSynchronize"},
	{226, "CUDA_ERROR_CONTAINED", "an exception occurred on the device that is now contained by the GPU's error containment capability"},
	{300, "CUDA_ERROR_INVALID_SOURCE", "device kernel image is invalid"},
	{301, "CUDA_ERROR_FILE_NOT_FOUND", "file not found"},
	{302, "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND", "shared object symbol not found"},
	{303, "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED", "shared object initialization failed"},
	{304, "CUDA_ERROR_OPERATING_SYSTEM", "OS call failed or operation not supported on this OS"},
	{400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
	{401, "CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"},
	{402, "CUDA_ERROR_LOSSY_QUERY", "attempted introspection would be semantically lossy"},
	{500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
	{600, "CUDA_ERROR_NOT_READY", "device not ready"},
	{700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
	{701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
	{702, "CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"},
	{703, "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING", "launch uses incompatible texturing mode"},
	{704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED", "peer access is already enabled"},
	{705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED", "peer access has not been enabled"},
	{708, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE", "cannot set while device is active in this process"},
	{709, "CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"},
	{710, "CUDA_ERROR_ASSERT", "device-side assert triggered"},
	{711, "CUDA_ERROR_TOO_MANY_PEERS", "peer mapping resources exhausted"},
	{712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"},
	{713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"},
	{714, "CUDA_ERROR_HARDWARE_STACK_ERROR", "hardware stack error"},
	{715, "CUDA_ERROR_ILLEGAL_INSTRUCTION", "an illegal instruction was encountered"},
	{716, "CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"},
	{717, "CUDA_ERROR_INVALID_ADDRESS_SPACE", "operation not supported on global/shared address space"},
	{718, "CUDA_ERROR_INVALID_PC", "invalid program counter"},
	{719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
	{720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE", "too many blocks in cooperative launch"},
	{800, "CUDA_ERROR_NOT_PERMITTED", "operation not permitted"},
	{801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
	{802, "CUDA_ERROR_SYSTEM_NOT_READY", "system not yet initialized"},
	{803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "system has unsupported display driver / cuda driver combination"},
	{804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", "forward compatibility was attempted on non supported HW"},
	{805, "CUDA_ERROR_MPS_CONNECTION_FAILED", "MPS client failed to connect to the MPS control daemon or the MPS server"},
	{806, "CUDA_ERROR_MPS_RPC_FAILURE", "the remote procedural call between the MPS server and the MPS client failed"},
	{807, "CUDA_ERROR_MPS_SERVER_NOT_READY", "MPS server is not ready to accept new MPS client requests"},
	{808, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED", "the hardware resources required to create MPS client have been exhausted"},
	{809, "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED", "the hardware resources required to support device connections have been exhausted"},
	{810, "CUDA_ERROR_MPS_CLIENT_TERMINATED", "the MPS client has been terminated by the server"},
	{811, "CUDA_ERROR_CDP_NOT_SUPPORTED", "is using CUDA Dynamic Parallelism, but the current configuration does not support it"},
	{812, "CUDA_ERROR_CDP_VERSION_MISMATCH", "unsupported interaction between different versions of CUDA Dynamic Parallelism"},
	{900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"},
	{901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"},
	{902, "CUDA_ERROR_STREAM_CAPTURE_MERGE", "operation would result in a merge of separate capture sequences"},
	{903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED", "capture was not ended in the same stream as it began"},
	{904, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED", "capturing stream has unjoined work"},
	{905, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION", "dependency created on uncaptured work in another stream"},
	{906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT", "operation would make the legacy stream depend on a capturing blocking stream"},
	{907, "CUDA_ERROR_CAPTURED_EVENT", "operation not permitted on an event last recorded in a capturing stream"},
	{908, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD", "attempt to terminate a thread-local capture sequence from another thread"},
	{909, "CUDA_ERROR_TIMEOUT", "wait operation timed out"},
	{910, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE", "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update"},
	{911, "CUDA_ERROR_EXTERNAL_DEVICE", "an async error has occurred in external entity outside of CUDA"},
	{912, "CUDA_ERROR_INVALID_CLUSTER_SIZE", "a kernel launch error has occurred due to cluster misconfiguration"},
	{913, "CUDA_ERROR_FUNCTION_NOT_LOADED", "the function handle is not loaded when calling an API that requires a loaded function"},
	{914, "CUDA_ERROR_INVALID_RESOURCE_TYPE", "one or more resources passed in are not valid resource types for the operation"},
	{915, "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION", "one or more resources are insufficient or non-applicable for the operation"},
	{999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

static const struct gf_err *find_err(CUresult code) {
	for (size_t i = 0; i < sizeof gf_errs / sizeof gf_errs[0]; i++)
		if (gf_errs[i].code == code)
			return &gf_errs[i];
	return NULL;
}

static CUresult error_name(CUresult error, const char **pStr, int text) {
	if (!pStr)
		return GF_ERR_INVALID_VALUE;
	const struct gf_err *e = find_err(error);
	if (!e) {
		*pStr = NULL;
		return GF_ERR_INVALID_VALUE;
	}
	*pStr = text ? e->text : e->name;
	return GF_SUCCESS;
}

// The error strings are pure C: they work before cuInit and in a forked
// child, as applications print errors from anywhere.
GF_EXPORT CUresult cuGetErrorName(CUresult error, const char **pStr) {
	GF_TRACED("cuGetErrorName", error_name(error, pStr, 0));
}

GF_EXPORT CUresult cuGetErrorString(CUresult error, const char **pStr) {
	GF_TRACED("cuGetErrorString", error_name(error, pStr, 1));
}

// ---- devices and contexts ----

static pthread_mutex_t gf_ctx_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long gf_ctx_next_id;
static int gf_primary_ref[GF_MAX_DEVICES];
static unsigned int gf_primary_flags[GF_MAX_DEVICES];

static uintptr_t ctx_handle(int slot) {
	return (uintptr_t)gf_ctxs[slot].gen << 20 | (uintptr_t)slot << 4 | 1;
}

uintptr_t gf_primary_ctx(int dev) {
	if (dev < 0 || dev >= gf_device_count)
		return 0;
	return ctx_handle(dev + 1);
}

void gf_set_devices(int count, int driver_version) {
	if (count > GF_MAX_DEVICES)
		count = GF_MAX_DEVICES;
	pthread_mutex_lock(&gf_ctx_mu);
	for (int d = 0; d < count; d++) {
		struct gf_ctx *c = &gf_ctxs[d + 1];
		if (!c->used) {
			c->dev = d;
			c->gen = 1;
			c->id = ++gf_ctx_next_id;
			__atomic_store_n(&c->used, 1, __ATOMIC_RELEASE);
		}
	}
	gf_device_count = count;
	gf_driver_version = driver_version;
	pthread_mutex_unlock(&gf_ctx_mu);
}

static int valid_dev(CUdevice dev) { return dev >= 0 && dev < gf_device_count; }

static CUresult device_get(CUdevice *device, int ordinal) {
	if (!device)
		return GF_ERR_INVALID_VALUE;
	if (!valid_dev(ordinal))
		return GF_ERR_INVALID_DEVICE;
	*device = ordinal;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal) { GF_CALL("cuDeviceGet", device_get(device, ordinal)); }

static CUresult device_get_count(int *count) {
	if (!count)
		return GF_ERR_INVALID_VALUE;
	*count = gf_device_count;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDeviceGetCount(int *count) { GF_CALL("cuDeviceGetCount", device_get_count(count)); }

static CUresult push_ctx(uintptr_t h) {
	if (gf_tls_depth >= GF_CTX_STACK)
		return GF_ERR_OUT_OF_MEMORY;
	gf_tls_stack[gf_tls_depth++] = h;
	return GF_SUCCESS;
}

static CUresult ctx_create(CUcontext *pctx, unsigned int flags, CUdevice dev) {
	if (!pctx)
		return GF_ERR_INVALID_VALUE;
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	if (gf_tls_depth >= GF_CTX_STACK)
		return GF_ERR_OUT_OF_MEMORY;
	pthread_mutex_lock(&gf_ctx_mu);
	int slot = -1;
	for (int s = GF_MAX_DEVICES + 1; s < GF_MAX_CTX; s++) {
		if (!gf_ctxs[s].used) {
			slot = s;
			break;
		}
	}
	if (slot < 0) {
		pthread_mutex_unlock(&gf_ctx_mu);
		return GF_ERR_OUT_OF_MEMORY;
	}
	struct gf_ctx *c = &gf_ctxs[slot];
	c->dev = dev;
	c->flags = flags;
	c->gen++;
	c->id = ++gf_ctx_next_id;
	__atomic_store_n(&c->used, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&gf_ctx_mu);
	uintptr_t h = ctx_handle(slot);
	*pctx = (CUcontext)h;
	return push_ctx(h);
}

GF_EXPORT CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev) {
	GF_CALL("cuCtxCreate", ctx_create(pctx, flags, dev));
}

GF_EXPORT CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev) {
	GF_CALL("cuCtxCreate_v2", ctx_create(pctx, flags, dev));
}

// The execution-affinity parameters of _v3 and the creation parameters of
// _v4 (CUDA 12.5) ask for things a remote share cannot honour exactly; the
// context is created all the same, as the driver does when it ignores them.
GF_EXPORT CUresult cuCtxCreate_v3(CUcontext *pctx, void *paramsArray, int numParams, unsigned int flags, CUdevice dev) {
	(void)paramsArray;
	(void)numParams;
	GF_CALL("cuCtxCreate_v3", ctx_create(pctx, flags, dev));
}

GF_EXPORT CUresult cuCtxCreate_v4(CUcontext *pctx, void *ctxCreateParams, unsigned int flags, CUdevice dev) {
	(void)ctxCreateParams;
	GF_CALL("cuCtxCreate_v4", ctx_create(pctx, flags, dev));
}

static void cls_drop_ctx(uintptr_t ctx);

static CUresult ctx_destroy(CUcontext ctx) {
	uintptr_t h = (uintptr_t)ctx;
	int slot = gf_ctx_slot(h);
	if (slot < 0 || slot <= GF_MAX_DEVICES)
		return GF_ERR_INVALID_CONTEXT;
	int dev = gf_ctxs[slot].dev;
	CUresult r = gfgo_ctxRelease(h, dev);
	cls_drop_ctx(h);
	pthread_mutex_lock(&gf_ctx_mu);
	__atomic_store_n(&gf_ctxs[slot].used, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&gf_ctx_mu);
	if (gf_tls_depth > 0 && gf_tls_stack[gf_tls_depth - 1] == h)
		gf_tls_depth--;
	return r;
}

GF_EXPORT CUresult cuCtxDestroy(CUcontext ctx) { GF_CALL("cuCtxDestroy", ctx_destroy(ctx)); }
GF_EXPORT CUresult cuCtxDestroy_v2(CUcontext ctx) { GF_CALL("cuCtxDestroy_v2", ctx_destroy(ctx)); }

static CUresult ctx_push(CUcontext ctx) {
	uintptr_t h = (uintptr_t)ctx;
	if (gf_ctx_slot(h) < 0)
		return GF_ERR_INVALID_CONTEXT;
	return push_ctx(h);
}

GF_EXPORT CUresult cuCtxPushCurrent(CUcontext ctx) { GF_CALL("cuCtxPushCurrent", ctx_push(ctx)); }
GF_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext ctx) { GF_CALL("cuCtxPushCurrent_v2", ctx_push(ctx)); }

static CUresult ctx_pop(CUcontext *pctx) {
	if (gf_tls_depth <= 0)
		return GF_ERR_INVALID_CONTEXT;
	uintptr_t h = gf_tls_stack[--gf_tls_depth];
	if (pctx)
		*pctx = (CUcontext)h;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxPopCurrent(CUcontext *pctx) { GF_CALL("cuCtxPopCurrent", ctx_pop(pctx)); }
GF_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext *pctx) { GF_CALL("cuCtxPopCurrent_v2", ctx_pop(pctx)); }

static CUresult ctx_set_current(CUcontext ctx) {
	uintptr_t h = (uintptr_t)ctx;
	if (h == 0) {
		if (gf_tls_depth > 0)
			gf_tls_depth--;
		return GF_SUCCESS;
	}
	if (gf_ctx_slot(h) < 0)
		return GF_ERR_INVALID_CONTEXT;
	if (gf_tls_depth == 0)
		return push_ctx(h);
	gf_tls_stack[gf_tls_depth - 1] = h;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) { GF_CALL("cuCtxSetCurrent", ctx_set_current(ctx)); }

static CUresult ctx_get_current(CUcontext *pctx) {
	if (!pctx)
		return GF_ERR_INVALID_VALUE;
	*pctx = (CUcontext)gf_cur_ctx();
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetCurrent(CUcontext *pctx) { GF_CALL("cuCtxGetCurrent", ctx_get_current(pctx)); }

static CUresult ctx_get_device(CUdevice *device) {
	if (!device)
		return GF_ERR_INVALID_VALUE;
	int dev = GF_CUR_DEV;
	if (dev < 0)
		return GF_ERR_INVALID_CONTEXT;
	*device = dev;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetDevice(CUdevice *device) { GF_CALL("cuCtxGetDevice", ctx_get_device(device)); }

static CUresult ctx_get_flags(unsigned int *flags) {
	if (!flags)
		return GF_ERR_INVALID_VALUE;
	int slot = gf_ctx_slot(gf_cur_ctx());
	if (slot < 0)
		return GF_ERR_INVALID_CONTEXT;
	*flags = slot <= GF_MAX_DEVICES ? gf_primary_flags[slot - 1] : gf_ctxs[slot].flags;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetFlags(unsigned int *flags) { GF_CALL("cuCtxGetFlags", ctx_get_flags(flags)); }

static CUresult ctx_set_flags(unsigned int flags) {
	int slot = gf_ctx_slot(gf_cur_ctx());
	if (slot < 0)
		return GF_ERR_INVALID_CONTEXT;
	if (slot <= GF_MAX_DEVICES)
		gf_primary_flags[slot - 1] = flags;
	else
		gf_ctxs[slot].flags = flags;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxSetFlags(unsigned int flags) { GF_CALL("cuCtxSetFlags", ctx_set_flags(flags)); }

static CUresult ctx_get_id(CUcontext ctx, unsigned long long *id) {
	if (!id)
		return GF_ERR_INVALID_VALUE;
	uintptr_t h = ctx ? (uintptr_t)ctx : gf_cur_ctx();
	int slot = gf_ctx_slot(h);
	if (slot < 0)
		return GF_ERR_INVALID_CONTEXT;
	*id = gf_ctxs[slot].id;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId) { GF_CALL("cuCtxGetId", ctx_get_id(ctx, ctxId)); }

static CUresult ctx_get_api_version(CUcontext ctx, unsigned int *version) {
	if (!version)
		return GF_ERR_INVALID_VALUE;
	uintptr_t h = ctx ? (uintptr_t)ctx : gf_cur_ctx();
	if (gf_ctx_slot(h) < 0)
		return GF_ERR_INVALID_CONTEXT;
	*version = 3020; // every context since CUDA 3.2 reports this
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version) {
	GF_CALL("cuCtxGetApiVersion", ctx_get_api_version(ctx, version));
}

static CUresult ctx_synchronize(void) {
	int dev = GF_CUR_DEV;
	if (dev < 0)
		return GF_ERR_INVALID_CONTEXT;
	return gfgo_ctxSynchronize(dev);
}

GF_EXPORT CUresult cuCtxSynchronize(void) { GF_CALL("cuCtxSynchronize", ctx_synchronize()); }

// Priorities as a current GPU reports them: 0 is the default and lowest,
// -5 the highest. Streams carry their priority to the server.
static CUresult priority_range(int *least, int *greatest) {
	if (gf_cur_ctx() == 0)
		return GF_ERR_INVALID_CONTEXT;
	if (least)
		*least = 0;
	if (greatest)
		*greatest = -5;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority) {
	GF_CALL("cuCtxGetStreamPriorityRange", priority_range(leastPriority, greatestPriority));
}

// Limits: the values the driver reports by default; setting one is accepted
// and remembered per process (the server's device keeps its own).
static size_t gf_limits[8] = {1024, 1 << 20, 8 << 20, 2, 2048, 0, 0, 0};

static CUresult ctx_get_limit(size_t *value, int limit) {
	if (!value)
		return GF_ERR_INVALID_VALUE;
	if (gf_cur_ctx() == 0)
		return GF_ERR_INVALID_CONTEXT;
	if (limit < 0 || limit >= 8)
		return 215; // CUDA_ERROR_UNSUPPORTED_LIMIT
	*value = gf_limits[limit];
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxGetLimit(size_t *pvalue, int limit) { GF_CALL("cuCtxGetLimit", ctx_get_limit(pvalue, limit)); }

static CUresult ctx_set_limit(int limit, size_t value) {
	if (gf_cur_ctx() == 0)
		return GF_ERR_INVALID_CONTEXT;
	if (limit < 0 || limit >= 8)
		return 215;
	gf_limits[limit] = value;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuCtxSetLimit(int limit, size_t value) { GF_CALL("cuCtxSetLimit", ctx_set_limit(limit, value)); }

static int gf_cache_config;

static CUresult ctx_get_int(int *dst, int value) {
	if (!dst)
		return GF_ERR_INVALID_VALUE;
	if (gf_cur_ctx() == 0)
		return GF_ERR_INVALID_CONTEXT;
	*dst = value;
	return GF_SUCCESS;
}

static CUresult ctx_accept(void) { return gf_cur_ctx() == 0 ? GF_ERR_INVALID_CONTEXT : GF_SUCCESS; }

GF_EXPORT CUresult cuCtxGetCacheConfig(int *pconfig) { GF_CALL("cuCtxGetCacheConfig", ctx_get_int(pconfig, gf_cache_config)); }

GF_EXPORT CUresult cuCtxSetCacheConfig(int config) {
	gf_cache_config = config;
	GF_CALL("cuCtxSetCacheConfig", ctx_accept());
}

GF_EXPORT CUresult cuCtxGetSharedMemConfig(int *pConfig) {
	GF_CALL("cuCtxGetSharedMemConfig", ctx_get_int(pConfig, 1)); // four-byte banks
}

GF_EXPORT CUresult cuCtxSetSharedMemConfig(int config) {
	(void)config;
	GF_CALL("cuCtxSetSharedMemConfig", ctx_accept());
}

GF_EXPORT CUresult cuCtxResetPersistingL2Cache(void) { GF_CALL("cuCtxResetPersistingL2Cache", ctx_accept()); }

// ---- primary contexts ----

static CUresult primary_retain(CUcontext *pctx, CUdevice dev) {
	if (!pctx)
		return GF_ERR_INVALID_VALUE;
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	__atomic_add_fetch(&gf_primary_ref[dev], 1, __ATOMIC_ACQ_REL);
	*pctx = (CUcontext)gf_primary_ctx(dev);
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
	GF_CALL("cuDevicePrimaryCtxRetain", primary_retain(pctx, dev));
}

static CUresult primary_release(CUdevice dev) {
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	int ref = __atomic_load_n(&gf_primary_ref[dev], __ATOMIC_ACQUIRE);
	while (ref > 0 && !__atomic_compare_exchange_n(&gf_primary_ref[dev], &ref, ref - 1, 0, __ATOMIC_ACQ_REL,
	                                               __ATOMIC_ACQUIRE)) {
	}
	return ref > 0 ? GF_SUCCESS : GF_ERR_INVALID_CONTEXT;
}

GF_EXPORT CUresult cuDevicePrimaryCtxRelease(CUdevice dev) { GF_CALL("cuDevicePrimaryCtxRelease", primary_release(dev)); }
GF_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
	GF_CALL("cuDevicePrimaryCtxRelease_v2", primary_release(dev));
}

static CUresult primary_reset(CUdevice dev) {
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	uintptr_t h = gf_primary_ctx(dev);
	CUresult r = gfgo_ctxRelease(h, dev);
	cls_drop_ctx(h);
	__atomic_store_n(&gf_primary_ref[dev], 0, __ATOMIC_RELEASE);
	gf_primary_flags[dev] = 0;
	return r;
}

GF_EXPORT CUresult cuDevicePrimaryCtxReset(CUdevice dev) { GF_CALL("cuDevicePrimaryCtxReset", primary_reset(dev)); }
GF_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev) { GF_CALL("cuDevicePrimaryCtxReset_v2", primary_reset(dev)); }

static CUresult primary_set_flags(CUdevice dev, unsigned int flags) {
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	gf_primary_flags[dev] = flags;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {
	GF_CALL("cuDevicePrimaryCtxSetFlags", primary_set_flags(dev, flags));
}
GF_EXPORT CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags) {
	GF_CALL("cuDevicePrimaryCtxSetFlags_v2", primary_set_flags(dev, flags));
}

static CUresult primary_get_state(CUdevice dev, unsigned int *flags, int *active) {
	if (!flags || !active)
		return GF_ERR_INVALID_VALUE;
	if (!valid_dev(dev))
		return GF_ERR_INVALID_DEVICE;
	*flags = gf_primary_flags[dev];
	*active = __atomic_load_n(&gf_primary_ref[dev], __ATOMIC_ACQUIRE) > 0;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active) {
	GF_CALL("cuDevicePrimaryCtxGetState", primary_get_state(dev, flags, active));
}

// ---- stream capture mode: kept per thread ----

static __thread int gf_capture_mode; // CU_STREAM_CAPTURE_MODE_GLOBAL

static CUresult exchange_capture_mode(int *mode) {
	if (!mode)
		return GF_ERR_INVALID_VALUE;
	int old = gf_capture_mode;
	gf_capture_mode = *mode;
	*mode = old;
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuThreadExchangeStreamCaptureMode(int *mode) {
	GF_CALL("cuThreadExchangeStreamCaptureMode", exchange_capture_mode(mode));
}

// The capture status and information of streams are in gf_exec.c.

// ---- odds and ends answered locally ----

static CUresult loading_mode(int *mode) {
	if (!mode)
		return GF_ERR_INVALID_VALUE;
	// Modules load eagerly: the whole image goes to the server at load.
	*mode = 1; // CU_MODULE_EAGER_LOADING
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuModuleGetLoadingMode(int *mode) { GF_CALL("cuModuleGetLoadingMode", loading_mode(mode)); }

static CUresult ok(void) { return GF_SUCCESS; }

// The profiler has nothing to start remotely; the driver answers success
// when no profiler is attached, and so do we.
GF_EXPORT CUresult cuProfilerStart(void) { GF_CALL("cuProfilerStart", ok()); }
GF_EXPORT CUresult cuProfilerStop(void) { GF_CALL("cuProfilerStop", ok()); }

// ---- cuDriverGetVersion ----

static CUresult driver_version(int *v) {
	if (!v)
		return GF_ERR_INVALID_VALUE;
	*v = gfgo_driverVersion();
	return GF_SUCCESS;
}

GF_EXPORT CUresult cuDriverGetVersion(int *driverVersion) { GF_ANYTIME("cuDriverGetVersion", driver_version(driverVersion)); }

// ---- cuInit ----

GF_EXPORT CUresult cuInit(unsigned int flags) {
	if (GF_UNLIKELY(gf_in_child()))
		return gf_refuse("cuInit");
	GF_TRACED("cuInit", flags != 0 ? GF_ERR_INVALID_VALUE : gfgo_init());
}

// ---- cuGetProcAddress ----

enum { PROC_FOUND = 0, PROC_NOT_FOUND = 1, PROC_VERSION_NOT_SUFFICIENT = 2 };

// proc_address resolves a base name; v2 selects cuGetProcAddress_v2's
// conventions (success with a status) over v1's (CUDA_ERROR_NOT_FOUND).
static CUresult proc_address(const char *name, const char *symbol, void **pfn, int version, cuuint64_t flags,
                             int *status, int v2) {
	uint64_t t0 = gf_trace_fd >= 0 ? gf_now_ns() : 0;
	int st = PROC_NOT_FOUND;
	CUresult r;
	if (GF_UNLIKELY(gf_forked)) {
		r = GF_ERR_NOT_INITIALIZED;
	} else if (!symbol || !pfn || (flags & ~(cuuint64_t)3) != 0) {
		r = GF_ERR_INVALID_VALUE;
	} else {
		*pfn = NULL;
		int idx = gfgo_procAddress((char *)symbol, version, flags);
		if (idx >= 0 && idx < gf_symbol_count) {
			*pfn = gf_symbols[idx];
			st = PROC_FOUND;
			r = GF_SUCCESS;
		} else if (idx == -3) {
			r = GF_ERR_INVALID_VALUE; // a version past the driver's
		} else {
			st = idx == -2 ? PROC_VERSION_NOT_SUFFICIENT : PROC_NOT_FOUND;
			r = v2 ? GF_SUCCESS : GF_ERR_NOT_FOUND;
		}
	}
	if (status)
		*status = st;
	if (gf_trace_fd >= 0)
		gf_trace_proc(name, r, t0, symbol, version, flags, st);
	return r;
}

GF_EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags) {
	return proc_address("cuGetProcAddress", symbol, pfn, cudaVersion, flags, NULL, 0);
}

GF_EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                                       int *symbolStatus) {
	return proc_address("cuGetProcAddress_v2", symbol, pfn, cudaVersion, flags, symbolStatus, 1);
}

// ---- cuGetExportTable ----
//
// Two undocumented tables are mandatory for the CUDA runtime: its interface
// (module registration from fatbins, the primary context) and context-local
// storage, where it keeps its per-context state. Their slots' meaning is
// known from the public work of ZLUDA and LUPINE; docs/interposer.md keeps it.
// Every other table is refused with CUDA_ERROR_INVALID_VALUE, which the
// runtime tolerates.

static CUresult cudart_unknown(void) { return GF_ERR_NOT_SUPPORTED; }

// Slot 1: a module from a fatbin wrapper ({magic, version, data, ...}).
static CUresult cudart_module_from_wrapper(CUmodule *module, const void *wrapper) {
	if (gf_state != GF_STATE_READY)
		return gf_refuse("cudart.get_module_from_cubin");
	if (!module || !wrapper)
		return GF_ERR_INVALID_VALUE;
	return gfgo_moduleLoad(GF_CUR_CTX, GF_CUR_DEV, (uintptr_t *)module, (void *)wrapper, 0, NULL, NULL);
}

// Slot 2: the primary context of a device, retained.
static CUresult cudart_primary_ctx(CUcontext *pctx, CUdevice dev) {
	if (gf_state != GF_STATE_READY)
		return gf_refuse("cudart.primary_ctx");
	return primary_retain(pctx, dev);
}

// Slot 6: as slot 1 with extra arguments the interposer does not need.
static CUresult cudart_module_from_wrapper_ext1(CUmodule *module, const void *wrapper, void *a3, void *a4,
                                                unsigned int a5) {
	(void)a3;
	(void)a4;
	(void)a5;
	return cudart_module_from_wrapper(module, wrapper);
}

// Slot 8: a module from a fatbin header directly.
static CUresult cudart_module_from_fatbin_ext2(const void *fatbin, CUmodule *module, void *a3, void *a4,
                                               unsigned int a5) {
	(void)a3;
	(void)a4;
	(void)a5;
	if (gf_state != GF_STATE_READY)
		return gf_refuse("cudart.get_module_from_cubin_ext2");
	if (!module || !fatbin)
		return GF_ERR_INVALID_VALUE;
	return gfgo_moduleLoad(GF_CUR_CTX, GF_CUR_DEV, (uintptr_t *)module, (void *)fatbin, 0, NULL, NULL);
}

static CUresult cudart_success(void) { return GF_SUCCESS; }

static const void *gf_cudart_interface[13] = {
	(void *)(uintptr_t)(13 * sizeof(void *)),
	(void *)cudart_module_from_wrapper,
	(void *)cudart_primary_ctx,
	(void *)cudart_unknown,
	(void *)cudart_unknown,
	(void *)cudart_unknown,
	(void *)cudart_module_from_wrapper_ext1,
	(void *)cudart_success,
	(void *)cudart_module_from_fatbin_ext2,
	(void *)cudart_unknown,
	(void *)cudart_unknown,
	(void *)cudart_unknown,
	(void *)cudart_success,
};

// Context-local storage: values keyed by (context, key). NULL or
// (CUcontext)-1 names the current context. The runtime asks around each of
// its calls, so lookups take a read lock only.
struct gf_cls {
	uintptr_t ctx;
	void *key, *value;
	void (*dtor)(CUcontext, void *, void *);
};

#define GF_CLS_MAX 1024
static struct gf_cls gf_cls[GF_CLS_MAX];
static int gf_cls_n;
static pthread_rwlock_t gf_cls_mu = PTHREAD_RWLOCK_INITIALIZER;

static uintptr_t cls_ctx(CUcontext ctx) {
	uintptr_t h = (uintptr_t)ctx;
	return h == 0 || h == (uintptr_t)-1 ? gf_cur_ctx() : h;
}

static CUresult cls_put(CUcontext ctx, void *key, void *value, void (*dtor)(CUcontext, void *, void *)) {
	uintptr_t h = cls_ctx(ctx);
	if (gf_ctx_slot(h) < 0)
		return GF_ERR_INVALID_CONTEXT;
	pthread_rwlock_wrlock(&gf_cls_mu);
	for (int i = 0; i < gf_cls_n; i++) {
		if (gf_cls[i].ctx == h && gf_cls[i].key == key) {
			gf_cls[i].value = value;
			gf_cls[i].dtor = dtor;
			pthread_rwlock_unlock(&gf_cls_mu);
			return GF_SUCCESS;
		}
	}
	if (gf_cls_n == GF_CLS_MAX) {
		pthread_rwlock_unlock(&gf_cls_mu);
		return GF_ERR_OUT_OF_MEMORY;
	}
	gf_cls[gf_cls_n++] = (struct gf_cls){h, key, value, dtor};
	pthread_rwlock_unlock(&gf_cls_mu);
	return GF_SUCCESS;
}

static CUresult cls_delete(CUcontext ctx, void *key) {
	uintptr_t h = cls_ctx(ctx);
	pthread_rwlock_wrlock(&gf_cls_mu);
	for (int i = 0; i < gf_cls_n; i++) {
		if (gf_cls[i].ctx == h && gf_cls[i].key == key) {
			gf_cls[i] = gf_cls[--gf_cls_n];
			break;
		}
	}
	pthread_rwlock_unlock(&gf_cls_mu);
	return GF_SUCCESS;
}

static CUresult cls_get(void **value, CUcontext ctx, void *key) {
	if (!value)
		return GF_ERR_INVALID_VALUE;
	uintptr_t h = cls_ctx(ctx);
	CUresult r = GF_ERR_INVALID_VALUE;
	pthread_rwlock_rdlock(&gf_cls_mu);
	for (int i = 0; i < gf_cls_n; i++) {
		if (gf_cls[i].ctx == h && gf_cls[i].key == key) {
			*value = gf_cls[i].value;
			r = GF_SUCCESS;
			break;
		}
	}
	pthread_rwlock_unlock(&gf_cls_mu);
	return r;
}

// cls_drop_ctx runs the destructors of a context's entries as it goes.
static void cls_drop_ctx(uintptr_t ctx) {
	struct gf_cls dropped[64];
	int n = 0;
	pthread_rwlock_wrlock(&gf_cls_mu);
	for (int i = 0; i < gf_cls_n && n < 64;) {
		if (gf_cls[i].ctx == ctx) {
			dropped[n++] = gf_cls[i];
			gf_cls[i] = gf_cls[--gf_cls_n];
		} else {
			i++;
		}
	}
	pthread_rwlock_unlock(&gf_cls_mu);
	for (int i = 0; i < n; i++)
		if (dropped[i].dtor)
			dropped[i].dtor((CUcontext)ctx, dropped[i].key, dropped[i].value);
}

static const void *gf_cls_table[4] = {
	(void *)cls_put,
	(void *)cls_delete,
	(void *)cls_get,
	NULL,
};

static const unsigned char uuid_cudart[16] = {0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a,
                                              0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d, 0xf9};
static const unsigned char uuid_cls[16] = {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11,
                                           0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93};

static CUresult export_table(const void **table, const CUuuid *id) {
	if (!table || !id)
		return GF_ERR_INVALID_VALUE;
	if (!memcmp(id->bytes, uuid_cudart, 16)) {
		*table = gf_cudart_interface;
		return GF_SUCCESS;
	}
	if (!memcmp(id->bytes, uuid_cls, 16)) {
		*table = gf_cls_table;
		return GF_SUCCESS;
	}
	*table = NULL;
	return GF_ERR_INVALID_VALUE;
}

GF_EXPORT CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId) {
	if (GF_UNLIKELY(gf_forked))
		return gf_refuse("cuGetExportTable");
	uint64_t t0 = gf_trace_fd >= 0 ? gf_now_ns() : 0;
	CUresult r = export_table(ppExportTable, pExportTableId);
	if (gf_trace_fd >= 0)
		gf_trace_table(r, t0, pExportTableId);
	return r;
}

// ---- host memory for Go ----

void *gf_host_alloc(size_t size) {
	void *p = NULL;
	if (posix_memalign(&p, 4096, size ? size : 1) != 0)
		return NULL;
	return p;
}

void gf_host_free(void *p) { free(p); }
