/*
 * streams: work on several streams at once, ordered by events. Each stream
 * fills its slice of a buffer (memset), scales it (scale_f32), and copies it
 * back into page-locked host memory; a last stream waits for every other
 * stream's event and sums the whole buffer (reduce_sum_f32). Events time
 * each stream's work with cuEventElapsedTime.
 *
 *     streams [kernels.ptx] [streams] [elements per stream]
 */
#include "gpufabric_cuda.h"

#define MAX_STREAMS 16

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int ns = argc > 2 ? atoi(argv[2]) : 4;
	int per = argc > 3 ? atoi(argv[3]) : 1 << 18;
	if (ns < 1 || ns > MAX_STREAMS || per < 1)
		gf_die("want 1..16 streams and a positive element count");

	gf_driver cu;
	gf_setup(&cu);
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod;
	CUfunction scale, reduce;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&scale, mod, "scale_f32"));
	GF_CHECK(cu.cuModuleGetFunction(&reduce, mod, "reduce_sum_f32"));

	int least, greatest;
	GF_CHECK(cu.cuCtxGetStreamPriorityRange(&least, &greatest));

	size_t total = (size_t)ns * per;
	CUdeviceptr buf, sum;
	GF_CHECK(cu.cuMemAlloc(&buf, total * sizeof(float)));
	GF_CHECK(cu.cuMemAlloc(&sum, sizeof(float)));
	float *host;
	GF_CHECK(cu.cuMemAllocHost((void **)&host, total * sizeof(float)));

	CUstream st[MAX_STREAMS + 1];
	CUevent start[MAX_STREAMS], done[MAX_STREAMS];
	for (int i = 0; i <= ns; i++)
		GF_CHECK(cu.cuStreamCreateWithPriority(&st[i], CU_STREAM_NON_BLOCKING, i % 2 ? greatest : least));

	double t = gf_now_ms();
	for (int i = 0; i < ns; i++) {
		GF_CHECK(cu.cuEventCreate(&start[i], CU_EVENT_DEFAULT));
		GF_CHECK(cu.cuEventCreate(&done[i], CU_EVENT_DEFAULT));
		CUdeviceptr slice = buf + (CUdeviceptr)i * per * sizeof(float);
		float one = 1.0f, factor = (float)(i + 1);
		unsigned int bits;
		memcpy(&bits, &one, sizeof bits);
		unsigned long long count = (unsigned long long)per;
		void *args[] = {&slice, &factor, &count};
		GF_CHECK(cu.cuEventRecord(start[i], st[i]));
		GF_CHECK(cu.cuMemsetD32Async(slice, bits, (size_t)per, st[i]));
		GF_CHECK(cu.cuLaunchKernel(scale, (unsigned int)((per + 255) / 256), 1, 1, 256, 1, 1, 0, st[i], args, NULL));
		GF_CHECK(cu.cuMemcpyDtoHAsync(host + (size_t)i * per, slice, (size_t)per * sizeof(float), st[i]));
		GF_CHECK(cu.cuEventRecord(done[i], st[i]));
		GF_CHECK(cu.cuStreamWaitEvent(st[ns], done[i], 0));
	}
	/* The last stream sums everything once every slice is scaled. */
	int n = (int)total;
	void *rargs[] = {&buf, &sum, &n};
	GF_CHECK(cu.cuMemsetD32Async(sum, 0, 1, st[ns]));
	GF_CHECK(cu.cuLaunchKernel(reduce, (unsigned int)((total + 255) / 256), 1, 1, 256, 1, 1, 0, st[ns], rargs, NULL));
	float gpu_sum = 0;
	GF_CHECK(cu.cuMemcpyDtoHAsync(&gpu_sum, sum, sizeof gpu_sum, st[ns]));
	for (int i = 0; i <= ns; i++)
		GF_CHECK(cu.cuStreamSynchronize(st[i]));
	double wall = gf_now_ms() - t;

	double want_sum = 0;
	for (int i = 0; i < ns; i++) {
		for (int j = 0; j < per; j++) {
			float got = host[(size_t)i * per + j];
			if (got != (float)(i + 1)) {
				fprintf(stderr, "FAIL: stream %d element %d = %g, want %d\n", i, j, got, i + 1);
				return 1;
			}
		}
		want_sum += (double)(i + 1) * per;
		float ms;
		GF_CHECK(cu.cuEventQuery(done[i]));
		GF_CHECK(cu.cuEventElapsedTime(&ms, start[i], done[i]));
		if (ms < 0)
			gf_die("negative elapsed time");
		printf("  stream %d: memset, scale x%d, copy out: %8.3f ms (events)\n", i, i + 1, ms);
	}
	if (gpu_sum < want_sum * 0.999 || gpu_sum > want_sum * 1.001) {
		fprintf(stderr, "FAIL: sum = %g, want %g\n", gpu_sum, want_sum);
		return 1;
	}
	for (int i = 0; i < ns; i++) {
		GF_CHECK(cu.cuEventDestroy(start[i]));
		GF_CHECK(cu.cuEventDestroy(done[i]));
	}
	for (int i = 0; i <= ns; i++)
		GF_CHECK(cu.cuStreamDestroy(st[i]));
	GF_CHECK(cu.cuMemFreeHost(host));
	GF_CHECK(cu.cuMemFree(buf));
	GF_CHECK(cu.cuMemFree(sum));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("streams: %d streams x %d elements correct, sum %.0f, %.3f ms wall\n", ns, per, gpu_sum, wall);
	free(ptx);
	return 0;
}
