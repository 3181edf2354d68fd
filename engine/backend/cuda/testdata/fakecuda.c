// A fake libcuda.so.1 for the cuda backend's tests on machines without a
// GPU. It models what the backend relies on, strictly enough to catch its
// mistakes:
//
//   - device memory is host memory; every device address a call names must
//     lie in a live allocation (else CUDA_ERROR_INVALID_VALUE, or
//     CUDA_ERROR_ILLEGAL_ADDRESS from a kernel);
//   - new device memory holds garbage (0xdb bytes), as memory the real
//     driver reuses within a context holds whatever was there: what reads
//     as zero was cleared by the backend;
//   - async copies insist on pinned host memory (cuMemHostAlloc'd), which
//     the real driver would accept but run synchronously: the backend
//     promises pinned staging;
//   - every call that needs a context fails with CUDA_ERROR_INVALID_CONTEXT
//     unless the calling thread has made one current, as the real driver
//     does, because the backend calls from many threads;
//   - launches must come through `extra` with a packed buffer, and run the
//     kernels vector_add and fill_u32 of examples/kernels.ptx on the CPU;
//   - streams run their work at once (a legal schedule for CUDA), so a
//     call that reaches the driver too early shows up as a wrong result.
//
//   - virtual memory management: reservations are PROT_NONE address space,
//     physical memory a memfd that holds garbage when made, mappings
//     MAP_FIXED over the reservation, and only mapped ranges count as
//     device memory; -DNO_VMM leaves the calls out.
//
// Build variants: -DNO_PARAM_INFO leaves cuFuncGetParamInfo out (drivers
// before 12.4); -DINTERPOSER adds an explicit interposer marker and
// -DGO_SHARED the crosscall2 every Go c-shared library (so gpufabric's own
// libcuda.so.1) exports; -DONLY_INIT exports cuInit alone. FAKECUDA_INIT_RESULT makes cuInit fail
// with that CUresult.

#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum {
	OK = 0,
	INVALID_VALUE = 1,
	OUT_OF_MEMORY = 2,
	NOT_INITIALIZED = 3,
	INVALID_DEVICE = 101,
	INVALID_IMAGE = 200,
	INVALID_CONTEXT = 201,
	INVALID_HANDLE = 400,
	NOT_FOUND = 500,
	ILLEGAL_ADDRESS = 700,
};

CUresult cuInit(unsigned int flags) {
	const char *r = getenv("FAKECUDA_INIT_RESULT");
	(void)flags;
	return r ? atoi(r) : OK;
}

#ifdef INTERPOSER
int gpufabric_interposer = 1;
#endif

#ifdef GO_SHARED
// What every Go c-shared library exports, gpufabric's interposer included.
void crosscall2(void) {}
#endif

#ifndef ONLY_INIT

#define NDEV 2
#define TOTAL_MEM (1ull << 30)
#define MAXALLOC 4096

struct ctx { int dev; int refs; };
static struct ctx ctxs[NDEV] = {{0, 0}, {1, 0}};
static __thread struct ctx *current;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct alloc { char *p; size_t n; int pinned; int mapped; };
static struct alloc allocs[MAXALLOC];
static size_t used[NDEV];

#define NEED_CTX() do { if (!current) return INVALID_CONTEXT; } while (0)

// span checks that [p, p+n) lies in one live allocation of the given kind.
static int span(uint64_t p, size_t n, int pinned) {
	int ok = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++) {
		struct alloc *a = &allocs[i];
		// Registered host memory (pinned 2) is page-locked as allocated is.
		int kind = a->pinned == 2 ? 1 : a->pinned;
		if (a->p && kind == pinned && p >= (uint64_t)a->p && p + n <= (uint64_t)a->p + a->n) {
			ok = 1;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return ok;
}

static void *track(size_t n, int pinned) {
	char *p = calloc(1, n ? n : 1);
	if (!p)
		return NULL;
	if (!pinned)
		memset(p, 0xdb, n);
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++) {
		if (!allocs[i].p) {
			allocs[i] = (struct alloc){p, n, pinned};
			if (!pinned)
				used[current->dev] += n;
			pthread_mutex_unlock(&mu);
			return p;
		}
	}
	pthread_mutex_unlock(&mu);
	free(p);
	return NULL;
}

static CUresult untrack(void *p, int pinned) {
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++) {
		if (allocs[i].p == p && allocs[i].pinned == pinned && !allocs[i].mapped) {
			if (!pinned)
				used[current->dev] -= allocs[i].n;
			allocs[i].p = NULL;
			pthread_mutex_unlock(&mu);
			free(p);
			return OK;
		}
	}
	pthread_mutex_unlock(&mu);
	return INVALID_VALUE;
}

CUresult cuDriverGetVersion(int *v) { *v = 12040; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = NDEV; return OK; }

CUresult cuDeviceGet(CUdevice *d, int ordinal) {
	if (ordinal < 0 || ordinal >= NDEV)
		return INVALID_DEVICE;
	*d = ordinal;
	return OK;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
	snprintf(name, len, "Fake GPU %d", d);
	return OK;
}

typedef struct { char bytes[16]; } CUuuid;

CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) {
	for (int i = 0; i < 16; i++)
		u->bytes[i] = (char)(0xf0 + i);
	u->bytes[15] = (char)d;
	return OK;
}

CUresult cuDeviceTotalMem_v2(size_t *n, CUdevice d) { (void)d; *n = TOTAL_MEM; return OK; }

CUresult cuDeviceGetPCIBusId(char *buf, int len, CUdevice d) {
	snprintf(buf, len, "0000:%02X:00.0", 0x3b + d);
	return OK;
}

CUresult cuDeviceGetAttribute(int *v, int attr, CUdevice d) {
	(void)d;
	switch (attr) {
	case 1: *v = 1024; return OK;   // max threads per block
	case 16: *v = 8; return OK;     // multiprocessors
	case 75: *v = 9; return OK;     // compute capability
	case 76: *v = 0; return OK;
	}
	if (attr >= 140)
		return INVALID_VALUE; // an id this "driver" does not know
	*v = 0;
	return OK;
}

CUresult cuDevicePrimaryCtxRetain(void **c, CUdevice d) {
	if (d < 0 || d >= NDEV)
		return INVALID_DEVICE;
	pthread_mutex_lock(&mu);
	ctxs[d].refs++;
	pthread_mutex_unlock(&mu);
	*c = &ctxs[d];
	return OK;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
	pthread_mutex_lock(&mu);
	CUresult r = ctxs[d].refs > 0 ? OK : INVALID_CONTEXT;
	if (r == OK)
		ctxs[d].refs--;
	pthread_mutex_unlock(&mu);
	return r;
}

CUresult cuCtxSetCurrent(void *c) {
	struct ctx *x = c;
	if (x && x->refs == 0)
		return INVALID_CONTEXT;
	current = x;
	return OK;
}

CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) {
	NEED_CTX();
	pthread_mutex_lock(&mu);
	*free_ = TOTAL_MEM - used[current->dev];
	pthread_mutex_unlock(&mu);
	*total = TOTAL_MEM;
	return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	NEED_CTX();
	if (n == 0)
		return INVALID_VALUE;
	if (n > TOTAL_MEM - used[current->dev])
		return OUT_OF_MEMORY;
	void *m = track(n, 0);
	if (!m)
		return OUT_OF_MEMORY;
	*p = (CUdeviceptr)m;
	return OK;
}

CUresult cuMemFree_v2(CUdeviceptr p) { NEED_CTX(); return untrack((void *)p, 0); }

CUresult cuMemHostAlloc(void **p, size_t n, unsigned int flags) {
	NEED_CTX();
	(void)flags;
	*p = track(n, 1);
	return *p ? OK : OUT_OF_MEMORY;
}

CUresult cuMemFreeHost(void *p) { NEED_CTX(); return untrack(p, 1); }

// Registered host memory is the caller's: tracked as page-locked (pinned
// 2) while registered, never freed here. As the driver: a range that
// meets one registered or allocated already fails, as does unregistering
// what is not the base of a registration.
CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int flags) {
	NEED_CTX();
	(void)flags;
	if (!p || !n)
		return INVALID_VALUE;
	pthread_mutex_lock(&mu);
	int free_slot = -1;
	for (int i = 0; i < MAXALLOC; i++) {
		struct alloc *a = &allocs[i];
		if (!a->p) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (a->pinned && (char *)p < (char *)a->p + a->n && (char *)a->p < (char *)p + n) {
			pthread_mutex_unlock(&mu);
			return 712; // CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
		}
	}
	if (free_slot < 0) {
		pthread_mutex_unlock(&mu);
		return OUT_OF_MEMORY;
	}
	allocs[free_slot] = (struct alloc){p, n, 2};
	pthread_mutex_unlock(&mu);
	return OK;
}

CUresult cuMemHostUnregister(void *p) {
	NEED_CTX();
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++) {
		if (allocs[i].p == p && allocs[i].pinned == 2) {
			allocs[i].p = NULL;
			pthread_mutex_unlock(&mu);
			return OK;
		}
	}
	pthread_mutex_unlock(&mu);
	return 713; // CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
}

struct stream { int magic; unsigned flags; int prio; };
struct event { int magic; unsigned flags; int recorded; struct timespec at; };
#define STREAM_MAGIC 0x5354
#define EVENT_MAGIC 0x4556

CUresult cuStreamCreateWithPriority(void **s, unsigned int flags, int prio) {
	NEED_CTX();
	struct stream *x = calloc(1, sizeof *x);
	x->magic = STREAM_MAGIC;
	x->flags = flags;
	x->prio = prio;
	*s = x;
	return OK;
}

static int stream_ok(void *s) { return s == NULL || ((struct stream *)s)->magic == STREAM_MAGIC; }
static int event_ok(void *e) { return e != NULL && ((struct event *)e)->magic == EVENT_MAGIC; }

CUresult cuStreamDestroy_v2(void *s) {
	NEED_CTX();
	if (!s || !stream_ok(s))
		return INVALID_HANDLE;
	((struct stream *)s)->magic = 0;
	free(s);
	return OK;
}

CUresult cuStreamQuery(void *s) { NEED_CTX(); return stream_ok(s) ? OK : INVALID_HANDLE; }

CUresult cuStreamWaitEvent(void *s, void *e, unsigned int flags) {
	NEED_CTX();
	(void)flags;
	return stream_ok(s) && event_ok(e) ? OK : INVALID_HANDLE;
}

CUresult cuEventCreate(void **e, unsigned int flags) {
	NEED_CTX();
	struct event *x = calloc(1, sizeof *x);
	x->magic = EVENT_MAGIC;
	x->flags = flags;
	*e = x;
	return OK;
}

CUresult cuEventDestroy_v2(void *e) {
	NEED_CTX();
	if (!event_ok(e))
		return INVALID_HANDLE;
	((struct event *)e)->magic = 0;
	free(e);
	return OK;
}

CUresult cuEventRecord(void *e, void *s) {
	NEED_CTX();
	if (!event_ok(e) || !stream_ok(s))
		return INVALID_HANDLE;
	struct event *x = e;
	clock_gettime(CLOCK_MONOTONIC, &x->at);
	x->recorded = 1;
	return OK;
}

CUresult cuEventQuery(void *e) { NEED_CTX(); return event_ok(e) ? OK : INVALID_HANDLE; }
CUresult cuEventSynchronize(void *e) { NEED_CTX(); return event_ok(e) ? OK : INVALID_HANDLE; }

CUresult cuEventElapsedTime_v2(float *ms, void *a, void *b) {
	NEED_CTX();
	struct event *x = a, *y = b;
	if (!event_ok(a) || !event_ok(b) || !x->recorded || !y->recorded || (x->flags & 2) || (y->flags & 2))
		return INVALID_HANDLE;
	*ms = (float)((y->at.tv_sec - x->at.tv_sec) * 1e3 + (y->at.tv_nsec - x->at.tv_nsec) / 1e6);
	return OK;
}

// A module knows which of the fake's kernels its image declares; the image
// itself is not kept (the backend frees it after the call, as it may).
enum { K_VECTOR_ADD = 1, K_FILL_U32 = 2 };
struct module { int magic; int kernels; char *global; };
struct function { int kernel; };
static struct function fn_vector_add = {K_VECTOR_ADD}, fn_fill_u32 = {K_FILL_U32};

CUresult cuModuleLoadData(void **m, const void *image) {
	NEED_CTX();
	const char *s = image;
	if (!strstr(s, ".entry"))
		return INVALID_IMAGE;
	struct module *x = calloc(1, sizeof *x);
	x->magic = 0x4d4f;
	if (strstr(s, ".entry vector_add("))
		x->kernels |= K_VECTOR_ADD;
	if (strstr(s, ".entry fill_u32("))
		x->kernels |= K_FILL_U32;
	*m = x;
	return OK;
}

CUresult cuModuleUnload(void *m) {
	NEED_CTX();
	struct module *x = m;
	if (!x || x->magic != 0x4d4f)
		return INVALID_HANDLE;
	x->magic = 0;
	if (x->global)
		untrack(x->global, 0);
	free(x);
	return OK;
}

CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
	NEED_CTX();
	struct module *x = m;
	if (!strcmp(name, "vector_add") && (x->kernels & K_VECTOR_ADD))
		*f = &fn_vector_add;
	else if (!strcmp(name, "fill_u32") && (x->kernels & K_FILL_U32))
		*f = &fn_fill_u32;
	else
		return NOT_FOUND;
	return OK;
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *p, size_t *n, void *m, const char *name) {
	NEED_CTX();
	struct module *x = m;
	if (strcmp(name, "counter"))
		return NOT_FOUND;
	if (!x->global)
		x->global = track(4, 0);
	*p = (CUdeviceptr)x->global;
	*n = 4;
	return OK;
}

#ifndef NO_PARAM_INFO
// The layouts nvcc gives the two kernels' C signatures.
CUresult cuFuncGetParamInfo(void *f, size_t i, size_t *off, size_t *size) {
	static const size_t va[][2] = {{0, 8}, {8, 8}, {16, 8}, {24, 4}};
	static const size_t fu[][2] = {{0, 8}, {8, 4}, {16, 8}};
	struct function *x = f;
	const size_t (*l)[2] = x->kernel == K_VECTOR_ADD ? va : fu;
	size_t n = x->kernel == K_VECTOR_ADD ? 4 : 3;
	if (i >= n)
		return INVALID_VALUE;
	*off = l[i][0];
	if (size)
		*size = l[i][1];
	return OK;
}
#endif

// Function attributes: what a small kernel compiled for sm_80 might use;
// the attributes past CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (8)
// are refused, so that a caller sees one fail.
CUresult cuFuncGetAttribute(int *v, int attr, void *f) {
	NEED_CTX();
	if (!f || !v || attr < 0 || attr > 8)
		return INVALID_VALUE;
	static const int values[] = {1024, 0, 0, 0, 40, 80, 80, 0, 48 << 10};
	*v = values[attr];
	return OK;
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
	unsigned bz, unsigned shmem, void *s, void **params, void **extra) {
	NEED_CTX();
	(void)shmem;
	if (!stream_ok(s))
		return INVALID_HANDLE;
	// The backend always packs: kernelParams must be NULL and extra must be
	// exactly {BUFFER_POINTER, buf, BUFFER_SIZE, &size, END}.
	if (params || !extra || extra[0] != (void *)1 || extra[2] != (void *)2 || extra[4] != (void *)0)
		return INVALID_VALUE;
	const char *buf = extra[1];
	size_t size = *(size_t *)extra[3];
	uint64_t threads = (uint64_t)gx * gy * gz * bx * by * bz;
	struct function *x = f;
	if (x->kernel == K_VECTOR_ADD) {
		if (size < 28)
			return INVALID_VALUE;
		uint64_t a, b, c;
		int n;
		memcpy(&a, buf, 8);
		memcpy(&b, buf + 8, 8);
		memcpy(&c, buf + 16, 8);
		memcpy(&n, buf + 24, 4);
		uint64_t m = threads < (uint64_t)n ? threads : (uint64_t)n;
		if (!span(a, m * 4, 0) || !span(b, m * 4, 0) || !span(c, m * 4, 0))
			return ILLEGAL_ADDRESS;
		for (uint64_t i = 0; i < m; i++)
			((float *)c)[i] = ((float *)a)[i] + ((float *)b)[i];
		return OK;
	}
	if (size < 24)
		return INVALID_VALUE;
	uint64_t p, n;
	unsigned v;
	memcpy(&p, buf, 8);
	memcpy(&v, buf + 8, 4);
	memcpy(&n, buf + 16, 8);
	uint64_t m = threads < n ? threads : n;
	if (!span(p, m * 4, 0))
		return ILLEGAL_ADDRESS;
	for (uint64_t i = 0; i < m; i++)
		((unsigned *)p)[i] = v;
	return OK;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(dst, n, 0) || !span((uint64_t)src, n, 1))
		return INVALID_VALUE;
	memcpy((void *)dst, src, n);
	return OK;
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(src, n, 0) || !span((uint64_t)dst, n, 1))
		return INVALID_VALUE;
	memcpy(dst, (void *)src, n);
	return OK;
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(dst, n, 0) || !span(src, n, 0))
		return INVALID_VALUE;
	memmove((void *)dst, (void *)src, n);
	return OK;
}

// Stream memory operations write at once, as every stream's work runs;
// the word must be aligned and inside an allocation.
CUresult cuStreamWriteValue32_v2(void *s, CUdeviceptr p, unsigned int v, unsigned int flags) {
	NEED_CTX();
	if (!stream_ok(s) || p % 4 || !span(p, 4, 0) || flags & ~1u)
		return INVALID_VALUE;
	memcpy((void *)p, &v, 4);
	return OK;
}

CUresult cuStreamWriteValue64_v2(void *s, CUdeviceptr p, unsigned long long v, unsigned int flags) {
	NEED_CTX();
	if (!stream_ok(s) || p % 8 || !span(p, 8, 0) || flags & ~1u)
		return INVALID_VALUE;
	memcpy((void *)p, &v, 8);
	return OK;
}

// The linker concatenates its inputs (each without the NUL its caller
// may add) into the image, and refuses an input type other than cubin,
// PTX or fatbin with a message in the error log of cuLinkCreate's options.
struct link {
	char *buf;
	size_t n;
	char *log;
	size_t loglen;
};

CUresult cuLinkCreate_v2(unsigned int n, int *opts, void **vals, void **state) {
	NEED_CTX();
	struct link *l = calloc(1, sizeof *l);
	for (unsigned int i = 0; i < n; i++) {
		if (opts[i] == 5)
			l->log = vals[i];
		if (opts[i] == 6)
			l->loglen = (size_t)(uintptr_t)vals[i];
	}
	*state = l;
	return OK;
}

CUresult cuLinkAddData_v2(void *state, int type, void *data, size_t size, const char *name, unsigned int n,
	int *opts, void **vals) {
	(void)n, (void)opts, (void)vals;
	NEED_CTX();
	struct link *l = state;
	if (type < 0 || type > 2) {
		if (l->log && l->loglen)
			snprintf(l->log, l->loglen, "fake linker: %s: input type %d", name ? name : "?", type);
		return INVALID_VALUE;
	}
	while (size > 0 && ((char *)data)[size - 1] == 0)
		size--;
	l->buf = realloc(l->buf, l->n + size);
	memcpy(l->buf + l->n, data, size);
	l->n += size;
	return OK;
}

CUresult cuLinkComplete(void *state, void **image, size_t *size) {
	NEED_CTX();
	struct link *l = state;
	*image = l->buf;
	*size = l->n;
	return OK;
}

CUresult cuLinkDestroy(void *state) {
	struct link *l = state;
	free(l->buf);
	free(l);
	return OK;
}

CUresult cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(p, n, 0))
		return INVALID_VALUE;
	memset((void *)p, v, n);
	return OK;
}

CUresult cuMemsetD16Async(CUdeviceptr p, unsigned short v, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(p, n * 2, 0))
		return INVALID_VALUE;
	for (size_t i = 0; i < n; i++)
		((unsigned short *)p)[i] = v;
	return OK;
}

CUresult cuMemsetD32Async(CUdeviceptr p, unsigned int v, size_t n, void *s) {
	NEED_CTX();
	if (!stream_ok(s) || !span(p, n * 4, 0))
		return INVALID_VALUE;
	for (size_t i = 0; i < n; i++)
		((unsigned *)p)[i] = v;
	return OK;
}

CUresult cuGetErrorString(CUresult r, const char **s) {
	switch (r) {
	case INVALID_VALUE: *s = "invalid argument"; return OK;
	case INVALID_CONTEXT: *s = "invalid device context"; return OK;
	case NOT_FOUND: *s = "named symbol not found"; return OK;
	case ILLEGAL_ADDRESS: *s = "an illegal memory access was encountered"; return OK;
	case 100: *s = "no CUDA-capable device is detected"; return OK;
	}
	return INVALID_VALUE;
}

CUresult cuMemcpyPeerAsync(CUdeviceptr dst, void *dctx, CUdeviceptr src, void *sctx, size_t n, void *s) {
	NEED_CTX();
	if (!dctx || !sctx || !stream_ok(s) || !span(dst, n, 0) || !span(src, n, 0))
		return INVALID_VALUE;
	memmove((void *)dst, (void *)src, n);
	return OK;
}

struct memcpy2d {
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

// cuMemcpy2DAsync_v2 between device operands only, which is all the
// backend asks; each row must lie in an allocation.
CUresult cuMemcpy2DAsync_v2(const struct memcpy2d *c, void *s) {
	NEED_CTX();
	if (!c || !stream_ok(s) || c->src_type != 2 || c->dst_type != 2)
		return INVALID_VALUE;
	for (size_t y = 0; y < c->height; y++) {
		CUdeviceptr from = c->src_device + c->src_x + y * c->src_pitch, to = c->dst_device + c->dst_x + y * c->dst_pitch;
		if (!span(from, c->width, 0) || !span(to, c->width, 0))
			return INVALID_VALUE;
		memmove((void *)to, (void *)from, c->width);
	}
	return OK;
}

#define MEMSET2D(name, type)                                                                        \
	CUresult name(CUdeviceptr p, size_t pitch, type v, size_t w, size_t h, void *s) {               \
		NEED_CTX();                                                                                 \
		if (!stream_ok(s))                                                                          \
			return INVALID_VALUE;                                                                   \
		for (size_t y = 0; y < h; y++) {                                                            \
			type *row = (type *)(p + y * pitch);                                                    \
			if (!span((CUdeviceptr)row, w * sizeof(type), 0))                                       \
				return INVALID_VALUE;                                                               \
			for (size_t x = 0; x < w; x++)                                                          \
				row[x] = v;                                                                         \
		}                                                                                           \
		return OK;                                                                                  \
	}
MEMSET2D(cuMemsetD2D8Async, unsigned char)
MEMSET2D(cuMemsetD2D16Async, unsigned short)
MEMSET2D(cuMemsetD2D32Async, unsigned int)

#ifndef NO_VMM
// ---- virtual memory management ----

#define GRAN (2u << 20)

CUresult cuMemAddressReserve(CUdeviceptr *p, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags) {
	(void)addr;
	NEED_CTX();
	if (!p || !size || size % GRAN || flags || (align & (align - 1)))
		return INVALID_VALUE;
	if (align < GRAN)
		align = GRAN;
	char *m = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return OUT_OF_MEMORY;
	uintptr_t a = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)m)
		munmap(m, a - (uintptr_t)m);
	munmap((char *)a + size, (uintptr_t)m + size + align - (a + size));
	*p = a;
	return OK;
}

CUresult cuMemAddressFree(CUdeviceptr p, size_t size) {
	NEED_CTX();
	if (!p || !size || size % GRAN)
		return INVALID_VALUE;
	return munmap((void *)p, size) == 0 ? OK : INVALID_VALUE;
}

struct prop { int type, handle_types, loc_type, loc_id; };

CUresult cuMemCreate(unsigned long long *h, size_t size, const struct prop *prop, unsigned long long flags) {
	NEED_CTX();
	if (!h || !size || size % GRAN || !prop || prop->type != 1 || prop->loc_type != 1 || prop->loc_id != current->dev || flags)
		return INVALID_VALUE;
	int fd = memfd_create("fake-physical", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		return OUT_OF_MEMORY;
	char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		close(fd);
		return OUT_OF_MEMORY;
	}
	memset(m, 0xdb, size); // as memory another tenant left
	munmap(m, size);
	pthread_mutex_lock(&mu);
	used[current->dev] += size;
	pthread_mutex_unlock(&mu);
	*h = ((unsigned long long)size << 20) | (unsigned)fd; // the size rides along, for cuMemRelease
	return OK;
}

CUresult cuMemRelease(unsigned long long h) {
	NEED_CTX();
	if (close((int)(h & 0xfffff)) != 0)
		return INVALID_VALUE;
	pthread_mutex_lock(&mu);
	used[current->dev] -= h >> 20;
	pthread_mutex_unlock(&mu);
	return OK;
}

CUresult cuMemMap(CUdeviceptr p, size_t size, size_t offset, unsigned long long h, unsigned long long flags) {
	NEED_CTX();
	if (!p || !size || size % GRAN || offset % GRAN || flags || offset + size > (h >> 20))
		return INVALID_VALUE;
	if (mmap((void *)p, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, (int)(h & 0xfffff), (off_t)offset) == MAP_FAILED)
		return INVALID_VALUE;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++)
		if (!allocs[i].p) {
			allocs[i] = (struct alloc){(char *)p, size, 0, 1};
			pthread_mutex_unlock(&mu);
			return OK;
		}
	pthread_mutex_unlock(&mu);
	return OUT_OF_MEMORY;
}

CUresult cuMemSetAccess(CUdeviceptr p, size_t size, const void *desc, size_t count) {
	NEED_CTX();
	return desc && count && span(p, size, 0) ? OK : INVALID_VALUE;
}

CUresult cuMemUnmap(CUdeviceptr p, size_t size) {
	NEED_CTX();
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAXALLOC; i++)
		if (allocs[i].mapped && (CUdeviceptr)allocs[i].p == p && allocs[i].n == size) {
			allocs[i].p = NULL;
			allocs[i].mapped = 0;
			pthread_mutex_unlock(&mu);
			mmap((void *)p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
			return OK;
		}
	pthread_mutex_unlock(&mu);
	return INVALID_VALUE;
}
#endif // NO_VMM

#endif // ONLY_INIT
