/*
 * two_servers: two devices used together, which `gpufabric run -n 2
 * --spread` places on two servers. Each device adds vectors; the results
 * travel between the devices with cuMemcpyPeer, cuMemcpyPeerAsync, cuMemcpy
 * (unified addressing) and cuMemcpyDtoD, and are checked on the host; a
 * memset of one device's memory on the other's stream is refused.
 *
 *     two_servers [kernels.ptx] [elements] [lose]
 *
 * With "lose" as third argument it then prints "ready", waits for a line
 * on stdin (meanwhile the test kills device 1's server) and shows that
 * device 1's calls fail while device 0's keep working.
 */
#include "gpufabric_cuda.h"

static void add(gf_driver *cu, CUfunction fn, CUstream s, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, int n) {
	void *args[] = {&a, &b, &c, &n};
	unsigned int block = 256, grid = (unsigned int)((n + block - 1) / block);
	GF_CHECK(cu->cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, s, args, NULL));
}

int main(int argc, char **argv) {
	const char *ptx_path = gf_kernels_path(argc > 1 ? argv[1] : NULL);
	int n = argc > 2 ? atoi(argv[2]) : 1 << 20;
	if (n <= 0)
		gf_die("elements must be positive");
	size_t bytes = (size_t)n * sizeof(float);

	gf_driver cu;
	gf_memory m;
	double t = gf_now_ms();
	CUcontext c0 = gf_setup(&cu);
	gf_load_memory(&cu, &m);
	int count;
	GF_CHECK(cu.cuDeviceGetCount(&count));
	if (count < 2)
		gf_die("two_servers needs two devices: gpufabric run -n 2");
	CUcontext c1;
	GF_CHECK(cu.cuDevicePrimaryCtxRetain(&c1, 1));
	for (int d = 0; d < 2; d++) {
		char name[128], bus[32];
		GF_CHECK(cu.cuDeviceGetName(name, sizeof name, d));
		GF_CHECK(cu.cuDeviceGetPCIBusId(bus, sizeof bus, d));
		printf("device %d: %s (%s)\n", d, name, bus);
	}
	int can = 0;
	GF_CHECK(m.cuDeviceCanAccessPeer(&can, 0, 1));
	if (!can)
		gf_die("device 0 cannot copy to device 1");
	printf("  %-40s %10.3f ms\n", "init, two primary contexts", gf_now_ms() - t);

	/* Each context loads the module: a module is its device's. */
	char *ptx = gf_read_file(ptx_path, NULL);
	CUmodule mod[2];
	CUfunction fn[2];
	CUcontext ctx[2] = {c0, c1};
	for (int d = 0; d < 2; d++) {
		GF_CHECK(cu.cuCtxSetCurrent(ctx[d]));
		GF_CHECK(cu.cuModuleLoadData(&mod[d], ptx));
		GF_CHECK(cu.cuModuleGetFunction(&fn[d], mod[d], "vector_add"));
	}

	float *a = malloc(bytes), *b = malloc(bytes), *out = malloc(bytes);
	if (!a || !b || !out)
		gf_die("host allocation");
	for (int i = 0; i < n; i++) {
		a[i] = (float)i;
		b[i] = 2.0f * (float)(n - i);
	}
	/* Device 0: s0 = a + b. Device 1: s1 = s0 (from device 0) + b. */
	CUdeviceptr a0, b0, s0, x1, b1, s1, y0;
	GF_CHECK(cu.cuCtxSetCurrent(c0));
	GF_CHECK(cu.cuMemAlloc(&a0, bytes));
	GF_CHECK(cu.cuMemAlloc(&b0, bytes));
	GF_CHECK(cu.cuMemAlloc(&s0, bytes));
	GF_CHECK(cu.cuMemAlloc(&y0, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(a0, a, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(b0, b, bytes));
	GF_CHECK(cu.cuCtxSetCurrent(c1));
	GF_CHECK(cu.cuMemAlloc(&x1, bytes));
	GF_CHECK(cu.cuMemAlloc(&b1, bytes));
	GF_CHECK(cu.cuMemAlloc(&s1, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(b1, b, bytes));
	if ((a0 >= x1 && a0 < x1 + bytes) || (x1 >= a0 && x1 < a0 + bytes))
		gf_die("the two devices handed out overlapping addresses");

	t = gf_now_ms();
	GF_CHECK(cu.cuCtxSetCurrent(c0));
	add(&cu, fn[0], NULL, a0, b0, s0, n);
	/* Ordered after the kernel on device 0's stream, and before the
	 * kernel on device 1 that reads what it copied. */
	GF_CHECK(m.cuMemcpyPeer(x1, c1, s0, c0, bytes));
	GF_CHECK(cu.cuCtxSetCurrent(c1));
	CUstream st1;
	GF_CHECK(cu.cuStreamCreate(&st1, CU_STREAM_NON_BLOCKING));
	add(&cu, fn[1], st1, x1, b1, s1, n);
	GF_CHECK(m.cuMemcpyPeerAsync(y0, c0, s1, c1, bytes, st1));
	GF_CHECK(cu.cuStreamSynchronize(st1));
	/* Device 0's memory on device 1's stream: device 1's server cannot
	 * reach it, so the call is refused, as the driver refuses an access
	 * no peer mapping allows; a peer copy is the way between them. */
	GF_EXPECT(cu.cuMemsetD8Async(a0, 0, 16, st1), CUDA_ERROR_INVALID_VALUE);
	GF_EXPECT(cu.cuMemcpyHtoDAsync(a0, a, 16, st1), CUDA_ERROR_INVALID_VALUE);
	printf("  %-40s %10.3f ms\n", "kernel, peer copy, kernel, peer copy", gf_now_ms() - t);

	GF_CHECK(cu.cuCtxSetCurrent(c0));
	GF_CHECK(cu.cuMemcpyDtoH(out, y0, bytes));
	for (int i = 0; i < n; i++) {
		float want = a[i] + 2.0f * b[i];
		if (out[i] != want) {
			fprintf(stderr, "FAIL: after both devices, [%d] = %g, want %g\n", i, out[i], want);
			return 1;
		}
	}

	/* Unified addressing: cuMemcpy and cuMemcpyDtoD find each pointer's
	 * device, whichever context is current. */
	t = gf_now_ms();
	GF_CHECK(cu.cuMemcpy(x1, a0, bytes)); /* device 0 -> 1, from device 0's context */
	GF_CHECK(cu.cuCtxSetCurrent(c1));
	GF_CHECK(cu.cuMemcpyDtoD(y0, x1, bytes)); /* 1 -> 0, from device 1's */
	GF_CHECK(cu.cuCtxSetCurrent(c0));
	GF_CHECK(cu.cuMemcpyDtoH(out, y0, bytes));
	printf("  %-40s %10.3f ms\n", "cuMemcpy 0->1, cuMemcpyDtoD 1->0", gf_now_ms() - t);
	if (memcmp(out, a, bytes) != 0)
		gf_die("cuMemcpy and cuMemcpyDtoD between the devices changed the bytes");

	if (argc > 3 && strcmp(argv[3], "lose") == 0) {
		printf("ready\n");
		fflush(stdout);
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			gf_die("stdin closed");
		GF_CHECK(cu.cuCtxSetCurrent(c1));
		CUdeviceptr p;
		CUresult r = cu.cuMemAlloc(&p, 4096);
		printf("device 1 after its server died: cuMemAlloc = %d (%s)\n", (int)r, gf_result_name(r));
		GF_CHECK(cu.cuCtxSetCurrent(c0));
		GF_CHECK(cu.cuMemcpyHtoD(a0, b, bytes));
		add(&cu, fn[0], NULL, a0, b0, s0, n);
		GF_CHECK(cu.cuCtxSynchronize());
		GF_CHECK(cu.cuMemcpyDtoH(out, s0, bytes));
		for (int i = 0; i < n; i++)
			if (out[i] != 2.0f * b[i])
				gf_die("device 0 computed wrong after device 1's server died");
		printf("device 0 still works: %d elements correct\n", n);
		return 0;
	}
	GF_CHECK(cu.cuCtxSetCurrent(c1));
	GF_CHECK(cu.cuStreamDestroy(st1));
	CUdeviceptr on1[] = {x1, b1, s1}, on0[] = {a0, b0, s0, y0};
	for (int i = 0; i < 3; i++)
		GF_CHECK(cu.cuMemFree(on1[i]));
	GF_CHECK(cu.cuModuleUnload(mod[1]));
	GF_CHECK(cu.cuCtxSetCurrent(c0));
	for (int i = 0; i < 4; i++)
		GF_CHECK(cu.cuMemFree(on0[i]));
	GF_CHECK(cu.cuModuleUnload(mod[0]));
	GF_CHECK(cu.cuDevicePrimaryCtxRelease(1));
	printf("two_servers: %d elements correct on 2 devices\n", n);
	free(a);
	free(b);
	free(out);
	free(ptx);
	return 0;
}
