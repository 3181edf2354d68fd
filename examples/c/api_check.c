/*
 * api_check: the driver API's edges that real applications and libraries
 * depend on, checked one by one against libcuda.so.1 (and
 * libnvidia-ml.so.1): every exported name resolves, unimplemented ones say
 * CUDA_ERROR_NOT_SUPPORTED, cuGetProcAddress picks versioned and
 * per-thread symbols, the runtime's export tables, the context stack,
 * pointer attributes and unified addressing, both launch forms, the
 * library API, latched errors, and NVML. Prints one line per check.
 *
 *     api_check [kernels.ptx]
 */
#include "gpufabric_cuda.h"

typedef CUresult (*PFN_any)(void *, void *, void *, void *);
typedef CUresult (*PFN_cuGetProcAddress_v1)(const char *, void **, int, cuuint64_t);

static gf_driver cu;
static int checks;

static void ok(const char *what) {
	checks++;
	printf("ok  %s\n", what);
}

static void *sym(const char *name) {
	void *p = dlsym(cu.lib, name);
	if (!p) {
		fprintf(stderr, "FAIL: dlsym(%s) = NULL\n", name);
		exit(1);
	}
	return p;
}

static void check_exports(void) {
	static const char *names[] = {
		"cuInit", "cuMemAlloc", "cuMemAlloc_v2", "cuMemcpyHtoD_v2_ptds", "cuMemcpyHtoDAsync_v2_ptsz",
		"cuLaunchKernel_ptsz", "cuLaunchKernelEx", "cuStreamGetCaptureInfo_v3_ptsz", "cuCtxCreate_v4",
		"cuGraphInstantiateWithParams_ptsz", "cuStreamWaitValue32_v2_ptsz", "cuMemcpyBatchAsync",
		"cuTensorMapEncodeTiled", "cuGetExportTable", "cuProfilerStart", "cuGLMapBufferObjectAsync_v2_ptsz",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		sym(names[i]);
	ok("every probed driver API name is exported");

	/* Unimplemented names are real functions answering NOT_SUPPORTED. */
	static const char *stubs[] = {"cuGraphCreate", "cuMemAllocManaged", "cuArrayCreate_v2", "cuTexObjectCreate",
	                              "cuMemPoolExportPointer", "cuSurfObjectCreate", "cuMemExportToShareableHandle", "cuGraphAddKernelNode"};
	for (size_t i = 0; i < sizeof stubs / sizeof stubs[0]; i++) {
		PFN_any f = (PFN_any)sym(stubs[i]);
		CUresult r = f(NULL, NULL, NULL, NULL);
		if (r != CUDA_ERROR_NOT_SUPPORTED) {
			fprintf(stderr, "FAIL: %s() = %d, want CUDA_ERROR_NOT_SUPPORTED (801)\n", stubs[i], (int)r);
			exit(1);
		}
	}
	ok("unimplemented names return CUDA_ERROR_NOT_SUPPORTED (801)");
}

static void check_proc_address(void) {
	void *p = NULL;
	CUdriverProcAddressQueryResult st = 9;
	GF_CHECK(cu.cuGetProcAddress("cuMemAlloc", &p, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != sym("cuMemAlloc_v2") || st != CU_GET_PROC_ADDRESS_SUCCESS)
		gf_die("cuGetProcAddress(cuMemAlloc, 12000) is not cuMemAlloc_v2");
	GF_CHECK(cu.cuGetProcAddress("cuMemAlloc", &p, 3000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != sym("cuMemAlloc"))
		gf_die("cuGetProcAddress(cuMemAlloc, 3000) is not the 32-bit cuMemAlloc");
	GF_CHECK(cu.cuGetProcAddress("cuMemcpyHtoD", &p, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
	if (p != sym("cuMemcpyHtoD_v2_ptds"))
		gf_die("per-thread cuMemcpyHtoD is not cuMemcpyHtoD_v2_ptds");
	GF_CHECK(cu.cuGetProcAddress("cuLaunchKernel", &p, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
	if (p != sym("cuLaunchKernel_ptsz"))
		gf_die("per-thread cuLaunchKernel is not cuLaunchKernel_ptsz");
	GF_CHECK(cu.cuGetProcAddress("cuStreamGetCaptureInfo", &p, 12030, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != sym("cuStreamGetCaptureInfo_v3"))
		gf_die("cuStreamGetCaptureInfo at 12030 is not _v3");
	GF_CHECK(cu.cuGetProcAddress("cuGetProcAddress", &p, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != sym("cuGetProcAddress_v2"))
		gf_die("cuGetProcAddress does not return its own _v2");
	ok("cuGetProcAddress picks versioned and per-thread symbols");

	p = (void *)1;
	GF_CHECK(cu.cuGetProcAddress("", &p, 0, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != NULL || st != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)
		gf_die("cuGetProcAddress(\"\") found something");
	GF_CHECK(cu.cuGetProcAddress("cuNoSuchFunction", &p, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
	if (p != NULL || st != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND)
		gf_die("cuGetProcAddress(cuNoSuchFunction) found something");
	PFN_cuGetProcAddress_v1 v1 = (PFN_cuGetProcAddress_v1)sym("cuGetProcAddress");
	GF_EXPECT(v1("cuNoSuchFunction", &p, 12000, 0), CUDA_ERROR_NOT_FOUND);
	GF_EXPECT(cu.cuGetProcAddress("cuMemAlloc", &p, 99000, 0, &st), CUDA_ERROR_INVALID_VALUE);
	ok("cuGetProcAddress: not found, empty name, version past the driver");
}

static void check_errors(void) {
	const char *s = NULL;
	GF_CHECK(cu.cuGetErrorName(CUDA_ERROR_NOT_SUPPORTED, &s));
	if (strcmp(s, "CUDA_ERROR_NOT_SUPPORTED"))
		gf_die("cuGetErrorName(801)");
	GF_CHECK(cu.cuGetErrorString(CUDA_ERROR_NOT_INITIALIZED, &s));
	if (strcmp(s, "initialization error"))
		gf_die("cuGetErrorString(3)");
	GF_EXPECT(cu.cuGetErrorName((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
	ok("cuGetErrorName / cuGetErrorString");
}

typedef CUresult (*cls_put_fn)(CUcontext, void *, void *, void (*)(CUcontext, void *, void *));
typedef CUresult (*cls_get_fn)(void **, CUcontext, void *);

static void check_export_tables(void) {
	static const CUuuid cudart = {{0x6b, (char)0xd5, (char)0xfb, 0x6c, 0x5b, (char)0xf4, (char)0xe7, 0x4a, (char)0x89,
	                               (char)0x87, (char)0xd9, 0x39, 0x12, (char)0xfd, (char)0x9d, (char)0xf9}};
	static const CUuuid cls = {{(char)0xc6, (char)0x93, 0x33, 0x6e, 0x11, 0x21, (char)0xdf, 0x11, (char)0xa8,
	                            (char)0xc3, 0x68, (char)0xf3, 0x55, (char)0xd8, (char)0x95, (char)0x93}};
	static const CUuuid unknown = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
	const void *table = NULL;
	GF_CHECK(cu.cuGetExportTable(&table, &cudart));
	if (!table || ((const uintptr_t *)table)[0] != 13 * sizeof(void *))
		gf_die("CUDART_INTERFACE table");
	GF_CHECK(cu.cuGetExportTable(&table, &cls));
	cls_put_fn put = (cls_put_fn)((void *const *)table)[0];
	cls_get_fn get = (cls_get_fn)((void *const *)table)[2];
	int key, value;
	void *got = NULL;
	GF_CHECK(put(NULL, &key, &value, NULL));
	GF_CHECK(get(&got, NULL, &key));
	if (got != &value)
		gf_die("context-local storage lost its value");
	GF_EXPECT(get(&got, NULL, &value), CUDA_ERROR_INVALID_VALUE);
	GF_EXPECT(cu.cuGetExportTable(&table, &unknown), CUDA_ERROR_INVALID_VALUE);
	ok("cuGetExportTable: CUDART_INTERFACE, CONTEXT_LOCAL_STORAGE, unknown UUID");
}

static void check_contexts(CUcontext primary) {
	CUcontext cur, other, popped;
	GF_CHECK(cu.cuCtxGetCurrent(&cur));
	if (cur != primary)
		gf_die("the primary context is not current");
	GF_CHECK(cu.cuCtxCreate(&other, 0, 0));
	GF_CHECK(cu.cuCtxGetCurrent(&cur));
	if (cur != other || other == primary)
		gf_die("cuCtxCreate did not make the new context current");
	GF_CHECK(cu.cuCtxPopCurrent(&popped));
	GF_CHECK(cu.cuCtxGetCurrent(&cur));
	if (popped != other || cur != primary)
		gf_die("cuCtxPopCurrent");
	GF_CHECK(cu.cuCtxPushCurrent(other));
	CUdevice dev = -1;
	GF_CHECK(cu.cuCtxGetDevice(&dev));
	if (dev != 0)
		gf_die("cuCtxGetDevice");
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 4096));
	CUcontext owner = NULL;
	GF_CHECK(cu.cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, p));
	if (owner != other)
		gf_die("an allocation does not name its context");
	GF_CHECK(cu.cuCtxDestroy(other));
	GF_CHECK(cu.cuCtxGetCurrent(&cur));
	if (cur != primary)
		gf_die("cuCtxDestroy did not pop the destroyed context");
	GF_EXPECT(cu.cuCtxSetCurrent(other), CUDA_ERROR_INVALID_CONTEXT);
	unsigned int flags;
	int active;
	GF_CHECK(cu.cuDevicePrimaryCtxGetState(0, &flags, &active));
	if (!active)
		gf_die("the retained primary context is not active");
	ok("context stack: create, pop, push, destroy, primary state");
}

static void check_memory(void) {
	CUdeviceptr d;
	size_t n = 1 << 16;
	GF_CHECK(cu.cuMemAlloc(&d, n));
	unsigned int type = 0;
	int ordinal = -1;
	GF_CHECK(cu.cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d + 100));
	GF_CHECK(cu.cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, d));
	if (type != CU_MEMORYTYPE_DEVICE || ordinal != 0)
		gf_die("device pointer attributes");
	CUdeviceptr base;
	size_t size;
	GF_CHECK(cu.cuMemGetAddressRange(&base, &size, d + 1234));
	if (base != d || size != n)
		gf_die("cuMemGetAddressRange");

	char *pageable = malloc(n);
	GF_EXPECT(cu.cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)pageable),
	          CUDA_ERROR_INVALID_VALUE);
	CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL};
	type = 77;
	void *data[] = {&type, &ordinal};
	GF_CHECK(cu.cuPointerGetAttributes(2, attrs, data, (CUdeviceptr)(uintptr_t)pageable));
	if (type != 0)
		gf_die("cuPointerGetAttributes on pageable memory");
	char *pinned;
	GF_CHECK(cu.cuMemAllocHost((void **)&pinned, n));
	GF_CHECK(cu.cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)pinned));
	if (type != CU_MEMORYTYPE_HOST)
		gf_die("page-locked host memory is not CU_MEMORYTYPE_HOST");
	ok("pointer attributes: device, pageable, page-locked; cuMemGetAddressRange");

	/* Unified addressing: cuMemcpy finds the direction from the pointers. */
	for (size_t i = 0; i < n; i++)
		pageable[i] = (char)(i * 7);
	CUdeviceptr d2;
	GF_CHECK(cu.cuMemAlloc(&d2, n));
	GF_CHECK(cu.cuMemcpy(d, (CUdeviceptr)(uintptr_t)pageable, n));
	GF_CHECK(cu.cuMemcpy(d2, d, n));
	GF_CHECK(cu.cuMemcpy((CUdeviceptr)(uintptr_t)pinned, d2, n));
	if (memcmp(pinned, pageable, n))
		gf_die("cuMemcpy HtoD, DtoD, DtoH round trip");
	GF_CHECK(cu.cuMemcpy((CUdeviceptr)(uintptr_t)pageable, (CUdeviceptr)(uintptr_t)pinned, n));
	ok("cuMemcpy with unified addressing: HtoD, DtoD, DtoH, HtoH");
	GF_CHECK(cu.cuMemFree(d));
	GF_CHECK(cu.cuMemFree(d2));
	GF_CHECK(cu.cuMemFreeHost(pinned));
	GF_EXPECT(cu.cuMemFree(d), CUDA_ERROR_INVALID_VALUE);
	free(pageable);
	ok("cuMemFree of a freed pointer is CUDA_ERROR_INVALID_VALUE");
}

static void check_launches(const char *ptx) {
	int n = 4096;
	size_t bytes = n * sizeof(float);
	float *a = malloc(bytes), *c = malloc(bytes);
	for (int i = 0; i < n; i++)
		a[i] = (float)i;
	CUdeviceptr da, dc;
	GF_CHECK(cu.cuMemAlloc(&da, bytes));
	GF_CHECK(cu.cuMemAlloc(&dc, bytes));
	GF_CHECK(cu.cuMemcpyHtoD(da, a, bytes));

	CUmodule mod;
	CUfunction add;
	GF_CHECK(cu.cuModuleLoadData(&mod, ptx));
	GF_CHECK(cu.cuModuleGetFunction(&add, mod, "vector_add"));
	CUfunction again;
	GF_CHECK(cu.cuModuleGetFunction(&again, mod, "vector_add"));
	if (again != add)
		gf_die("cuModuleGetFunction returned two handles for one kernel");
	GF_EXPECT(cu.cuModuleGetFunction(&again, mod, "no_such_kernel"), CUDA_ERROR_NOT_FOUND);

	/* The `extra` form: one packed buffer laid out as the kernel's parameters. */
	unsigned char buf[28];
	memcpy(buf, &da, 8);
	memcpy(buf + 8, &da, 8);
	memcpy(buf + 16, &dc, 8);
	memcpy(buf + 24, &n, 4);
	size_t size = sizeof buf;
	void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
	GF_CHECK(cu.cuLaunchKernel(add, n / 256, 1, 1, 256, 1, 1, 0, NULL, NULL, extra));
	GF_CHECK(cu.cuMemcpyDtoH(c, dc, bytes));
	for (int i = 0; i < n; i++)
		if (c[i] != 2.0f * a[i])
			gf_die("launch with extra = {BUFFER_POINTER, BUFFER_SIZE}");
	ok("cuLaunchKernel with kernelParams and with extra");

	/* The library API, as cudart 12 registers kernels; a CUkernel works
	 * where a CUfunction is expected. */
	CUlibrary lib;
	CUkernel k;
	CUfunction f;
	GF_CHECK(cu.cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
	GF_CHECK(cu.cuLibraryGetKernel(&k, lib, "saxpy"));
	GF_CHECK(cu.cuKernelGetFunction(&f, k));
	float alpha = 3.0f;
	void *args[] = {&n, &alpha, &da, &dc};
	GF_CHECK(cu.cuLaunchKernel(f, n / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL)); /* c = 3a + 2a */
	GF_CHECK(cu.cuLaunchKernel((CUfunction)k, n / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL)); /* c += 3a */
	GF_CHECK(cu.cuMemcpyDtoH(c, dc, bytes));
	for (int i = 0; i < n; i++)
		if (c[i] != 8.0f * a[i])
			gf_die("library kernel launches");
	GF_CHECK(cu.cuLibraryUnload(lib));
	ok("cuLibraryLoadData, cuLibraryGetKernel, cuKernelGetFunction, launch by CUkernel");

	/* A launch's failure comes back from the next synchronising call. */
	CUdeviceptr bogus = 0x1000;
	void *bad[] = {&bogus, &bogus, &bogus, &n};
	GF_CHECK(cu.cuLaunchKernel(add, n / 256, 1, 1, 256, 1, 1, 0, NULL, bad, NULL));
	CUresult r = cu.cuCtxSynchronize();
	if (r == CUDA_SUCCESS)
		gf_die("a launch on a bogus pointer reported nothing");
	printf("    (bogus launch reported at synchronize: %s)\n", gf_result_name(r));
	ok("asynchronous launch errors are latched and returned at synchronize");

	GF_CHECK(cu.cuModuleUnload(mod));
	GF_CHECK(cu.cuMemFree(da));
	GF_CHECK(cu.cuMemFree(dc));
	free(a);
	free(c);
}

typedef int (*nvml_void)(void);
typedef int (*nvml_count)(unsigned int *);
typedef int (*nvml_handle)(unsigned int, void **);
typedef int (*nvml_name)(void *, char *, unsigned int);
typedef int (*nvml_mem)(void *, unsigned long long *);
typedef int (*nvml_str)(char *, unsigned int);

static void check_nvml(void) {
	void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		gf_die("dlopen libnvidia-ml.so.1");
	static const char *c10[] = {"nvmlInit_v2", "nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetNvLinkRemoteDeviceType",
	                            "nvmlDeviceGetNvLinkRemotePciInfo_v2", "nvmlDeviceGetComputeRunningProcesses",
	                            "nvmlSystemGetCudaDriverVersion_v2"};
	for (size_t i = 0; i < sizeof c10 / sizeof c10[0]; i++)
		if (!dlsym(lib, c10[i])) {
			fprintf(stderr, "FAIL: libnvidia-ml.so.1 lacks %s\n", c10[i]);
			exit(1);
		}
	char version[80];
	if (((nvml_str)dlsym(lib, "nvmlSystemGetNVMLVersion"))(version, sizeof version) != 0)
		gf_die("nvmlSystemGetNVMLVersion before nvmlInit");
	if (((nvml_void)dlsym(lib, "nvmlInit_v2"))() != 0)
		gf_die("nvmlInit_v2");
	unsigned int count = 0;
	if (((nvml_count)dlsym(lib, "nvmlDeviceGetCount_v2"))(&count) != 0 || count < 1)
		gf_die("nvmlDeviceGetCount_v2");
	void *dev = NULL;
	if (((nvml_handle)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"))(0, &dev) != 0)
		gf_die("nvmlDeviceGetHandleByIndex_v2");
	char name[96], uuid[96];
	if (((nvml_name)dlsym(lib, "nvmlDeviceGetName"))(dev, name, sizeof name) != 0 ||
	    ((nvml_name)dlsym(lib, "nvmlDeviceGetUUID"))(dev, uuid, sizeof uuid) != 0)
		gf_die("nvmlDeviceGetName / nvmlDeviceGetUUID");
	unsigned long long mem[3];
	if (((nvml_mem)dlsym(lib, "nvmlDeviceGetMemoryInfo"))(dev, mem) != 0)
		gf_die("nvmlDeviceGetMemoryInfo");
	size_t free_b, total;
	GF_CHECK(cu.cuMemGetInfo(&free_b, &total));
	if (mem[0] != total)
		gf_die("NVML's memory total is not the share");
	if (((nvml_void)dlsym(lib, "nvmlShutdown"))() != 0)
		gf_die("nvmlShutdown");
	printf("    (nvml %s: %u device(s), %s %s, %llu bytes)\n", version, count, name, uuid, mem[0]);
	ok("NVML: c10's names, init, count, name, UUID, memory = share, shutdown");
}

int main(int argc, char **argv) {
	char *ptx = gf_read_file(gf_kernels_path(argc > 1 ? argv[1] : NULL), NULL);
	CUcontext primary = gf_setup(&cu);
	check_exports();
	check_proc_address();
	check_errors();
	check_export_tables();
	check_contexts(primary);
	check_memory();
	check_launches(ptx);
	check_nvml();
	GF_CHECK(cu.cuCtxSynchronize());
	printf("api_check: %d checks passed\n", checks);
	free(ptx);
	return 0;
}
