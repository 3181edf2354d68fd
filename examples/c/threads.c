/*
 * threads: several threads use the device at once, each with the primary
 * context current (contexts are per thread), its own stream and buffers.
 * Each fills a buffer with its own value, adds it to itself and checks.
 *
 *     threads [kernels.ptx] [threads] [rounds]
 */
#include <pthread.h>

#include "gpufabric_cuda.h"

static gf_driver cu;
static CUcontext primary;
static CUfunction fill, add;
static int rounds = 20;
static const int n = 1 << 16;

static void *worker(void *arg) {
	int id = (int)(intptr_t)arg;
	/* A new thread has no current context until it sets one. */
	CUcontext none = (CUcontext)1;
	GF_CHECK(cu.cuCtxGetCurrent(&none));
	if (none != NULL)
		gf_die("a new thread starts with a current context");
	GF_CHECK(cu.cuCtxSetCurrent(primary));
	CUstream st;
	GF_CHECK(cu.cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	CUdeviceptr a, c;
	GF_CHECK(cu.cuMemAlloc(&a, n * sizeof(float)));
	GF_CHECK(cu.cuMemAlloc(&c, n * sizeof(float)));
	float *out = malloc(n * sizeof(float));
	for (int r = 0; r < rounds; r++) {
		float v = (float)(id * 1000 + r);
		unsigned int bits;
		memcpy(&bits, &v, sizeof bits);
		unsigned long long count = n;
		int nn = n;
		void *fargs[] = {&a, &bits, &count};
		void *aargs[] = {&a, &a, &c, &nn};
		GF_CHECK(cu.cuLaunchKernel(fill, n / 256, 1, 1, 256, 1, 1, 0, st, fargs, NULL));
		GF_CHECK(cu.cuLaunchKernel(add, n / 256, 1, 1, 256, 1, 1, 0, st, aargs, NULL));
		GF_CHECK(cu.cuMemcpyDtoHAsync(out, c, n * sizeof(float), st));
		GF_CHECK(cu.cuStreamSynchronize(st));
		for (int i = 0; i < n; i++) {
			if (out[i] != 2 * v) {
				fprintf(stderr, "FAIL: thread %d round %d: c[%d] = %g, want %g\n", id, r, i, out[i], 2 * v);
				exit(1);
			}
		}
	}
	GF_CHECK(cu.cuMemFree(a));
	GF_CHECK(cu.cuMemFree(c));
	GF_CHECK(cu.cuStreamDestroy(st));
	free(out);
	return NULL;
}

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int nt = argc > 2 ? atoi(argv[2]) : 8;
	if (argc > 3)
		rounds = atoi(argv[3]);
	if (nt < 1 || nt > 64 || rounds < 1)
		gf_die("want 1..64 threads and positive rounds");
	primary = gf_setup(&cu);
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&fill, mod, "fill_u32"));
	GF_CHECK(cu.cuModuleGetFunction(&add, mod, "vector_add"));

	double t = gf_now_ms();
	pthread_t th[64];
	for (int i = 0; i < nt; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0)
			gf_die("pthread_create");
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	GF_CHECK(cu.cuCtxSynchronize());
	printf("threads: %d threads x %d rounds correct in %.3f ms\n", nt, rounds, gf_now_ms() - t);
	GF_CHECK(cu.cuModuleUnload(mod));
	free(ptx);
	return 0;
}
