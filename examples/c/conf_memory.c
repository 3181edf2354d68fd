/*
 * conf_memory: a conformance check of the driver API's pitched and 2D/3D
 * memory, stream-ordered allocation, virtual memory management, peer and
 * IPC families, written from the CUDA
 * driver API reference: each check states what the reference promises and
 * fails with the call and its result when the library under test does
 * otherwise. Every byte a copy or memset must not touch (the gaps between
 * pitched rows, the rows around a box) is checked too.
 *
 *     conf_memory
 *
 * With two devices in the session (gpufabric run -n 2) the copies between
 * devices are checked too. IPC runs the program again as a child process
 * (conf_memory --ipc-child MEMORY EVENT), which opens the memory and the
 * event the parent exported.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "gpufabric_cuda.h"

static int checks;

#define CHECK(cond, what)                                                   \
	do {                                                                    \
		if (!(cond)) {                                                      \
			fprintf(stderr, "FAIL: %s:%d: %s\n", __FILE__, __LINE__, what); \
			exit(1);                                                        \
		}                                                                   \
		checks++;                                                           \
	} while (0)

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + 7); }

/* pitched2d: cuMemAllocPitch, then a rectangle host -> device -> device ->
 * host through cuMemcpy2D, cuMemcpy2DUnaligned and cuMemcpy2DAsync, with
 * offsets (srcXInBytes, srcY) on both sides. */
static void pitched2d(gf_driver *cu, gf_memory *m) {
	enum { W = 300, H = 20, HP = 320, OP = 400 };
	CUdeviceptr a, b;
	size_t pa, pb;
	GF_EXPECT(m->cuMemAllocPitch(&a, &pa, W, H, 3), CUDA_ERROR_INVALID_VALUE);
	checks++;
	GF_CHECK(m->cuMemAllocPitch(&a, &pa, W, H, 4));
	GF_CHECK(m->cuMemAllocPitch(&b, &pb, W + 16, H + 1, 8));
	CHECK(pa >= W && pb >= W + 16, "cuMemAllocPitch: pitch below the width");
	CHECK(pa % 32 == 0 && pb % 32 == 0, "cuMemAllocPitch: pitch not aligned");
	/* The allocation is pitch x height: its address range says so. */
	CUdeviceptr base;
	size_t size;
	GF_CHECK(cu->cuMemGetAddressRange(&base, &size, a));
	CHECK(base == a && size >= pa * H, "cuMemAllocPitch: allocation smaller than pitch x height");
	GF_CHECK(cu->cuMemsetD8Async(a, 0, pa * H, 0));
	GF_CHECK(cu->cuMemsetD8Async(b, 0, pb * (H + 1), 0));

	unsigned char *host = malloc(HP * H);
	for (size_t i = 0; i < HP * H; i++)
		host[i] = pattern(i);
	CUDA_MEMCPY2D c = {0};
	c.srcMemoryType = CU_MEMORYTYPE_HOST, c.srcHost = host, c.srcPitch = HP;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE, c.dstDevice = a, c.dstPitch = pa;
	c.WidthInBytes = W, c.Height = H;
	GF_CHECK(m->cuMemcpy2D(&c));

	/* a -> b, landing at column 16, row 1 of b. */
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = a, c.srcPitch = pa;
	c.dstMemoryType = CU_MEMORYTYPE_UNIFIED, c.dstDevice = b, c.dstPitch = pb, c.dstXInBytes = 16, c.dstY = 1;
	c.WidthInBytes = W, c.Height = H;
	GF_CHECK(m->cuMemcpy2DUnaligned(&c));

	/* b -> host of pitch OP, read from column 16, row 1, asynchronously
	 * into page-locked memory. */
	unsigned char *out;
	GF_CHECK(cu->cuMemAllocHost((void **)&out, OP * H));
	memset(out, 0xEE, OP * H);
	CUstream s;
	GF_CHECK(cu->cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = b, c.srcPitch = pb, c.srcXInBytes = 16, c.srcY = 1;
	c.dstMemoryType = CU_MEMORYTYPE_HOST, c.dstHost = out, c.dstPitch = OP;
	c.WidthInBytes = W, c.Height = H;
	GF_CHECK(m->cuMemcpy2DAsync(&c, s));
	GF_CHECK(cu->cuStreamSynchronize(s));
	for (size_t y = 0; y < H; y++)
		for (size_t x = 0; x < OP; x++) {
			unsigned char want = x < W ? pattern(y * HP + x) : 0xEE;
			if (out[y * OP + x] != want) {
				fprintf(stderr, "FAIL: 2D round trip: row %zu byte %zu = %#x, want %#x\n", y, x, out[y * OP + x], want);
				exit(1);
			}
		}
	checks++;

	/* b outside the box is untouched: column 0..15 and row 0 read zero. */
	unsigned char *whole = malloc(pb * (H + 1));
	GF_CHECK(cu->cuMemcpyDtoH(whole, b, pb * (H + 1)));
	for (size_t y = 0; y < H + 1; y++)
		for (size_t x = 0; x < pb; x++)
			if ((y == 0 || x < 16 || x >= 16 + W) && whole[y * pb + x] != 0) {
				fprintf(stderr, "FAIL: 2D copy wrote outside its box: b row %zu byte %zu\n", y, x);
				exit(1);
			}
	checks++;

	/* What the reference calls invalid. */
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = a, c.srcPitch = W - 1;
	c.dstMemoryType = CU_MEMORYTYPE_HOST, c.dstHost = out, c.dstPitch = OP;
	c.WidthInBytes = W, c.Height = 2;
	GF_EXPECT(m->cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE); /* pitch below the width */
	checks++;
	c.srcPitch = pa, c.Height = H + 1;
	GF_EXPECT(m->cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE); /* a row past the allocation */
	checks++;
	GF_EXPECT(m->cuMemsetD2D32(a, pa, 1, pa / 4 + 1, 2), CUDA_ERROR_INVALID_VALUE); /* width past the pitch */
	checks++;

	GF_CHECK(cu->cuStreamDestroy(s));
	GF_CHECK(cu->cuMemFreeHost(out));
	GF_CHECK(cu->cuMemFree(a));
	GF_CHECK(cu->cuMemFree(b));
	free(host);
	free(whole);
}

/* box3d: cuMemcpy3D with offsets in all three axes on the host side, and
 * cuMemcpy3DAsync device to device. */
static void box3d(gf_driver *cu, gf_memory *m) {
	enum { W = 64, H = 5, D = 4, SP = 96, SH = 7, SD = 6, DP = 128, DH = 6 };
	unsigned char *src = malloc(SP * SH * SD);
	for (size_t i = 0; i < SP * SH * SD; i++)
		src[i] = pattern(i);
	CUdeviceptr a, b;
	GF_CHECK(cu->cuMemAlloc(&a, DP * DH * D));
	GF_CHECK(cu->cuMemAlloc(&b, DP * DH * D));
	GF_CHECK(cu->cuMemsetD8Async(b, 0x5A, DP * DH * D, 0));

	CUDA_MEMCPY3D c = {0};
	c.srcMemoryType = CU_MEMORYTYPE_HOST, c.srcHost = src, c.srcPitch = SP, c.srcHeight = SH;
	c.srcXInBytes = 8, c.srcY = 1, c.srcZ = 2;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE, c.dstDevice = a, c.dstPitch = DP, c.dstHeight = DH;
	c.WidthInBytes = W, c.Height = H, c.Depth = D;
	GF_CHECK(m->cuMemcpy3D(&c));

	CUstream s;
	GF_CHECK(cu->cuStreamCreate(&s, 0));
	memset(&c, 0, sizeof c);
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = a, c.srcPitch = DP, c.srcHeight = DH;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE, c.dstDevice = b, c.dstPitch = DP, c.dstHeight = DH;
	c.WidthInBytes = W, c.Height = H, c.Depth = D;
	GF_CHECK(m->cuMemcpy3DAsync(&c, s));
	GF_CHECK(cu->cuStreamSynchronize(s));

	unsigned char *back = malloc(DP * DH * D);
	GF_CHECK(cu->cuMemcpyDtoH(back, b, DP * DH * D));
	for (size_t z = 0; z < D; z++)
		for (size_t y = 0; y < DH; y++)
			for (size_t x = 0; x < DP; x++) {
				unsigned char want = 0x5A;
				if (x < W && y < H)
					want = pattern((z + 2) * SP * SH + (y + 1) * SP + x + 8);
				if (back[(z * DH + y) * DP + x] != want) {
					fprintf(stderr, "FAIL: 3D box: (%zu,%zu,%zu) = %#x, want %#x\n", x, y, z,
					        back[(z * DH + y) * DP + x], want);
					exit(1);
				}
			}
	checks++;

	/* A slice height below the box's is invalid. */
	c.srcHeight = H - 1;
	GF_EXPECT(m->cuMemcpy3D(&c), CUDA_ERROR_INVALID_VALUE);
	checks++;
	GF_CHECK(cu->cuStreamDestroy(s));
	GF_CHECK(cu->cuMemFree(a));
	GF_CHECK(cu->cuMemFree(b));
	free(src);
	free(back);
}

/* memset2d: the 8-, 16- and 32-bit forms, synchronous and asynchronous,
 * set their rectangle and nothing else. */
static void memset2d(gf_driver *cu, gf_memory *m) {
	enum { P = 256, H = 6 };
	CUdeviceptr a;
	GF_CHECK(cu->cuMemAlloc(&a, P * H));
	GF_CHECK(cu->cuMemsetD8Async(a, 0, P * H, 0));
	GF_CHECK(m->cuMemsetD2D8(a, P, 0x11, 10, H));                /* bytes 0..9 */
	GF_CHECK(m->cuMemsetD2D16(a + 16, P, 0x2222, 8, H));         /* bytes 16..31 */
	GF_CHECK(m->cuMemsetD2D32(a + 32, P, 0x33333333, 4, H - 1)); /* bytes 32..47, rows 0..4 */
	GF_CHECK(m->cuMemsetD2D8Async(a + 64, P, 0x44, 3, 2, 0));    /* bytes 64..66, rows 0..1 */
	GF_CHECK(m->cuMemsetD2D32Async(a + P + 128, P, 0x55555555, 2, 1, CU_STREAM_LEGACY));
	unsigned char back[P * H];
	GF_CHECK(cu->cuMemcpyDtoH(back, a, sizeof back));
	for (size_t y = 0; y < H; y++)
		for (size_t x = 0; x < P; x++) {
			unsigned char want = 0;
			if (x < 10)
				want = 0x11;
			else if (x >= 16 && x < 32)
				want = 0x22;
			else if (x >= 32 && x < 48 && y < H - 1)
				want = 0x33;
			else if (x >= 64 && x < 67 && y < 2)
				want = 0x44;
			else if (x >= 128 && x < 136 && y == 1)
				want = 0x55;
			if (back[y * P + x] != want) {
				fprintf(stderr, "FAIL: 2D memset: row %zu byte %zu = %#x, want %#x\n", y, x, back[y * P + x], want);
				exit(1);
			}
		}
	checks++;
	GF_CHECK(cu->cuMemFree(a));
}

/* pools: stream-ordered allocation from the default pool, its attributes,
 * and its charge to the device's memory as cuMemGetInfo reports it. */
static void pools(gf_driver *cu, gf_memory *m) {
	CUmemoryPool def, cur;
	GF_CHECK(m->cuDeviceGetDefaultMemPool(&def, 0));
	GF_CHECK(m->cuDeviceGetMemPool(&cur, 0));
	CHECK(def && def == cur, "the current pool is not the default pool");
	GF_CHECK(m->cuDeviceSetMemPool(0, def));

	cuuint64_t v = 64 << 20, got = 0;
	GF_CHECK(m->cuMemPoolSetAttribute(def, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &v));
	GF_CHECK(m->cuMemPoolGetAttribute(def, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &got));
	CHECK(got == v, "release threshold did not stick");
	int flag = 0;
	GF_CHECK(m->cuMemPoolSetAttribute(def, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
	flag = 1;
	GF_CHECK(m->cuMemPoolGetAttribute(def, CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC, &flag));
	CHECK(flag == 0, "reuse flag did not stick");

	size_t free0, free1, free2, total;
	GF_CHECK(cu->cuMemGetInfo(&free0, &total));
	CUstream s;
	GF_CHECK(cu->cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	const size_t n = 4 << 20;
	CUdeviceptr p, q;
	GF_CHECK(m->cuMemAllocAsync(&p, n, s));
	GF_CHECK(m->cuMemAllocFromPoolAsync(&q, n, def, s));
	GF_CHECK(cu->cuMemsetD32Async(p, 0xC0FFEE, n / 4, s));
	CUDA_MEMCPY2D c = {0}; /* q <- p, as 1024 rows of n/1024 bytes, on s after the memset */
	c.srcMemoryType = CU_MEMORYTYPE_DEVICE, c.srcDevice = p, c.srcPitch = n / 1024;
	c.dstMemoryType = CU_MEMORYTYPE_DEVICE, c.dstDevice = q, c.dstPitch = n / 1024;
	c.WidthInBytes = n / 1024, c.Height = 1024;
	GF_CHECK(m->cuMemcpy2DAsync(&c, s));
	unsigned int *h;
	GF_CHECK(cu->cuMemAllocHost((void **)&h, n));
	GF_CHECK(cu->cuMemcpyDtoHAsync(h, q, n, s));
	GF_CHECK(cu->cuStreamSynchronize(s));
	for (size_t i = 0; i < n / 4; i++)
		if (h[i] != 0xC0FFEE) {
			fprintf(stderr, "FAIL: stream-ordered memory: word %zu = %#x\n", i, h[i]);
			exit(1);
		}
	checks++;
	GF_CHECK(cu->cuMemGetInfo(&free1, &total));
	CHECK(free1 + 2 * n <= free0, "stream-ordered allocations are not charged to the device's memory");
	GF_CHECK(m->cuMemPoolGetAttribute(def, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &got));
	CHECK(got >= 2 * n, "pool's used memory misses the allocations");

	GF_CHECK(m->cuMemFreeAsync(p, s));
	GF_CHECK(m->cuMemFreeAsync(q, s));
	GF_CHECK(cu->cuStreamSynchronize(s));
	GF_CHECK(m->cuMemPoolTrimTo(def, 0));
	GF_CHECK(cu->cuMemGetInfo(&free2, &total));
	CHECK(free2 == free0, "freed stream-ordered memory did not come back");
	GF_CHECK(m->cuMemPoolGetAttribute(def, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &got));
	CHECK(got == 0, "pool's used memory after the frees");
	GF_CHECK(m->cuMemPoolGetAttribute(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &got));
	CHECK(got >= 2 * n, "pool's high watermark");
	v = 0;
	GF_CHECK(m->cuMemPoolSetAttribute(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v));
	v = 5; /* a watermark may only be reset to zero */
	GF_EXPECT(m->cuMemPoolSetAttribute(def, CU_MEMPOOL_ATTR_USED_MEM_HIGH, &v), CUDA_ERROR_INVALID_VALUE);
	checks++;

	/* Past the device's memory: out of memory, as with cuMemAlloc. */
	GF_EXPECT(m->cuMemAllocAsync(&p, total + 1, s), CUDA_ERROR_OUT_OF_MEMORY);
	checks++;
	GF_EXPECT(m->cuMemFreeAsync(0, s), CUDA_ERROR_INVALID_VALUE);
	checks++;
	GF_EXPECT(m->cuMemPoolTrimTo((CUmemoryPool)(uintptr_t)0x1000, 0), CUDA_ERROR_INVALID_VALUE);
	checks++;

	/* A pool of one's own, bounded by maxSize, made the device's current. */
	CUmemPoolProps props = {0};
	props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
	props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	props.location.id = 0;
	props.maxSize = 4 << 20;
	CUmemoryPool mine;
	GF_CHECK(m->cuMemPoolCreate(&mine, &props));
	CHECK(mine && mine != def, "cuMemPoolCreate gave the default pool");
	GF_CHECK(m->cuDeviceSetMemPool(0, mine));
	GF_CHECK(m->cuDeviceGetMemPool(&cur, 0));
	CHECK(cur == mine, "cuDeviceSetMemPool did not stick");
	GF_CHECK(m->cuMemAllocAsync(&p, 3 << 20, s)); /* from the current pool: mine */
	CUmemoryPool from = 0;
	GF_CHECK(cu->cuPointerGetAttribute(&from, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, p));
	CHECK(from == mine, "the pointer does not name its pool");
	GF_CHECK(m->cuMemPoolGetAttribute(mine, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &got));
	CHECK(got >= 3 << 20, "an allocation from the current pool is not in its figures");
	GF_EXPECT(m->cuMemAllocFromPoolAsync(&q, 2 << 20, mine, s), CUDA_ERROR_OUT_OF_MEMORY); /* past maxSize */
	checks++;
	GF_CHECK(m->cuMemFreeAsync(p, s));
	GF_CHECK(m->cuMemPoolDestroy(mine));
	GF_CHECK(m->cuDeviceGetMemPool(&cur, 0));
	CHECK(cur == def, "a destroyed pool is still the device's current");
	GF_EXPECT(m->cuMemPoolDestroy(def), CUDA_ERROR_INVALID_VALUE); /* the default pool */
	checks++;
	GF_CHECK(cu->cuStreamDestroy(s));
	GF_CHECK(cu->cuMemFreeHost(h));
}

/* vmm: PyTorch's expandable segment. A reservation larger than the pieces,
 * physical pieces created and mapped one after another, a buffer across
 * them, and everything undone; physical memory is what cuMemGetInfo
 * charges, reservations are not. */
static void vmm(gf_driver *cu, gf_memory *m) {
	CUmemAllocationProp prop = {0};
	prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	prop.location.id = 0;
	size_t g = 0;
	GF_CHECK(m->cuMemGetAllocationGranularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
	CHECK(g > 0 && (g & (g - 1)) == 0, "granularity is not a power of two");

	size_t free0, free1, total;
	GF_CHECK(cu->cuMemGetInfo(&free0, &total));
	CUdeviceptr va;
	GF_CHECK(m->cuMemAddressReserve(&va, 16 * g, 0, 0, 0));
	CHECK(va % g == 0, "reservation not aligned to the granularity");
	GF_CHECK(cu->cuMemGetInfo(&free1, &total));
	CHECK(free1 == free0, "a reservation was charged as memory");

	CUmemGenericAllocationHandle h[3];
	CUmemAccessDesc access = {{CU_MEM_LOCATION_TYPE_DEVICE, 0}, CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
	for (int i = 0; i < 3; i++) {
		GF_CHECK(m->cuMemCreate(&h[i], g, &prop, 0));
		GF_CHECK(m->cuMemMap(va + i * g, g, 0, h[i], 0));
		GF_CHECK(m->cuMemSetAccess(va + i * g, g, &access, 1));
	}
	GF_CHECK(cu->cuMemGetInfo(&free1, &total));
	CHECK(free1 + 3 * g <= free0, "physical memory is not charged");
	GF_EXPECT(m->cuMemCreate(&h[0] + 0, g + 1, &prop, 0), CUDA_ERROR_INVALID_VALUE);
	checks++;
	GF_EXPECT(m->cuMemMap(va + g, g, 0, h[0], 0), CUDA_ERROR_INVALID_VALUE); /* mapped already */
	checks++;

	/* A buffer across the three pieces. */
	size_t n = 3 * g - 200;
	unsigned char *buf = malloc(n), *back = malloc(n);
	for (size_t i = 0; i < n; i++)
		buf[i] = pattern(i);
	GF_CHECK(cu->cuMemcpyHtoD(va + 100, buf, n));
	GF_CHECK(cu->cuMemsetD32Async(va + g - 8, 0xA5A5A5A5, 4, 0));
	GF_CHECK(cu->cuMemcpyDtoH(back, va + 100, n));
	memset(buf + g - 108, 0xA5, 16);
	CHECK(memcmp(buf, back, n) == 0, "a buffer across mapped pieces came back changed");

	CUmemGenericAllocationHandle again;
	GF_CHECK(m->cuMemRetainAllocationHandle(&again, (void *)(uintptr_t)(va + g + 5)));
	CHECK(again == h[1], "cuMemRetainAllocationHandle returned another handle");
	CUmemAllocationProp got;
	GF_CHECK(m->cuMemGetAllocationPropertiesFromHandle(&got, h[2]));
	CHECK(got.type == CU_MEM_ALLOCATION_TYPE_PINNED && got.location.id == 0, "allocation properties");
	GF_EXPECT(cu->cuMemFree(va), CUDA_ERROR_INVALID_VALUE); /* not cuMemFree's */
	checks++;
	GF_EXPECT(m->cuMemAddressFree(va, 16 * g), CUDA_ERROR_INVALID_VALUE); /* still mapped */
	checks++;

	GF_CHECK(m->cuMemUnmap(va, 3 * g));
	for (int i = 0; i < 3; i++)
		GF_CHECK(m->cuMemRelease(h[i]));
	GF_CHECK(m->cuMemRelease(again));
	GF_CHECK(m->cuMemAddressFree(va, 16 * g));
	GF_CHECK(cu->cuCtxSynchronize());
	GF_CHECK(cu->cuMemGetInfo(&free1, &total));
	CHECK(free1 == free0, "unmapped, released memory did not come back");
	GF_EXPECT(m->cuMemRelease(h[0]), CUDA_ERROR_INVALID_VALUE); /* released already */
	checks++;
	free(buf);
	free(back);
}

/* peers: devices of the session can reach each other; copies between them
 * land, synchronous, asynchronous and through unified cuMemcpy; peer
 * access is recorded as the reference says. */
static void peers(gf_driver *cu, gf_memory *m, CUcontext c0) {
	int count, can = -1;
	GF_CHECK(cu->cuDeviceGetCount(&count));
	GF_EXPECT(m->cuDeviceCanAccessPeer(&can, 0, count), CUDA_ERROR_INVALID_DEVICE); /* not a device of ours */
	checks++;
	if (count < 2) {
		printf("conf_memory: one device: copies between devices not checked\n");
		return;
	}
	GF_CHECK(m->cuDeviceCanAccessPeer(&can, 0, 1));
	CHECK(can == 1, "devices of the session cannot reach each other");
	GF_CHECK(m->cuDeviceCanAccessPeer(&can, 1, 1));
	CHECK(can == 0, "a device is its own peer");
	CUcontext c1;
	GF_CHECK(cu->cuDevicePrimaryCtxRetain(&c1, 1));
	GF_CHECK(m->cuCtxEnablePeerAccess(c1, 0));
	GF_EXPECT(m->cuCtxEnablePeerAccess(c1, 0), CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED_);
	GF_CHECK(m->cuCtxDisablePeerAccess(c1));
	GF_EXPECT(m->cuCtxDisablePeerAccess(c1), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED_);
	checks += 2;

	const size_t n = (1 << 20) + 3;
	CUdeviceptr a, b, c;
	GF_CHECK(cu->cuMemAlloc(&a, n));
	GF_CHECK(cu->cuMemAlloc(&c, n));
	GF_CHECK(cu->cuCtxSetCurrent(c1));
	GF_CHECK(cu->cuMemAlloc(&b, n));
	GF_CHECK(cu->cuCtxSetCurrent(c0));
	unsigned char *host = malloc(n), *back = malloc(n);
	for (size_t i = 0; i < n; i++)
		host[i] = pattern(i);
	GF_CHECK(cu->cuMemcpyHtoD(a, host, n));
	GF_CHECK(m->cuMemcpyPeer(b, c1, a, c0, n));
	CUstream s;
	GF_CHECK(cu->cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	GF_CHECK(m->cuMemcpyPeerAsync(c, c0, b, c1, n, s));
	GF_CHECK(cu->cuStreamSynchronize(s));
	GF_CHECK(cu->cuMemcpyDtoH(back, c, n));
	CHECK(memcmp(host, back, n) == 0, "device 0 -> 1 -> 0 changed the bytes");

	/* Unified addressing: cuMemcpy between the devices. */
	GF_CHECK(cu->cuMemsetD8Async(a, 0x6b, n, 0));
	GF_CHECK(cu->cuCtxSynchronize());
	GF_CHECK(cu->cuMemcpy(b, a, n));
	GF_CHECK(cu->cuMemcpyDtoH(back, b, n)); /* b is device 1's: read there */
	for (size_t i = 0; i < n; i++)
		if (back[i] != 0x6b) {
			fprintf(stderr, "FAIL: cuMemcpy between devices: byte %zu = %#x\n", i, back[i]);
			exit(1);
		}
	checks++;
	GF_EXPECT(m->cuMemcpyPeer(b, c1, a, c0, n + 4096), CUDA_ERROR_INVALID_VALUE); /* past the allocations */
	checks++;
	GF_CHECK(cu->cuStreamDestroy(s));
	GF_CHECK(cu->cuMemFree(a));
	GF_CHECK(cu->cuMemFree(b));
	GF_CHECK(cu->cuMemFree(c));
	GF_CHECK(cu->cuDevicePrimaryCtxRelease(1));
	free(host);
	free(back);
}

enum { IPC_BYTES = 1 << 16 };

static void hex_encode(const unsigned char *b, size_t n, char *out) {
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void hex_decode(const char *hex, char *out) {
	for (int i = 0; i < 64; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			gf_die("ipc child: bad handle");
		out[i] = (char)v;
	}
}

/* ipc_child opens the parent's memory, checks it, and writes its answer
 * into the second half. */
static int ipc_child(const char *hex, const char *evhex) {
	gf_driver cu;
	gf_setup(&cu);
	gf_memory m;
	gf_load_memory(&cu, &m);
	CUipcMemHandle h;
	CUipcEventHandle eh;
	hex_decode(hex, h.reserved);
	hex_decode(evhex, eh.reserved);
	/* The parent's event: recorded after its writes, so once it has
	 * completed the memory holds them. */
	CUevent ev;
	GF_CHECK(m.cuIpcOpenEventHandle(&ev, eh));
	GF_CHECK(cu.cuStreamWaitEvent(0, ev, 0));
	GF_CHECK(cu.cuEventSynchronize(ev));
	CUdeviceptr p;
	GF_EXPECT(m.cuIpcOpenMemHandle(&p, h, 0x80), CUDA_ERROR_INVALID_VALUE); /* unknown flag */
	GF_CHECK(m.cuIpcOpenMemHandle(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
	unsigned char *b = malloc(IPC_BYTES);
	GF_CHECK(cu.cuMemcpyDtoH(b, p, IPC_BYTES / 2));
	for (size_t i = 0; i < IPC_BYTES / 2; i++)
		if (b[i] != pattern(i)) {
			fprintf(stderr, "FAIL: ipc child: byte %zu = %#x\n", i, b[i]);
			return 1;
		}
	GF_EXPECT(cu.cuMemFree(p), CUDA_ERROR_INVALID_VALUE); /* the owner's, not ours */
	GF_CHECK(cu.cuMemsetD8Async(p + IPC_BYTES / 2, 0x99, IPC_BYTES / 2, 0));
	GF_CHECK(cu.cuCtxSynchronize());
	GF_CHECK(m.cuIpcCloseMemHandle(p));
	GF_EXPECT(m.cuIpcCloseMemHandle(p), CUDA_ERROR_INVALID_VALUE); /* closed already */
	GF_CHECK(cu.cuEventDestroy(ev));
	GF_CHECK(cu.cuCtxSynchronize());
	free(b);
	printf("conf_memory: ipc child ok\n");
	return 0;
}

/* ipc: export memory, have another process of ours open it, see its
 * write. */
static void ipc(gf_driver *cu, gf_memory *m, const char *self) {
	CUdeviceptr p;
	GF_CHECK(cu->cuMemAlloc(&p, IPC_BYTES));
	unsigned char *b = malloc(IPC_BYTES);
	for (size_t i = 0; i < IPC_BYTES; i++)
		b[i] = pattern(i);
	GF_CHECK(cu->cuMemcpyHtoD(p, b, IPC_BYTES));
	CUipcMemHandle h;
	GF_EXPECT(m->cuIpcGetMemHandle(&h, p + 16), CUDA_ERROR_INVALID_VALUE); /* not an allocation's base */
	GF_CHECK(m->cuIpcGetMemHandle(&h, p));
	CUdeviceptr q;
	GF_EXPECT(m->cuIpcOpenMemHandle(&q, h, 0), CUDA_ERROR_INVALID_CONTEXT); /* our own */
	CUipcMemHandle forged = h;
	forged.reserved[20] ^= 1;
	GF_EXPECT(m->cuIpcOpenMemHandle(&q, forged, 0), CUDA_ERROR_INVALID_VALUE);
	checks += 3;

	/* An event for the child to wait on, recorded after the writes. */
	CUevent plain, ev;
	CUipcEventHandle eh;
	GF_CHECK(cu->cuEventCreate(&plain, CU_EVENT_DISABLE_TIMING));
	GF_EXPECT(m->cuIpcGetEventHandle(&eh, plain), CUDA_ERROR_INVALID_VALUE); /* not CU_EVENT_INTERPROCESS */
	checks++;
	GF_CHECK(cu->cuEventCreate(&ev, CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING));
	GF_CHECK(m->cuIpcGetEventHandle(&eh, ev));
	GF_CHECK(cu->cuEventRecord(ev, 0));
	/* A wait targets the record made before it; the query, answered once
	 * the record is made, stands for the word processes would exchange. */
	CUresult qr = cu->cuEventQuery(ev);
	if (qr != CUDA_SUCCESS && qr != CUDA_ERROR_NOT_READY)
		GF_CHECK(qr);

	char hex[129], evhex[129];
	hex_encode((unsigned char *)h.reserved, 64, hex);
	hex_encode((unsigned char *)eh.reserved, 64, evhex);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self, self, "--ipc-child", hex, evhex, (char *)NULL);
		_exit(127);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		gf_die("the IPC child failed");
	GF_CHECK(cu->cuMemcpyDtoH(b, p + IPC_BYTES / 2, IPC_BYTES / 2));
	for (size_t i = 0; i < IPC_BYTES / 2; i++)
		if (b[i] != 0x99) {
			fprintf(stderr, "FAIL: the child's write: byte %zu = %#x\n", i, b[i]);
			exit(1);
		}
	checks++;
	GF_CHECK(cu->cuEventDestroy(ev));
	GF_CHECK(cu->cuEventDestroy(plain));
	GF_CHECK(cu->cuMemFree(p));
	free(b);
}

int main(int argc, char **argv) {
	if (argc == 4 && strcmp(argv[1], "--ipc-child") == 0)
		return ipc_child(argv[2], argv[3]);
	gf_driver cu;
	CUcontext c0 = gf_setup(&cu);
	gf_memory m;
	gf_load_memory(&cu, &m);
	pitched2d(&cu, &m);
	box3d(&cu, &m);
	memset2d(&cu, &m);
	pools(&cu, &m);
	vmm(&cu, &m);
	peers(&cu, &m, c0);
	ipc(&cu, &m, argv[0]);
	GF_CHECK(cu.cuCtxSynchronize());
	printf("conf_memory: %d checks passed\n", checks);
	return 0;
}
