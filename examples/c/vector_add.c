/*
 * vector_add: c = a + b on the GPU through the driver API, checked on the
 * host, with the time of each step.
 *
 *     vector_add [kernels.ptx] [elements]
 */
#include "gpufabric_cuda.h"

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int n = argc > 2 ? atoi(argv[2]) : 1 << 20;
	if (n <= 0)
		gf_die("elements must be positive");
	size_t bytes = (size_t)n * sizeof(float);

	gf_driver cu;
	double t = gf_now_ms();
	gf_setup(&cu);
	char name[128];
	GF_CHECK(cu.cuDeviceGetName(name, sizeof name, 0));
	printf("device 0: %s\n", name);
	printf("  %-40s %10.3f ms\n", "init, primary context", gf_now_ms() - t);

	t = gf_now_ms();
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	CUfunction fn;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&fn, mod, "vector_add"));
	printf("  %-40s %10.3f ms\n", "load module, get vector_add", gf_now_ms() - t);

	float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
	if (!a || !b || !c)
		gf_die("host allocation");
	for (int i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 2.0f * (float)(n - i);
		c[i] = -1.0f;
	}
	CUdeviceptr da, db, dc;
	t = gf_now_ms();
	GF_CHECK(cu.cuMemAlloc(&da, bytes));
	GF_CHECK(cu.cuMemAlloc(&db, bytes));
	GF_CHECK(cu.cuMemAlloc(&dc, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(da, a, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(db, b, bytes));
	printf("  %-40s %10.3f ms\n", "allocate, copy a and b in", gf_now_ms() - t);

	t = gf_now_ms();
	void *args[] = {&da, &db, &dc, &n};
	unsigned int block = 256, grid = (unsigned int)((n + block - 1) / block);
	GF_CHECK(cu.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, NULL, args, NULL));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("  %-40s %10.3f ms\n", "launch vector_add, synchronize", gf_now_ms() - t);

	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyDtoH(c, dc, bytes));
	printf("  %-40s %10.3f ms\n", "copy c out", gf_now_ms() - t);

	for (int i = 0; i < n; i++) {
		float want = a[i] + b[i];
		if (c[i] != want) {
			fprintf(stderr, "FAIL: c[%d] = %g, want %g\n", i, c[i], want);
			return 1;
		}
	}
	GF_CHECK(cu.cuMemFree(da));
	GF_CHECK(cu.cuMemFree(db));
	GF_CHECK(cu.cuMemFree(dc));
	GF_CHECK(cu.cuModuleUnload(mod));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("vector_add: %d elements correct\n", n);
	free(a);
	free(b);
	free(c);
	free(ptx);
	return 0;
}
