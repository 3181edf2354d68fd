/*
 * session_end: what a program sees when its GPU server goes away. It sets
 * up, prints "ready", and waits for a line on stdin; by then the server is
 * gone, and every call must fail with CUDA_ERROR_DEINITIALIZED instead of
 * hanging or crashing. Exits 0 when they all do.
 *
 *     session_end [kernels.ptx]
 */
#include "gpufabric_cuda.h"

int main(int argc, char **argv) {
	char *ptx = gf_read_file(gf_kernels_path(argc > 1 ? argv[1] : NULL), NULL);
	gf_driver cu;
	gf_setup(&cu);
	CUmodule mod;
	CUfunction spin;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&spin, mod, "spin"));
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 1 << 20));
	CUstream st;
	GF_CHECK(cu.cuStreamCreate(&st, 0));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("ready\n");
	fflush(stdout);

	char line[64];
	if (!fgets(line, sizeof line, stdin))
		gf_die("stdin closed before the go-ahead");

	unsigned long long ns = 0;
	void *args[] = {&ns};
	char host[64] = {0};
	CUdeviceptr q;
	CUcontext ctx;
	struct {
		const char *name;
		CUresult r;
	} calls[] = {
		{"cuCtxSynchronize", cu.cuCtxSynchronize()},
		{"cuMemAlloc", cu.cuMemAlloc(&q, 4096)},
		{"cuMemcpyHtoD", cu.cuMemcpyHtoD(p, host, sizeof host)},
		{"cuLaunchKernel", cu.cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, st, args, NULL)},
		{"cuStreamSynchronize", cu.cuStreamSynchronize(st)},
		{"cuMemcpyDtoH", cu.cuMemcpyDtoH(host, p, sizeof host)},
		{"cuMemFree", cu.cuMemFree(p)},
		{"cuCtxGetCurrent", cu.cuCtxGetCurrent(&ctx)},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		printf("%s = %d (%s)\n", calls[i].name, (int)calls[i].r, gf_result_name(calls[i].r));
		if (calls[i].r != CUDA_ERROR_DEINITIALIZED)
			bad++;
	}
	if (bad) {
		fprintf(stderr, "FAIL: %d calls did not return CUDA_ERROR_DEINITIALIZED\n", bad);
		return 1;
	}
	printf("session_end: every call returned CUDA_ERROR_DEINITIALIZED\n");
	free(ptx);
	return 0;
}
