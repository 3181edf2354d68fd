/*
 * saxpy: y = a*x + y on the GPU, checked on the host, with timings.
 *
 *     saxpy [kernels.ptx] [elements]
 */
#include "gpufabric_cuda.h"

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int n = argc > 2 ? atoi(argv[2]) : 4 << 20;
	if (n <= 0)
		gf_die("elements must be positive");
	size_t bytes = (size_t)n * sizeof(float);
	float alpha = 2.5f;

	gf_driver cu;
	double t = gf_now_ms();
	gf_setup(&cu);
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	CUfunction saxpy;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&saxpy, mod, "saxpy"));
	printf("  %-40s %10.3f ms\n", "init, load saxpy", gf_now_ms() - t);

	float *x = malloc(bytes), *y = malloc(bytes), *out = malloc(bytes);
	if (!x || !y || !out)
		gf_die("host allocation");
	for (int i = 0; i < n; i++) {
		x[i] = (float)(i % 1000) * 0.5f;
		y[i] = (float)(i % 7);
	}
	CUdeviceptr dx, dy;
	t = gf_now_ms();
	GF_CHECK(cu.cuMemAlloc(&dx, bytes));
	GF_CHECK(cu.cuMemAlloc(&dy, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(dx, x, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(dy, y, bytes));
	double in_ms = gf_now_ms() - t;
	printf("  %-40s %10.3f ms (%.0f MB/s)\n", "allocate, copy x and y in", in_ms, 2 * bytes / 1e6 / (in_ms / 1e3));

	t = gf_now_ms();
	void *args[] = {&n, &alpha, &dx, &dy};
	unsigned int block = 256, grid = (unsigned int)((n + block - 1) / block);
	GF_CHECK(cu.cuLaunchKernel(saxpy, grid, 1, 1, block, 1, 1, 0, NULL, args, NULL));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("  %-40s %10.3f ms\n", "saxpy, synchronize", gf_now_ms() - t);

	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpyDtoH(out, dy, bytes));
	double out_ms = gf_now_ms() - t;
	printf("  %-40s %10.3f ms (%.0f MB/s)\n", "copy y out", out_ms, bytes / 1e6 / (out_ms / 1e3));

	for (int i = 0; i < n; i++) {
		float want = alpha * x[i] + y[i];
		float diff = out[i] > want ? out[i] - want : want - out[i];
		if (diff > 1e-5f * (want > 0 ? want : -want) + 1e-6f) {
			fprintf(stderr, "FAIL: y[%d] = %g, want %g\n", i, out[i], want);
			return 1;
		}
	}
	GF_CHECK(cu.cuMemFree(dx));
	GF_CHECK(cu.cuMemFree(dy));
	GF_CHECK(cu.cuModuleUnload(mod));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("saxpy: %d elements correct\n", n);
	free(x);
	free(y);
	free(out);
	free(ptx);
	return 0;
}
