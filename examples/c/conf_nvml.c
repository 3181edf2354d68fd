/*
 * conf_nvml: NVML conformance, written from NVIDIA's NVML API reference
 * (types, values and signatures are the reference's; no NVIDIA header is
 * copied). Loads libnvidia-ml.so.1 with dlopen, as go-nvml and PyTorch do,
 * and checks what the reference promises of each family: initialisation
 * and its reference count, versions that parse, device handles, memory (the
 * session's share), the process list, readings of utilization,
 * temperature, power, clocks, fan, ECC, state and identity, PCI and PCIe,
 * MIG, event sets, clock event reasons, addressing mode, and the errors bad
 * input gets. Prints one line per check.
 *
 *     conf_nvml [SHARE_BYTES]
 *
 * With SHARE_BYTES (under `gpufabric run` with a share of that size) the
 * memory figures must be the share's and the process list exactly this
 * process with its session's bytes; without it (natively, or when the
 * argument is not a number) the program checks what holds on a real GPU
 * too: this process is listed, and memory adds up.
 */
#include "gpufabric_cuda.h"

#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct nvmlEventSet_st *nvmlEventSet_t;

enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_NOT_FOUND = 6,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_TIMEOUT = 10,
	NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
	unsigned int version;
	unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
	unsigned long long bar1Total, bar1Free, bar1Used;
} nvmlBAR1Memory_t;
typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
	nvmlDevice_t device;
	unsigned long long eventType, eventData;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
typedef struct {
	unsigned int version, value;
} nvmlDeviceAddressingMode_t;

#define NVML_STRUCT_VERSION(size, ver) ((unsigned int)(size) | ((unsigned int)(ver) << 24U))

static void *nvml;
static int checks;

static void *fn(const char *name) {
	void *p = dlsym(nvml, name);
	if (!p) {
		fprintf(stderr, "FAIL: dlsym(%s) = NULL\n", name);
		exit(1);
	}
	return p;
}

/* NV calls an NVML function by name with the signature given. */
#define NV(name, sig, ...) (((nvmlReturn_t(*) sig)fn(#name))(__VA_ARGS__))

static void ok(const char *what) {
	checks++;
	printf("ok  %s\n", what);
}

static void want(nvmlReturn_t got, nvmlReturn_t w, const char *what) {
	if (got != w) {
		fprintf(stderr, "FAIL: %s = %d, want %d\n", what, got, w);
		exit(1);
	}
}

static void expect(int cond, const char *what) {
	if (!cond) {
		fprintf(stderr, "FAIL: %s\n", what);
		exit(1);
	}
}

/* numeric reports whether s is dot-separated decimal numbers, at least
 * min of them. */
static int numeric(const char *s, int min) {
	int parts = 0, digits = 0;
	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			digits++;
			continue;
		}
		if ((*s != '.' && *s != 0) || digits == 0)
			return 0;
		parts++;
		digits = 0;
		if (*s == 0)
			return parts >= min;
	}
}

int main(int argc, char **argv) {
	char *end = NULL;
	unsigned long long share = argc > 1 ? strtoull(argv[1], &end, 10) : 0;
	if (!end || *end)
		share = 0; /* not a number: a native run, share unknown */
	nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!nvml) {
		fprintf(stderr, "FAIL: dlopen libnvidia-ml.so.1: %s\n", dlerror());
		return 1;
	}

	/* ---- initialisation ---- */
	unsigned int count = 0;
	want(NV(nvmlDeviceGetCount_v2, (unsigned int *), &count), NVML_ERROR_UNINITIALIZED, "nvmlDeviceGetCount_v2 before init");
	char nvmlVersion[80];
	want(NV(nvmlSystemGetNVMLVersion, (char *, unsigned int), nvmlVersion, sizeof nvmlVersion), NVML_SUCCESS,
	     "nvmlSystemGetNVMLVersion before init");
	expect(numeric(nvmlVersion, 2), "the NVML version parses as numbers");
	ok("before nvmlInit: calls are UNINITIALIZED, nvmlSystemGetNVMLVersion works and parses");
	want(NV(nvmlInit_v2, (void)), NVML_SUCCESS, "nvmlInit_v2");
	want(NV(nvmlInit, (void)), NVML_SUCCESS, "nvmlInit (a second reference)");
	ok("nvmlInit_v2 and nvmlInit");

	/* ---- versions ---- */
	char driver[80];
	want(NV(nvmlSystemGetDriverVersion, (char *, unsigned int), driver, sizeof driver), NVML_SUCCESS, "nvmlSystemGetDriverVersion");
	expect(numeric(driver, 2), "the driver version parses as numbers");
	const char *dot = strchr(nvmlVersion, '.');
	expect(dot && !strcmp(dot + 1, driver), "the NVML version is CUDA major . driver version");
	int cudaVersion = 0;
	want(NV(nvmlSystemGetCudaDriverVersion_v2, (int *), &cudaVersion), NVML_SUCCESS, "nvmlSystemGetCudaDriverVersion_v2");
	expect(atoi(nvmlVersion) == cudaVersion / 1000, "the NVML version's major is the CUDA driver's");
	want(NV(nvmlSystemGetDriverVersion, (char *, unsigned int), driver, 2), NVML_ERROR_INSUFFICIENT_SIZE, "a 2-byte driver version buffer");
	want(NV(nvmlSystemGetDriverVersion, (char *, unsigned int), NULL, 80), NVML_ERROR_INVALID_ARGUMENT, "a NULL driver version buffer");
	printf("    (driver %s, NVML %s, CUDA %d)\n", driver, nvmlVersion, cudaVersion);
	ok("driver, NVML and CUDA versions parse and agree; short and NULL buffers refused");

	/* The driver API agrees with NVML on the CUDA version. */
	gf_driver cu;
	gf_setup(&cu);
	int cuVersion = 0;
	GF_CHECK(cu.cuDriverGetVersion(&cuVersion));
	expect(cuVersion == cudaVersion, "cuDriverGetVersion equals nvmlSystemGetCudaDriverVersion");
	ok("cuDriverGetVersion agrees with NVML");

	/* ---- handles ---- */
	want(NV(nvmlDeviceGetCount_v2, (unsigned int *), &count), NVML_SUCCESS, "nvmlDeviceGetCount_v2");
	expect(count >= 1, "at least one device");
	nvmlDevice_t dev, bad = (nvmlDevice_t)(uintptr_t)0x1234;
	want(NV(nvmlDeviceGetHandleByIndex_v2, (unsigned int, nvmlDevice_t *), count, &dev), NVML_ERROR_INVALID_ARGUMENT, "handle of index count");
	want(NV(nvmlDeviceGetHandleByIndex_v2, (unsigned int, nvmlDevice_t *), 0, NULL), NVML_ERROR_INVALID_ARGUMENT, "handle into NULL");
	want(NV(nvmlDeviceGetHandleByIndex_v2, (unsigned int, nvmlDevice_t *), 0, &dev), NVML_SUCCESS, "nvmlDeviceGetHandleByIndex_v2");
	char name[96];
	want(NV(nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int), bad, name, sizeof name), NVML_ERROR_INVALID_ARGUMENT, "name of a bad handle");
	want(NV(nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int), NULL, name, sizeof name), NVML_ERROR_INVALID_ARGUMENT, "name of NULL");
	want(NV(nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int), dev, name, 1), NVML_ERROR_INSUFFICIENT_SIZE, "name into 1 byte");
	want(NV(nvmlDeviceGetName, (nvmlDevice_t, char *, unsigned int), dev, name, sizeof name), NVML_SUCCESS, "nvmlDeviceGetName");
	ok("device handles: bad indexes, bad and NULL handles, short buffers refused");

	/* ---- memory: the share ---- */
	nvmlMemory_t m;
	want(NV(nvmlDeviceGetMemoryInfo, (nvmlDevice_t, nvmlMemory_t *), dev, &m), NVML_SUCCESS, "nvmlDeviceGetMemoryInfo");
	expect(!share || m.total == share, "memory total is the share");
	expect(m.used + m.free <= m.total, "used + free <= total");
	unsigned long long before = m.used;
	CUdeviceptr p;
	GF_CHECK(cu.cuMemAlloc(&p, 3 << 20));
	want(NV(nvmlDeviceGetMemoryInfo, (nvmlDevice_t, nvmlMemory_t *), dev, &m), NVML_SUCCESS, "nvmlDeviceGetMemoryInfo");
	expect(m.used >= before + (3 << 20), "an allocation shows in memory used at once");
	nvmlMemory_v2_t m2 = {.version = NVML_STRUCT_VERSION(sizeof m2, 2)};
	want(NV(nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t, nvmlMemory_v2_t *), dev, &m2), NVML_SUCCESS, "nvmlDeviceGetMemoryInfo_v2");
	expect(m2.total == m.total && (!share || m2.used == m.used), "memory v2 agrees with v1");
	m2.version = 1;
	want(NV(nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t, nvmlMemory_v2_t *), dev, &m2), NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "memory v2 with a bad version");
	want(NV(nvmlDeviceGetMemoryInfo, (nvmlDevice_t, nvmlMemory_t *), dev, NULL), NVML_ERROR_INVALID_ARGUMENT, "memory into NULL");
	nvmlBAR1Memory_t b1;
	nvmlReturn_t r = NV(nvmlDeviceGetBAR1MemoryInfo, (nvmlDevice_t, nvmlBAR1Memory_t *), dev, &b1);
	expect(r == NVML_ERROR_NOT_SUPPORTED ||
	           (r == NVML_SUCCESS && (!share || b1.bar1Total <= share) && b1.bar1Used + b1.bar1Free == b1.bar1Total),
	       "BAR1 is bounded by the share");
	ok("memory v1, v2 and BAR1 report the share and the session's allocations");

	/* ---- processes ---- */
	unsigned int n = 0;
	want(NV(nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_v1_t *), dev, &n, NULL),
	     NVML_ERROR_INSUFFICIENT_SIZE, "process count query");
	expect(n >= 1 && (!share || n == 1), "this process is counted (under a share, it alone)");
	if (n > 1) {
		unsigned int small = n - 1;
		nvmlProcessInfo_v1_t few[64];
		want(NV(nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_v1_t *), dev, &small, few),
		     NVML_ERROR_INSUFFICIENT_SIZE, "a process list one entry short");
	}
	enum { MAXP = 64 };
	nvmlProcessInfo_v1_t p1[MAXP];
	n = MAXP;
	want(NV(nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_v1_t *), dev, &n, p1),
	     NVML_SUCCESS, "nvmlDeviceGetComputeRunningProcesses");
	unsigned int me = MAXP;
	for (unsigned int i = 0; i < n; i++)
		if (p1[i].pid == (unsigned int)getpid())
			me = i;
	expect(me < n && p1[me].usedGpuMemory >= 3 << 20 && (!share || p1[me].usedGpuMemory == m.used),
	       "v1 lists this process with its bytes");
	nvmlProcessInfo_t p3[MAXP];
	n = MAXP;
	want(NV(nvmlDeviceGetComputeRunningProcesses_v3, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *), dev, &n, p3),
	     NVML_SUCCESS, "nvmlDeviceGetComputeRunningProcesses_v3");
	me = MAXP;
	for (unsigned int i = 0; i < n; i++)
		if (p3[i].pid == (unsigned int)getpid())
			me = i;
	expect(me < n && p3[me].usedGpuMemory >= 3 << 20 && (!share || (p3[me].usedGpuMemory == m.used && p3[me].gpuInstanceId == 0xFFFFFFFFu)),
	       "v3 lists this process with its bytes, no MIG instance");
	n = MAXP;
	want(NV(nvmlDeviceGetComputeRunningProcesses_v2, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *), dev, &n, p3),
	     NVML_SUCCESS, "nvmlDeviceGetComputeRunningProcesses_v2");
	want(NV(nvmlDeviceGetComputeRunningProcesses_v3, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *), dev, NULL, p3),
	     NVML_ERROR_INVALID_ARGUMENT, "process list with a NULL count");
	n = MAXP;
	want(NV(nvmlDeviceGetGraphicsRunningProcesses_v3, (nvmlDevice_t, unsigned int *, nvmlProcessInfo_t *), dev, &n, p3),
	     NVML_SUCCESS, "nvmlDeviceGetGraphicsRunningProcesses_v3");
	expect(!share || n == 0, "no graphics processes through a share");
	char pname[256];
	want(NV(nvmlSystemGetProcessName, (unsigned int, char *, unsigned int), (unsigned int)getpid(), pname, sizeof pname), NVML_SUCCESS,
	     "nvmlSystemGetProcessName of this process");
	expect(strstr(pname, "conf_nvml") != NULL, "this process's name is its command");
	want(NV(nvmlSystemGetProcessName, (unsigned int, char *, unsigned int), (unsigned int)getpid(), NULL, 10),
	     NVML_ERROR_INVALID_ARGUMENT, "a process name into NULL");
	ok("compute processes v1, v2, v3: this process with its bytes and its name; the count query says INSUFFICIENT_SIZE");

	/* ---- readings ---- */
	nvmlUtilization_t u;
	want(NV(nvmlDeviceGetUtilizationRates, (nvmlDevice_t, nvmlUtilization_t *), dev, &u), NVML_SUCCESS, "nvmlDeviceGetUtilizationRates");
	expect(u.gpu <= 100 && u.memory <= 100, "utilization is a percentage");
	unsigned int t, slow;
	want(NV(nvmlDeviceGetTemperature, (nvmlDevice_t, int, unsigned int *), dev, 0, &t), NVML_SUCCESS, "nvmlDeviceGetTemperature");
	want(NV(nvmlDeviceGetTemperature, (nvmlDevice_t, int, unsigned int *), dev, 7, &t), NVML_ERROR_INVALID_ARGUMENT, "temperature of sensor 7");
	want(NV(nvmlDeviceGetTemperatureThreshold, (nvmlDevice_t, int, unsigned int *), dev, 1, &slow), NVML_SUCCESS, "slowdown threshold");
	expect(t < slow, "the GPU is below its slowdown temperature");
	unsigned int power, limit, lo, hi;
	want(NV(nvmlDeviceGetPowerUsage, (nvmlDevice_t, unsigned int *), dev, &power), NVML_SUCCESS, "nvmlDeviceGetPowerUsage");
	want(NV(nvmlDeviceGetPowerManagementLimit, (nvmlDevice_t, unsigned int *), dev, &limit), NVML_SUCCESS, "power limit");
	want(NV(nvmlDeviceGetPowerManagementLimitConstraints, (nvmlDevice_t, unsigned int *, unsigned int *), dev, &lo, &hi),
	     NVML_SUCCESS, "power limit constraints");
	expect(lo <= limit && limit <= hi, "min <= limit <= max");
	want(NV(nvmlDeviceGetEnforcedPowerLimit, (nvmlDevice_t, unsigned int *), dev, &limit), NVML_SUCCESS, "enforced power limit");
	unsigned long long energy;
	want(NV(nvmlDeviceGetTotalEnergyConsumption, (nvmlDevice_t, unsigned long long *), dev, &energy), NVML_SUCCESS, "energy");
	unsigned int codecUtil, period;
	r = NV(nvmlDeviceGetEncoderUtilization, (nvmlDevice_t, unsigned int *, unsigned int *), dev, &codecUtil, &period);
	expect(r == NVML_ERROR_NOT_SUPPORTED || (r == NVML_SUCCESS && codecUtil <= 100 && period > 0), "encoder utilization");
	r = NV(nvmlDeviceGetDecoderUtilization, (nvmlDevice_t, unsigned int *, unsigned int *), dev, &codecUtil, NULL);
	expect(r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_INVALID_ARGUMENT, "decoder utilization into NULL");
	ok("utilization (GPU, memory, codecs), temperature and thresholds, power, limits and energy");

	unsigned int clk, maxClk;
	for (int type = 0; type < 4; type++) {
		want(NV(nvmlDeviceGetClockInfo, (nvmlDevice_t, int, unsigned int *), dev, type, &clk), NVML_SUCCESS, "nvmlDeviceGetClockInfo");
		want(NV(nvmlDeviceGetMaxClockInfo, (nvmlDevice_t, int, unsigned int *), dev, type, &maxClk), NVML_SUCCESS, "nvmlDeviceGetMaxClockInfo");
		expect(clk <= maxClk, "a clock is at most its maximum");
	}
	want(NV(nvmlDeviceGetClockInfo, (nvmlDevice_t, int, unsigned int *), dev, 9, &clk), NVML_ERROR_INVALID_ARGUMENT, "clock type 9");
	want(NV(nvmlDeviceGetClock, (nvmlDevice_t, int, int, unsigned int *), dev, 1, 0, &clk), NVML_SUCCESS, "nvmlDeviceGetClock");
	unsigned long long reasons, supportedReasons;
	want(NV(nvmlDeviceGetCurrentClocksEventReasons, (nvmlDevice_t, unsigned long long *), dev, &reasons), NVML_SUCCESS, "clock event reasons");
	want(NV(nvmlDeviceGetSupportedClocksEventReasons, (nvmlDevice_t, unsigned long long *), dev, &supportedReasons), NVML_SUCCESS,
	     "supported clock event reasons");
	expect((reasons & ~supportedReasons) == 0, "current reasons are supported ones");
	ok("clocks (current <= max; a bad type refused) and clock event reasons");

	unsigned int fan;
	r = NV(nvmlDeviceGetFanSpeed, (nvmlDevice_t, unsigned int *), dev, &fan);
	expect(r == NVML_ERROR_NOT_SUPPORTED || (r == NVML_SUCCESS && fan <= 100), "fan speed is a percentage or not supported");
	int eccCur, eccPending;
	want(NV(nvmlDeviceGetEccMode, (nvmlDevice_t, int *, int *), dev, &eccCur, &eccPending), NVML_SUCCESS, "nvmlDeviceGetEccMode");
	unsigned long long eccCount;
	r = NV(nvmlDeviceGetTotalEccErrors, (nvmlDevice_t, int, int, unsigned long long *), dev, 1, 0, &eccCount);
	expect(eccCur ? r == NVML_SUCCESS : r == NVML_ERROR_NOT_SUPPORTED, "ECC counters need ECC enabled");
	want(NV(nvmlDeviceGetTotalEccErrors, (nvmlDevice_t, int, int, unsigned long long *), dev, 5, 0, &eccCount),
	     NVML_ERROR_INVALID_ARGUMENT, "ECC errors of type 5");
	unsigned int pstate, persistence, computeMode;
	want(NV(nvmlDeviceGetPerformanceState, (nvmlDevice_t, unsigned int *), dev, &pstate), NVML_SUCCESS, "performance state");
	expect(pstate <= 15 || pstate == 32, "a P-state or unknown");
	want(NV(nvmlDeviceGetPersistenceMode, (nvmlDevice_t, unsigned int *), dev, &persistence), NVML_SUCCESS, "persistence mode");
	want(NV(nvmlDeviceGetComputeMode, (nvmlDevice_t, unsigned int *), dev, &computeMode), NVML_SUCCESS, "compute mode");
	expect(persistence <= 1 && computeMode <= 3, "persistence and compute modes are NVML's values");
	ok("fan, ECC mode and counters, performance state, persistence and compute modes");

	/* ---- identity, PCI ---- */
	char serial[64], vbios[64];
	want(NV(nvmlDeviceGetSerial, (nvmlDevice_t, char *, unsigned int), dev, serial, sizeof serial), NVML_SUCCESS, "serial");
	want(NV(nvmlDeviceGetSerial, (nvmlDevice_t, char *, unsigned int), dev, serial, 1), NVML_ERROR_INSUFFICIENT_SIZE, "serial into 1 byte");
	want(NV(nvmlDeviceGetVbiosVersion, (nvmlDevice_t, char *, unsigned int), dev, vbios, sizeof vbios), NVML_SUCCESS, "VBIOS version");
	unsigned int brand, arch, minor;
	want(NV(nvmlDeviceGetBrand, (nvmlDevice_t, unsigned int *), dev, &brand), NVML_SUCCESS, "brand");
	want(NV(nvmlDeviceGetArchitecture, (nvmlDevice_t, unsigned int *), dev, &arch), NVML_SUCCESS, "architecture");
	want(NV(nvmlDeviceGetMinorNumber, (nvmlDevice_t, unsigned int *), dev, &minor), NVML_SUCCESS, "minor number");
	nvmlPciInfo_t pci;
	want(NV(nvmlDeviceGetPciInfo_v3, (nvmlDevice_t, nvmlPciInfo_t *), dev, &pci), NVML_SUCCESS, "nvmlDeviceGetPciInfo_v3");
	expect((pci.pciDeviceId & 0xFFFF) == 0x10DE, "the PCI vendor is NVIDIA's");
	nvmlDevice_t byBus;
	want(NV(nvmlDeviceGetHandleByPciBusId_v2, (const char *, nvmlDevice_t *), pci.busId, &byBus), NVML_SUCCESS, "handle by bus id");
	want(NV(nvmlDeviceGetHandleByPciBusId_v2, (const char *, nvmlDevice_t *), "not a bus id", &byBus),
	     NVML_ERROR_INVALID_ARGUMENT, "handle by a malformed bus id");
	want(NV(nvmlDeviceGetHandleByPciBusId_v2, (const char *, nvmlDevice_t *), "00000000:FE:1F.0", &byBus), NVML_ERROR_NOT_FOUND,
	     "handle by the bus id of no device");
	unsigned int gen, width, curGen, curWidth;
	want(NV(nvmlDeviceGetMaxPcieLinkGeneration, (nvmlDevice_t, unsigned int *), dev, &gen), NVML_SUCCESS, "PCIe generation");
	want(NV(nvmlDeviceGetCurrPcieLinkGeneration, (nvmlDevice_t, unsigned int *), dev, &curGen), NVML_SUCCESS, "current PCIe generation");
	want(NV(nvmlDeviceGetMaxPcieLinkWidth, (nvmlDevice_t, unsigned int *), dev, &width), NVML_SUCCESS, "PCIe width");
	want(NV(nvmlDeviceGetCurrPcieLinkWidth, (nvmlDevice_t, unsigned int *), dev, &curWidth), NVML_SUCCESS, "current PCIe width");
	expect(curGen <= gen && curWidth <= width && gen >= 1 && width >= 1, "the PCIe link is within its maximum");
	unsigned int tx, busWidth;
	r = NV(nvmlDeviceGetPcieThroughput, (nvmlDevice_t, int, unsigned int *), dev, 0, &tx);
	expect(r == NVML_SUCCESS || r == NVML_ERROR_NOT_SUPPORTED, "PCIe throughput");
	r = NV(nvmlDeviceGetPcieThroughput, (nvmlDevice_t, int, unsigned int *), dev, 7, &tx);
	expect(r == NVML_ERROR_INVALID_ARGUMENT || r == NVML_ERROR_NOT_SUPPORTED, "PCIe throughput of counter 7");
	want(NV(nvmlDeviceGetMemoryBusWidth, (nvmlDevice_t, unsigned int *), dev, &busWidth), NVML_SUCCESS, "memory bus width");
	expect(busWidth > 0, "a memory bus has a width");
	printf("    (%s, serial %s, VBIOS %s, PCI id %08x, PCIe gen %u x%u)\n", name, serial, vbios, pci.pciDeviceId, curGen, curWidth);
	ok("serial, VBIOS, brand, architecture, minor number, PCI ids, PCIe link and throughput, memory bus width");

	unsigned int migCur = 9, migPending = 9;
	want(NV(nvmlDeviceGetMigMode, (nvmlDevice_t, unsigned int *, unsigned int *), dev, &migCur, &migPending), NVML_SUCCESS, "MIG mode");
	expect(migCur == 0 && migPending == 0, "MIG is disabled");
	nvmlDeviceAddressingMode_t am = {.version = NVML_STRUCT_VERSION(sizeof am, 1)};
	r = NV(nvmlDeviceGetAddressingMode, (nvmlDevice_t, nvmlDeviceAddressingMode_t *), dev, &am);
	expect(r == NVML_ERROR_NOT_SUPPORTED || (r == NVML_SUCCESS && am.value <= 2), "addressing mode is NVML's value");
	ok("MIG disabled; addressing mode");

	/* ---- events ---- */
	unsigned long long types = 0;
	want(NV(nvmlDeviceGetSupportedEventTypes, (nvmlDevice_t, unsigned long long *), dev, &types), NVML_SUCCESS, "supported event types");
	nvmlEventSet_t set;
	want(NV(nvmlEventSetCreate, (nvmlEventSet_t *), &set), NVML_SUCCESS, "nvmlEventSetCreate");
	if (types)
		want(NV(nvmlDeviceRegisterEvents, (nvmlDevice_t, unsigned long long, nvmlEventSet_t), dev, types, set), NVML_SUCCESS,
		     "register the supported events");
	want(NV(nvmlDeviceRegisterEvents, (nvmlDevice_t, unsigned long long, nvmlEventSet_t), dev, 1ULL << 62, set),
	     NVML_ERROR_NOT_SUPPORTED, "register an unsupported event");
	nvmlEventData_t data;
	double t0 = gf_now_ms();
	want(NV(nvmlEventSetWait_v2, (nvmlEventSet_t, nvmlEventData_t *, unsigned int), set, &data, 50), NVML_ERROR_TIMEOUT,
	     "a wait on a quiet GPU");
	expect(gf_now_ms() - t0 >= 45, "the wait lasted its timeout");
	want(NV(nvmlEventSetFree, (nvmlEventSet_t), set), NVML_SUCCESS, "nvmlEventSetFree");
	want(NV(nvmlEventSetFree, (nvmlEventSet_t), set), NVML_ERROR_INVALID_ARGUMENT, "a set freed twice");
	want(NV(nvmlEventSetWait_v2, (nvmlEventSet_t, nvmlEventData_t *, unsigned int), set, &data, 1), NVML_ERROR_INVALID_ARGUMENT,
	     "a wait on a freed set");
	ok("event types, sets, registration and a wait that times out");

	/* ---- what has no answer through a share ---- */
	char part[64];
	r = NV(nvmlDeviceGetBoardPartNumber, (nvmlDevice_t, char *, unsigned int), dev, part, sizeof part);
	expect(r == NVML_SUCCESS || r == NVML_ERROR_NOT_SUPPORTED, "nvmlDeviceGetBoardPartNumber answers or says NOT_SUPPORTED");
	int active;
	r = NV(nvmlDeviceGetNvLinkState, (nvmlDevice_t, unsigned int, int *), dev, 0, &active);
	expect(r == NVML_SUCCESS || r == NVML_ERROR_NOT_SUPPORTED, "NvLink state answers or says NOT_SUPPORTED");
	expect(!share || r == NVML_ERROR_NOT_SUPPORTED, "no NvLink reaches a share");
	const char *(*errorString)(nvmlReturn_t) = (const char *(*)(nvmlReturn_t))fn("nvmlErrorString");
	expect(!strcmp(errorString(NVML_ERROR_INSUFFICIENT_SIZE), "Insufficient Size"), "nvmlErrorString");
	ok("unanswerable names say NOT_SUPPORTED; nvmlErrorString");

	GF_CHECK(cu.cuMemFree(p));
	want(NV(nvmlShutdown, (void)), NVML_SUCCESS, "nvmlShutdown");
	want(NV(nvmlShutdown, (void)), NVML_SUCCESS, "nvmlShutdown (the second reference)");
	want(NV(nvmlShutdown, (void)), NVML_ERROR_UNINITIALIZED, "a third nvmlShutdown");
	want(NV(nvmlDeviceGetCount_v2, (unsigned int *), &count), NVML_ERROR_UNINITIALIZED, "count after shutdown");
	ok("shutdown is reference-counted");
	printf("conf_nvml: %d checks passed\n", checks);
	return 0;
}
