/*
 * conf_exec: conformance of the execution families, written from the CUDA
 * driver API reference: stream capture and graphs, host functions and
 * stream callbacks, stream memory operations, occupancy, the contexts that
 * own modules, and JIT linking. Each check says what the reference
 * promises; the program exits 1 at the first that does not hold, and
 * prints one line per family that passed.
 *
 *     conf_exec [kernels.ptx]
 */
#include "gpufabric_cuda.h"

static gf_driver cu;
static gf_exec x;

#define N 4096

static unsigned int f32bits(float f) {
	unsigned int b;
	memcpy(&b, &f, sizeof b);
	return b;
}

static void expect_u32(CUdeviceptr p, size_t n, unsigned int want, const char *what) {
	unsigned int *h = malloc(n * sizeof *h);
	GF_CHECK(cu.cuMemcpyDtoH(h, p, n * sizeof *h));
	for (size_t i = 0; i < n; i++) {
		if (h[i] != want) {
			fprintf(stderr, "FAIL: %s: element %zu = %#x, want %#x\n", what, i, h[i], want);
			exit(1);
		}
	}
	free(h);
}

/* Graphs: a capture records and does not run; the instantiated graph runs
 * everything it recorded, in order, at each launch. */
static void graphs(CUfunction scale) {
	CUstream s, other;
	GF_CHECK(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	GF_CHECK(cu.cuStreamCreate(&other, CU_STREAM_NON_BLOCKING));
	CUdeviceptr a, b;
	GF_CHECK(cu.cuMemAlloc(&a, N * 4));
	GF_CHECK(cu.cuMemAlloc(&b, N * 4));
	GF_CHECK(cu.cuMemsetD32(a, 0, N));
	GF_CHECK(cu.cuMemsetD32(b, 0, N));
	/* Non-blocking streams are not ordered with the NULL stream's work. */
	GF_CHECK(cu.cuCtxSynchronize());

	CUstreamCaptureStatus st;
	GF_CHECK(x.cuStreamIsCapturing(s, &st));
	if (st != CU_STREAM_CAPTURE_STATUS_NONE)
		gf_die("a new stream is capturing");
	/* The legacy NULL stream cannot be captured. */
	GF_EXPECT(x.cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);

	GF_CHECK(x.cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	cuuint64_t id = 0;
	GF_CHECK(x.cuStreamGetCaptureInfo(s, &st, &id, NULL, NULL, NULL));
	if (st != CU_STREAM_CAPTURE_STATUS_ACTIVE || id == 0)
		gf_die("cuStreamGetCaptureInfo: not active, or no id");
	/* a = 1.0; a *= 3; a *= 3; b = a */
	unsigned long long n = N;
	float three = 3;
	void *args[] = {&a, &three, &n};
	GF_CHECK(cu.cuMemsetD32Async(a, f32bits(1), N, s));
	GF_CHECK(cu.cuLaunchKernel(scale, N / 256, 1, 1, 256, 1, 1, 0, s, args, NULL));
	GF_CHECK(cu.cuLaunchKernel(scale, N / 256, 1, 1, 256, 1, 1, 0, s, args, NULL));
	GF_CHECK(x.cuMemcpyDtoDAsync(b, a, N * 4, s));
	CUgraph g;
	GF_CHECK(x.cuStreamEndCapture(s, &g));
	GF_CHECK(x.cuStreamIsCapturing(s, &st));
	if (st != CU_STREAM_CAPTURE_STATUS_NONE)
		gf_die("still capturing after cuStreamEndCapture");
	/* Captured work has not run. */
	GF_CHECK(cu.cuStreamSynchronize(s));
	expect_u32(b, N, 0, "b after capture alone");

	CUgraphExec ge;
	GF_CHECK(x.cuGraphInstantiate(&ge, g, 0));
	GF_CHECK(x.cuGraphUpload(ge, other));
	for (int round = 0; round < 3; round++) {
		GF_CHECK(cu.cuMemsetD32Async(b, 0, N, other));
		GF_CHECK(x.cuGraphLaunch(ge, other));
		GF_CHECK(cu.cuStreamSynchronize(other));
		expect_u32(b, N, f32bits(9), "b after a graph launch");
	}
	GF_CHECK(x.cuGraphExecDestroy(ge));
	GF_CHECK(x.cuGraphDestroy(g));

	/* Across streams: an event recorded in the capture forks it to the
	 * stream that waits for it, and one recorded there joins it back. */
	CUevent fork, join;
	GF_CHECK(cu.cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
	GF_CHECK(cu.cuEventCreate(&join, CU_EVENT_DISABLE_TIMING));
	GF_CHECK(x.cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	GF_CHECK(cu.cuMemsetD32Async(a, f32bits(1), N, s));
	GF_CHECK(cu.cuEventRecord(fork, s));
	GF_CHECK(cu.cuStreamWaitEvent(other, fork, 0));
	GF_CHECK(x.cuStreamIsCapturing(other, &st));
	if (st != CU_STREAM_CAPTURE_STATUS_ACTIVE)
		gf_die("a stream that waited for a captured event does not capture");
	GF_CHECK(cu.cuLaunchKernel(scale, N / 256, 1, 1, 256, 1, 1, 0, other, args, NULL));
	GF_CHECK(cu.cuEventRecord(join, other));
	GF_CHECK(cu.cuStreamWaitEvent(s, join, 0));
	GF_CHECK(x.cuMemcpyDtoDAsync(b, a, N * 4, s));
	GF_CHECK(x.cuStreamEndCapture(s, &g));
	GF_CHECK(x.cuStreamIsCapturing(other, &st));
	if (st != CU_STREAM_CAPTURE_STATUS_NONE)
		gf_die("a forked stream still captures after the end");
	GF_CHECK(x.cuGraphInstantiate(&ge, g, 0));
	GF_CHECK(cu.cuMemsetD32Async(b, 0, N, s));
	GF_CHECK(x.cuGraphLaunch(ge, s));
	GF_CHECK(cu.cuStreamSynchronize(s));
	expect_u32(b, N, f32bits(3), "b after a forked graph");
	GF_CHECK(x.cuGraphExecDestroy(ge));
	GF_CHECK(x.cuGraphDestroy(g));
	GF_CHECK(cu.cuEventDestroy(fork));
	GF_CHECK(cu.cuEventDestroy(join));

	/* A synchronisation in capture is not permitted, and invalidates it. */
	GF_CHECK(x.cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
	GF_EXPECT(cu.cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
	GF_CHECK(x.cuStreamIsCapturing(s, &st));
	if (st != CU_STREAM_CAPTURE_STATUS_INVALIDATED)
		gf_die("a capture that met a synchronisation is not invalidated");
	GF_EXPECT(x.cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
	GF_CHECK(cu.cuStreamSynchronize(s)); /* and the stream works again */

	GF_CHECK(cu.cuMemFree(a));
	GF_CHECK(cu.cuMemFree(b));
	GF_CHECK(cu.cuStreamDestroy(s));
	GF_CHECK(cu.cuStreamDestroy(other));
	printf("graphs: capture, instantiate, 3 launches, fork and join, invalidation: ok\n");
}

/* Host functions run once each, in stream order, before the stream's
 * later work, and a callback sees the stream's status. */
static volatile int calls[8];
static volatile int ncalls;

static volatile CUresult sync_inside = CUDA_SUCCESS;
static CUstream sync_stream;

static void host_fn(void *data) { calls[ncalls++] = (int)(intptr_t)data; }

/* A host function must not call CUDA; a synchronisation from one would
 * wait for the function itself. */
static void host_fn_syncing(void *data) {
	(void)data;
	sync_inside = cu.cuStreamSynchronize(sync_stream);
}

static void stream_cb(CUstream s, CUresult status, void *data) {
	(void)s;
	calls[ncalls++] = status == CUDA_SUCCESS ? (int)(intptr_t)data : -1;
}

static void host_functions(void) {
	CUstream s;
	GF_CHECK(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 4));
	GF_CHECK(cu.cuMemsetD32Async(p, 1, 1, s));
	GF_CHECK(x.cuLaunchHostFunc(s, host_fn, (void *)1));
	GF_CHECK(x.cuStreamAddCallback(s, stream_cb, (void *)2, 0));
	GF_CHECK(x.cuLaunchHostFunc(s, host_fn, (void *)3));
	GF_CHECK(x.cuStreamWriteValue32(s, p, 4, CU_STREAM_WRITE_VALUE_DEFAULT));
	GF_CHECK(cu.cuStreamSynchronize(s));
	if (ncalls != 3 || calls[0] != 1 || calls[1] != 2 || calls[2] != 3) {
		fprintf(stderr, "FAIL: host functions ran %d times: %d %d %d\n", ncalls, calls[0], calls[1], calls[2]);
		exit(1);
	}
	expect_u32(p, 1, 4, "the write after the host functions");
	sync_stream = s;
	GF_CHECK(x.cuLaunchHostFunc(s, host_fn_syncing, NULL));
	GF_CHECK(cu.cuStreamSynchronize(s));
	if (sync_inside == CUDA_SUCCESS)
		gf_die("a host function synchronised its own stream");
	/* cuStreamAddCallback's flags must be 0. */
	GF_EXPECT(x.cuStreamAddCallback(s, stream_cb, NULL, 1), CUDA_ERROR_INVALID_VALUE);
	GF_EXPECT(x.cuLaunchHostFunc(s, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
	GF_CHECK(cu.cuMemFree(p));
	GF_CHECK(cu.cuStreamDestroy(s));
	printf("host functions: 3 in order, callback status, no synchronisation inside (%s), bad flags: ok\n",
	       gf_result_name(sync_inside));
}

/* A stream that waits on a value runs nothing after the wait until the
 * value is written. */
static void memory_ops(void) {
	CUstream waiter, writer;
	GF_CHECK(cu.cuStreamCreate(&waiter, CU_STREAM_NON_BLOCKING));
	GF_CHECK(cu.cuStreamCreate(&writer, CU_STREAM_NON_BLOCKING));
	CUdeviceptr flag, out;
	GF_CHECK(cu.cuMemAlloc(&flag, 16));
	GF_CHECK(cu.cuMemAlloc(&out, 4 * 16));
	GF_CHECK(cu.cuMemsetD32(flag, 0, 4));
	GF_CHECK(cu.cuMemsetD32(out, 0, 16));
	GF_CHECK(cu.cuCtxSynchronize());

	GF_CHECK(x.cuStreamWaitValue32(waiter, flag, 1, CU_STREAM_WAIT_VALUE_EQ));
	GF_CHECK(cu.cuMemsetD32Async(out, 7, 16, waiter));
	GF_EXPECT(cu.cuStreamQuery(waiter), CUDA_ERROR_NOT_READY);
	GF_CHECK(x.cuStreamWriteValue32(writer, flag, 1, CU_STREAM_WRITE_VALUE_DEFAULT));
	GF_CHECK(cu.cuStreamSynchronize(waiter));
	expect_u32(out, 16, 7, "after the awaited write");

	/* 64-bit words, and a batch: write 2^40 + 5, wait for >= it, write 9. */
	CUdeviceptr w64 = flag + 8;
	GF_CHECK(x.cuStreamWriteValue64(writer, w64, (1ull << 40) + 5, 0));
	GF_CHECK(x.cuStreamWaitValue64(waiter, w64, (1ull << 40) + 5, CU_STREAM_WAIT_VALUE_GEQ));
	CUstreamBatchMemOpParams ops[2];
	memset(ops, 0, sizeof ops);
	ops[0].operation = CU_STREAM_MEM_OP_WAIT_VALUE_64;
	ops[0].waitValue.address = w64;
	ops[0].waitValue.value64 = 1ull << 40;
	ops[0].waitValue.flags = CU_STREAM_WAIT_VALUE_AND;
	ops[1].operation = CU_STREAM_MEM_OP_WRITE_VALUE_32;
	ops[1].writeValue.address = flag;
	ops[1].writeValue.value = 9;
	GF_CHECK(x.cuStreamBatchMemOp(waiter, 2, ops, 0));
	GF_CHECK(cu.cuStreamSynchronize(waiter));
	expect_u32(flag, 1, 9, "the batch's write");

	/* Bad flags are refused at the call. */
	GF_EXPECT(x.cuStreamWaitValue32(waiter, flag, 1, 7), CUDA_ERROR_INVALID_VALUE);
	GF_EXPECT(x.cuStreamWriteValue32(waiter, flag, 1, 2), CUDA_ERROR_INVALID_VALUE);
	GF_EXPECT(x.cuStreamBatchMemOp(waiter, 2, ops, 1), CUDA_ERROR_INVALID_VALUE);

	GF_CHECK(cu.cuMemFree(flag));
	GF_CHECK(cu.cuMemFree(out));
	GF_CHECK(cu.cuStreamDestroy(waiter));
	GF_CHECK(cu.cuStreamDestroy(writer));
	printf("stream memory operations: wait/write 32 and 64, batch, bad flags: ok\n");
}

static int b2smem_calls;

/* Past 128 threads a block wants 40 KiB of shared memory. */
static size_t b2smem(int block) {
	b2smem_calls++;
	return block > 128 ? 40 << 10 : 0;
}

static void occupancy(CUfunction f) {
	CUdevice dev;
	GF_CHECK(cu.cuCtxGetDevice(&dev));
	int per_sm, max_block, warp, sms;
	GF_CHECK(cu.cuDeviceGetAttribute(&per_sm, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, dev));
	GF_CHECK(cu.cuDeviceGetAttribute(&max_block, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, dev));
	GF_CHECK(cu.cuDeviceGetAttribute(&warp, CU_DEVICE_ATTRIBUTE_WARP_SIZE, dev));
	GF_CHECK(cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev));

	int blocks = -1;
	GF_CHECK(x.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, f, 256, 0));
	if (blocks < 1 || blocks * 256 > per_sm) {
		fprintf(stderr, "FAIL: %d blocks of 256 threads per multiprocessor of %d threads\n", blocks, per_sm);
		exit(1);
	}
	GF_EXPECT(x.cuOccupancyMaxActiveBlocksPerMultiprocessor(NULL, f, 256, 0), CUDA_ERROR_INVALID_VALUE);

	int min_grid = 0, block = 0;
	GF_CHECK(x.cuOccupancyMaxPotentialBlockSize(&min_grid, &block, f, NULL, 0, 0));
	if (block < warp || block > max_block || block % warp != 0 || min_grid < sms) {
		fprintf(stderr, "FAIL: potential block size %d, min grid %d\n", block, min_grid);
		exit(1);
	}
	/* With the limit, no larger than it. */
	GF_CHECK(x.cuOccupancyMaxPotentialBlockSize(&min_grid, &block, f, NULL, 0, 64));
	if (block > 64 || block < 1)
		gf_die("cuOccupancyMaxPotentialBlockSize passed its block size limit");
	/* With shared memory per block size, the small blocks win. */
	GF_CHECK(x.cuOccupancyMaxPotentialBlockSize(&min_grid, &block, f, b2smem, 0, 0));
	if (b2smem_calls == 0 || block > 128) {
		fprintf(stderr, "FAIL: %d calls of the shared-memory function, block size %d\n", b2smem_calls, block);
		exit(1);
	}
	printf("occupancy: %d blocks of 256 per multiprocessor, best block %d: ok\n", blocks, block);
}

/* cut_entries is the PTX header of src (all before its first entry) and
 * the named entry, NUL-terminated: a module of its own, as a separate
 * compilation would give. */
static char *cut_entry(const char *src, const char *entry) {
	const char *first = strstr(src, ".visible .entry");
	char pat[128];
	snprintf(pat, sizeof pat, ".visible .entry %s(", entry);
	const char *e = strstr(src, pat);
	const char *end = e ? strstr(e, "\n}\n") : NULL;
	if (!first || !e || !end)
		gf_die("the kernels' PTX lacks an entry to link");
	size_t head = (size_t)(first - src), body = (size_t)(end + 3 - e);
	char *out = malloc(head + body + 1);
	memcpy(out, src, head);
	memcpy(out + head, e, body);
	out[head + body] = 0;
	return out;
}

/* JIT linking: two PTX inputs link into one image that cuModuleLoadData
 * loads, with both inputs' entries; an input defined twice fails the link
 * and the error log says why. */
static void jit_link(const char *ptx) {
	char *fill = cut_entry(ptx, "fill_u32"), *scale = cut_entry(ptx, "scale_f32");
	CUlinkState link;
	GF_CHECK(x.cuLinkCreate(0, NULL, NULL, &link));
	GF_CHECK(x.cuLinkAddData(link, CU_JIT_INPUT_PTX, fill, strlen(fill) + 1, "fill.ptx", 0, NULL, NULL));
	GF_CHECK(x.cuLinkAddData(link, CU_JIT_INPUT_PTX, scale, strlen(scale) + 1, "scale.ptx", 0, NULL, NULL));
	void *image;
	size_t size = 0;
	GF_CHECK(x.cuLinkComplete(link, &image, &size));
	if (!image || size == 0)
		gf_die("cuLinkComplete gave no image");
	CUmodule mod;
	CUfunction f_fill, f_scale;
	GF_CHECK(cu.cuModuleLoadData(&mod, image));
	GF_CHECK(x.cuLinkDestroy(link)); /* the module does not need the image */
	GF_CHECK(cu.cuModuleGetFunction(&f_fill, mod, "fill_u32"));
	GF_CHECK(cu.cuModuleGetFunction(&f_scale, mod, "scale_f32"));
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 256 * 4));
	unsigned long long n = 256;
	unsigned int two = f32bits(2);
	float four = 4;
	void *fargs[] = {&p, &two, &n}, *sargs[] = {&p, &four, &n};
	GF_CHECK(cu.cuLaunchKernel(f_fill, 1, 1, 1, 256, 1, 1, 0, NULL, fargs, NULL));
	GF_CHECK(cu.cuLaunchKernel(f_scale, 1, 1, 1, 256, 1, 1, 0, NULL, sargs, NULL));
	expect_u32(p, 256, f32bits(8), "a kernel of the linked module");
	GF_CHECK(cu.cuMemFree(p));
	GF_CHECK(cu.cuModuleUnload(mod));

	/* The same entry twice: the link fails, and says so in its log. */
	char log[1024] = "";
	CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *vals[] = {log, (void *)(uintptr_t)sizeof log};
	GF_CHECK(x.cuLinkCreate(2, opts, vals, &link));
	CUresult r1 = x.cuLinkAddData(link, CU_JIT_INPUT_PTX, fill, strlen(fill) + 1, "a.ptx", 0, NULL, NULL);
	CUresult r2 = x.cuLinkAddData(link, CU_JIT_INPUT_PTX, fill, strlen(fill) + 1, "b.ptx", 0, NULL, NULL);
	CUresult r3 = r1 || r2 ? r1 | r2 : x.cuLinkComplete(link, &image, &size);
	if (r3 == CUDA_SUCCESS || log[0] == 0) {
		fprintf(stderr, "FAIL: a link defining fill_u32 twice: %d %d %d, log \"%s\"\n", r1, r2, r3, log);
		exit(1);
	}
	GF_CHECK(x.cuLinkDestroy(link));
	free(fill);
	free(scale);
	printf("JIT link: two PTX inputs linked, loaded and run; a duplicate refused: ok\n");
}

/* A module belongs to the context that loaded it: its functions are not
 * valid handles while another context is current. */
static void context_ownership(CUcontext primary, CUfunction f) {
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 256 * 4));
	unsigned long long n = 256;
	float two = 2;
	void *args[] = {&p, &two, &n};
	CUcontext other;
	GF_CHECK(cu.cuCtxCreate(&other, 0, 0)); /* and makes it current */
	GF_EXPECT(cu.cuLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, NULL, args, NULL), CUDA_ERROR_INVALID_HANDLE);
	GF_CHECK(cu.cuCtxDestroy(other));
	GF_CHECK(cu.cuCtxSetCurrent(primary));
	GF_CHECK(cu.cuLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
	GF_CHECK(cu.cuCtxSynchronize());
	GF_CHECK(cu.cuMemFree(p));
	printf("context ownership: a function of another context is refused: ok\n");
}

int main(int argc, char **argv) {
	CUcontext primary = gf_setup(&cu);
	gf_load_exec(&x, &cu);
	char *ptx = gf_read_file(gf_kernels_path(argc > 1 ? argv[1] : NULL), NULL);
	CUmodule mod;
	CUfunction scale;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&scale, mod, "scale_f32"));
	graphs(scale);
	host_functions();
	memory_ops();
	occupancy(scale);
	context_ownership(primary, scale);
	jit_link(ptx);
	GF_CHECK(cu.cuModuleUnload(mod));
	GF_CHECK(cu.cuCtxSynchronize());
	free(ptx);
	printf("conf_exec: ok\n");
	return 0;
}
