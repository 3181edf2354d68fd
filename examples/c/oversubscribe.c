/*
 * oversubscribe: the share is a limit. An allocation past it fails with
 * CUDA_ERROR_OUT_OF_MEMORY, as on a full GPU, and memory freed can be
 * allocated again. Exits 0 when the limit holds.
 */
#include "gpufabric_cuda.h"

int main(void) {
	gf_driver cu;
	gf_setup(&cu);
	size_t free_b, total;
	GF_CHECK(cu.cuMemGetInfo(&free_b, &total));
	printf("share: %zu bytes\n", total);

	CUdeviceptr big;
	CUresult r = cu.cuMemAlloc(&big, total + (1 << 20));
	printf("allocate share + 1 MiB: %s\n", gf_result_name(r));
	if (r != CUDA_ERROR_OUT_OF_MEMORY) {
		fprintf(stderr, "FAIL: an allocation past the share returned %d, want CUDA_ERROR_OUT_OF_MEMORY\n", (int)r);
		return 1;
	}

	/* Fill the share in eighths; the ninth must not fit. */
	CUdeviceptr parts[9];
	size_t eighth = total / 8;
	int got = 0;
	for (; got < 9; got++) {
		r = cu.cuMemAlloc(&parts[got], eighth);
		if (r != CUDA_SUCCESS)
			break;
	}
	printf("allocated %d of 9 eighths; the next: %s\n", got, gf_result_name(r));
	if (got > 8 || r != CUDA_ERROR_OUT_OF_MEMORY) {
		fprintf(stderr, "FAIL: the share held %d eighths (last result %d)\n", got, (int)r);
		return 1;
	}
	GF_CHECK(cu.cuMemFree(parts[0]));
	GF_CHECK(cu.cuCtxSynchronize());
	GF_CHECK(cu.cuMemAlloc(&parts[0], eighth));
	for (int i = 0; i < got; i++)
		GF_CHECK(cu.cuMemFree(parts[i]));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("oversubscribe: CUDA_ERROR_OUT_OF_MEMORY past the share, as expected\n");
	return 0;
}
