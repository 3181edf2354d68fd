/*
 * meminfo: the device as the program sees it. cuMemGetInfo and
 * cuDeviceTotalMem report the share the session holds, not the card; an
 * allocation shows up in the free figure.
 *
 *     meminfo [expected total bytes]
 */
#include "gpufabric_cuda.h"

int main(int argc, char **argv) {
	unsigned long long expect = argc > 1 ? strtoull(argv[1], NULL, 0) : 0;
	gf_driver cu;
	gf_setup(&cu);

	int version, count;
	GF_CHECK(cu.cuDriverGetVersion(&version));
	GF_CHECK(cu.cuDeviceGetCount(&count));
	char name[128], bus[32];
	GF_CHECK(cu.cuDeviceGetName(name, sizeof name, 0));
	GF_CHECK(cu.cuDeviceGetPCIBusId(bus, sizeof bus, 0));
	CUuuid uuid;
	GF_CHECK(cu.cuDeviceGetUuid(&uuid, 0));
	int major, minor, sms;
	GF_CHECK(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0));
	GF_CHECK(cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0));
	GF_CHECK(cu.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0));

	size_t total_dev, free0, total0, free1, total1;
	GF_CHECK(cu.cuDeviceTotalMem(&total_dev, 0));
	GF_CHECK(cu.cuMemGetInfo(&free0, &total0));
	printf("driver version: %d\n", version);
	printf("devices: %d\n", count);
	printf("device 0: %s (sm_%d%d, %d SMs, bus %s)\n", name, major, minor, sms, bus);
	printf("uuid: ");
	for (int i = 0; i < 16; i++)
		printf("%02x", (unsigned char)uuid.bytes[i]);
	printf("\n");
	printf("cuDeviceTotalMem: %zu\n", total_dev);
	printf("cuMemGetInfo: free %zu total %zu\n", free0, total0);
	if (total0 != total_dev)
		gf_die("cuMemGetInfo total differs from cuDeviceTotalMem");
	if (expect && total0 != expect) {
		fprintf(stderr, "FAIL: total %zu, expected the share %llu\n", total0, expect);
		return 1;
	}
	if (free0 > total0)
		gf_die("free above total");

	size_t chunk = total0 / 4;
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, chunk));
	GF_CHECK(cu.cuMemGetInfo(&free1, &total1));
	printf("after allocating %zu: free %zu total %zu\n", chunk, free1, total1);
	if (free1 + chunk > free0 || total1 != total0)
		gf_die("an allocation did not show in cuMemGetInfo");
	GF_CHECK(cu.cuMemFree(p));
	GF_CHECK(cu.cuCtxSynchronize());
	printf("meminfo: ok\n");
	return 0;
}
