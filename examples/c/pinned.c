/*
 * pinned: copies between the device and page-locked host memory
 * (cuMemAllocHost, cuMemHostAlloc, cuMemHostRegister), checked on the host:
 * synchronous and asynchronous, whole and at offsets, ordered with a kernel
 * on a stream, and a free right after queuing a copy. Over shared memory
 * gpufabric shares the allocated memory with the server, so these copies
 * carry no bytes on the wire; registered memory is the application's own
 * and travels as any host memory does. It prints the copy rates from
 * pinned and from pageable memory.
 *
 *     pinned [kernels.ptx] [MiB]
 */
#include "gpufabric_cuda.h"

#define CU_MEMHOSTREGISTER_PORTABLE 0x1

typedef CUresult (*pfn_host_alloc)(void **p, size_t n, unsigned int flags);
typedef CUresult (*pfn_host_register)(void *p, size_t n, unsigned int flags);
typedef CUresult (*pfn_host_unregister)(void *p);
typedef CUresult (*pfn_host_get_flags)(unsigned int *flags, void *p);

/* resolve finds an entry point the shared header does not list. */
static void *resolve(gf_driver *cu, const char *name) {
	void *p = NULL;
	CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
	CUresult r = cu->cuGetProcAddress(name, &p, GF_CUDA_API_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &st);
	if (r != CUDA_SUCCESS || st != CU_GET_PROC_ADDRESS_SUCCESS || !p) {
		fprintf(stderr, "FAIL: cuGetProcAddress(%s) = %d, status %d\n", name, (int)r, (int)st);
		exit(1);
	}
	return p;
}

static void check(const float *got, const float *want, size_t n, const char *what) {
	for (size_t i = 0; i < n; i++) {
		if (got[i] != want[i]) {
			fprintf(stderr, "FAIL: %s: element %zu = %g, want %g\n", what, i, got[i], want[i]);
			exit(1);
		}
	}
}

static double mib_per_s(size_t bytes, double ms) { return ms > 0 ? (double)bytes / (1 << 20) / (ms / 1e3) : 0; }

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int mib = argc > 2 ? atoi(argv[2]) : 16;
	if (mib < 1)
		gf_die("MiB must be positive");
	size_t n = (size_t)mib * (1 << 20) / sizeof(float) + 3; /* not whole pages */
	size_t bytes = n * sizeof(float);

	gf_driver cu;
	gf_setup(&cu);
	pfn_host_alloc host_alloc = (pfn_host_alloc)resolve(&cu, "cuMemHostAlloc");
	pfn_host_register host_register = (pfn_host_register)resolve(&cu, "cuMemHostRegister");
	pfn_host_unregister host_unregister = (pfn_host_unregister)resolve(&cu, "cuMemHostUnregister");
	pfn_host_get_flags host_get_flags = (pfn_host_get_flags)resolve(&cu, "cuMemHostGetFlags");
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	CUfunction scale;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&scale, mod, "scale_f32"));

	float *a, *b, *want = malloc(bytes);
	if (!want)
		gf_die("host allocation");
	GF_CHECK(cu.cuMemAllocHost((void **)&a, bytes));
	GF_CHECK(host_alloc((void **)&b, bytes, CU_MEMHOSTALLOC_PORTABLE));
	unsigned int flags = 0;
	GF_CHECK(host_get_flags(&flags, b));
	if (flags != CU_MEMHOSTALLOC_PORTABLE)
		gf_die("cuMemHostGetFlags does not return the allocation's flags");
	for (size_t i = 0; i < n; i++)
		a[i] = want[i] = (float)(i % 100003);
	CUdeviceptr d;
	GF_CHECK(cu.cuMemAlloc(&d, bytes));

	/* Synchronous: the data is on the device when the call returns. The
	 * first round trip touches the device memory's pages; the second is
	 * timed. */
	GF_CHECK(cu.cuMemcpyHtoD(d, a, bytes));
	GF_CHECK(cu.cuMemcpyDtoH(b, d, bytes));
	double t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyHtoD(d, a, bytes));
	double htod = gf_now_ms() - t;
	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyDtoH(b, d, bytes));
	double dtoh = gf_now_ms() - t;
	check(b, want, n, "sync round trip");

	/* Asynchronous, in order with a kernel: b = 2 * a. The host touches
	 * neither buffer until the stream is synchronised. */
	CUstream st;
	GF_CHECK(cu.cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	memset(b, 0, bytes);
	float two = 2.0f;
	unsigned long long count = n;
	void *args[] = {&d, &two, &count};
	GF_CHECK(cu.cuMemcpyHtoDAsync(d, a, bytes, st));
	GF_CHECK(cu.cuLaunchKernel(scale, (unsigned int)((n + 255) / 256), 1, 1, 256, 1, 1, 0, st, args, NULL));
	GF_CHECK(cu.cuMemcpyDtoHAsync(b, d, bytes, st));
	GF_CHECK(cu.cuStreamSynchronize(st));
	for (size_t i = 0; i < n; i++)
		want[i] = 2.0f * a[i];
	check(b, want, n, "async copies around a kernel");

	/* At offsets inside the allocations. */
	size_t off = 1027, len = n / 3;
	memset(b, 0, bytes);
	GF_CHECK(cu.cuMemcpyHtoDAsync(d + off * sizeof(float), a + off, len * sizeof(float), st));
	GF_CHECK(cu.cuMemcpyDtoHAsync(b + off, d + off * sizeof(float), len * sizeof(float), st));
	GF_CHECK(cu.cuStreamSynchronize(st));
	check(b + off, a + off, len, "async copies at an offset");
	if (b[off - 1] != 0 || b[off + len] != 0)
		gf_die("a copy into page-locked memory wrote outside its range");

	/* Registered memory: the application's own, copied as any host memory. */
	size_t page = 4096, rbytes = (bytes + page - 1) / page * page;
	float *r = NULL;
	if (posix_memalign((void **)&r, page, rbytes) != 0)
		gf_die("host allocation");
	GF_CHECK(host_register(r, rbytes, CU_MEMHOSTREGISTER_PORTABLE));
	memcpy(r, a, bytes);
	GF_CHECK(cu.cuMemcpyHtoDAsync(d, r, bytes, st));
	memset(b, 0, bytes);
	GF_CHECK(cu.cuMemcpyDtoHAsync(b, d, bytes, st));
	GF_CHECK(cu.cuStreamSynchronize(st));
	check(b, a, n, "registered memory");
	GF_CHECK(host_unregister(r));

	/* Pageable memory, for the rates beside the pinned ones. */
	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyHtoD(d, r, bytes));
	double htod_pageable = gf_now_ms() - t;
	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyDtoH(r, d, bytes));
	double dtoh_pageable = gf_now_ms() - t;
	check(r, a, n, "pageable round trip");
	free(r);

	/* Freed right after a copy from it was queued: cuMemFreeHost waits for
	 * the copy, which lands intact. */
	memcpy(want, a, bytes);
	GF_CHECK(cu.cuMemcpyHtoDAsync(d, a, bytes, st));
	GF_CHECK(cu.cuMemFreeHost(a));
	GF_CHECK(cu.cuMemcpyDtoH(b, d, bytes));
	check(b, want, n, "copy queued before cuMemFreeHost");

	GF_CHECK(cu.cuMemFreeHost(b));
	GF_CHECK(cu.cuStreamDestroy(st));
	GF_CHECK(cu.cuMemFree(d));
	printf("pinned: HtoD %.0f MiB/s, DtoH %.0f MiB/s; pageable: HtoD %.0f MiB/s, DtoH %.0f MiB/s\n",
	       mib_per_s(bytes, htod), mib_per_s(bytes, dtoh), mib_per_s(bytes, htod_pageable),
	       mib_per_s(bytes, dtoh_pageable));
	printf("pinned: %zu bytes correct (sync, async, offsets, registered, free in flight)\n", bytes);
	return 0;
}
