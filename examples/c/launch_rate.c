/*
 * launch_rate: how many kernel launches a second reach the GPU. N launches
 * of spin(0) (a kernel that does nothing) are queued, then one
 * cuCtxSynchronize waits for them all; launches/second counts both. The
 * round trip of a synchronising call is measured too, for comparison.
 *
 *     launch_rate [kernels.ptx] [launches]
 */
#include "gpufabric_cuda.h"

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int n = argc > 2 ? atoi(argv[2]) : 100000;
	if (n <= 0)
		gf_die("launches must be positive");

	gf_driver cu;
	gf_setup(&cu);
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	CUfunction spin;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&spin, mod, "spin"));
	unsigned long long ns = 0;
	void *args[] = {&ns};

	/* Warm up: the first launches set up threads on both sides. */
	for (int i = 0; i < 1000; i++)
		GF_CHECK(cu.cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	GF_CHECK(cu.cuCtxSynchronize());

	double t0 = gf_now_ms();
	for (int i = 0; i < n; i++)
		GF_CHECK(cu.cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
	double queued = gf_now_ms() - t0;
	GF_CHECK(cu.cuCtxSynchronize());
	double total = gf_now_ms() - t0;

	int syncs = 2000;
	double s0 = gf_now_ms();
	for (int i = 0; i < syncs; i++)
		GF_CHECK(cu.cuCtxSynchronize());
	double sync_us = (gf_now_ms() - s0) * 1e3 / syncs;

	printf("launches: %d\n", n);
	printf("queue time: %.3f ms (%.0f launches/s issued)\n", queued, n / (queued / 1e3));
	printf("launch_rate: %.0f launches/s (%.3f us per launch, including the final synchronize)\n",
	       n / (total / 1e3), total * 1e3 / n);
	printf("sync round trip: %.1f us\n", sync_us);
	GF_CHECK(cu.cuModuleUnload(mod));
	free(ptx);
	return 0;
}
