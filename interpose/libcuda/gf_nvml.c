//go:build linux && cgo

// gf_nvml.c: the NVML entry points, for frameworks that ask NVML about
// devices before (or instead of) the driver: PyTorch counts devices through
// nvmlDeviceGetCount_v2 and c10 insists a handful of names resolve. The
// devices are the session's, and memory is the share.

#include <stdio.h>
#include <string.h>

#include "_cgo_export.h"
#include "gf_nvml.h"

static int gf_nvml_refs;

nvmlReturn_t gf_nvml_refuse(const char *name) {
	if (gf_trace_fd >= 0)
		gf_trace_call(name, GF_NVML_ERROR_UNINITIALIZED, gf_now_ns());
	return GF_NVML_ERROR_UNINITIALIZED;
}

// ---- names without a meaningful answer ----

extern const char *const gf_nvml_stub_names[];
extern const int gf_nvml_stub_count;
static unsigned char gf_nvml_stub_logged[1024];

// gf_nvml_stub answers every NVML name of nvml_stubs_gen.c: NOT_SUPPORTED,
// which NVML clients already expect of features a GPU lacks, and the name
// logged once so that a user sees what the application asked for.
int gf_nvml_stub(int index) {
	const char *name = index >= 0 && index < gf_nvml_stub_count ? gf_nvml_stub_names[index] : "?";
	if (!GF_UNLIKELY(gf_forked) && index >= 0 && index < (int)sizeof gf_nvml_stub_logged &&
	    !__atomic_exchange_n(&gf_nvml_stub_logged[index], 1, __ATOMIC_RELAXED))
		gf_log("gpufabric: %s is not supported by the gpufabric interposer (NVML_ERROR_NOT_SUPPORTED)", name);
	if (gf_trace_fd >= 0)
		gf_trace_call(name, GF_NVML_ERROR_NOT_SUPPORTED, gf_now_ns());
	return GF_NVML_ERROR_NOT_SUPPORTED;
}

int gf_nvml_ready(void) { return __atomic_load_n(&gf_nvml_refs, __ATOMIC_ACQUIRE) > 0; }
#define nvml_ready gf_nvml_ready
#define nvml_index gf_nvml_index

// Device handles: (index + 1) << 4 | 0xA, never NULL.
nvmlDevice_t gf_nvml_handle(int i) { return (nvmlDevice_t)(((uintptr_t)(i + 1) << 4) | 0xA); }
#define nvml_handle gf_nvml_handle

int gf_nvml_index(nvmlDevice_t h) {
	uintptr_t v = (uintptr_t)h;
	if ((v & 0xF) != 0xA)
		return -1;
	int i = (int)(v >> 4) - 1;
	return i >= 0 && i < gf_device_count ? i : -1;
}

static nvmlReturn_t nvml_init(void) {
	if (gf_in_child())
		return GF_NVML_ERROR_UNINITIALIZED;
	nvmlReturn_t r = gfgo_nvmlInit();
	if (r == GF_NVML_SUCCESS)
		__atomic_add_fetch(&gf_nvml_refs, 1, __ATOMIC_ACQ_REL);
	return r;
}

GF_NVML(nvmlInit, (void), nvml_init())
GF_NVML(nvmlInit_v2, (void), nvml_init())
GF_NVML(nvmlInitWithFlags, (unsigned int flags), ((void)flags, nvml_init()))

static nvmlReturn_t nvml_shutdown(void) {
	int refs = __atomic_load_n(&gf_nvml_refs, __ATOMIC_ACQUIRE);
	while (refs > 0 &&
	       !__atomic_compare_exchange_n(&gf_nvml_refs, &refs, refs - 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
	}
	return refs > 0 ? GF_NVML_SUCCESS : GF_NVML_ERROR_UNINITIALIZED;
}

GF_NVML(nvmlShutdown, (void), nvml_shutdown())

static nvmlReturn_t nvml_count(unsigned int *count) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!count)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*count = (unsigned int)gf_device_count;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetCount, (unsigned int *deviceCount), nvml_count(deviceCount))
GF_NVML(nvmlDeviceGetCount_v2, (unsigned int *deviceCount), nvml_count(deviceCount))

static nvmlReturn_t nvml_by_index(unsigned int index, nvmlDevice_t *device) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!device || index >= (unsigned int)gf_device_count)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*device = nvml_handle((int)index);
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetHandleByIndex, (unsigned int index, nvmlDevice_t *device), nvml_by_index(index, device))
GF_NVML(nvmlDeviceGetHandleByIndex_v2, (unsigned int index, nvmlDevice_t *device), nvml_by_index(index, device))

// nvml_find looks a device up by its UUID string (what = 1) or PCI bus id
// (what = 4).
static nvmlReturn_t nvml_find(const char *key, int what, nvmlDevice_t *device) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!key || !device)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	int i = gfgo_nvmlFind((char *)key, what);
	if (i == -2)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	if (i < 0)
		return GF_NVML_ERROR_NOT_FOUND;
	*device = nvml_handle(i);
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetHandleByUUID, (const char *uuid, nvmlDevice_t *device), nvml_find(uuid, 1, device))
GF_NVML(nvmlDeviceGetHandleByPciBusId, (const char *pciBusId, nvmlDevice_t *device), nvml_find(pciBusId, 4, device))
GF_NVML(nvmlDeviceGetHandleByPciBusId_v2, (const char *pciBusId, nvmlDevice_t *device), nvml_find(pciBusId, 4, device))

static nvmlReturn_t nvml_get_index(nvmlDevice_t device, unsigned int *index) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	int i = nvml_index(device);
	if (i < 0 || !index)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*index = (unsigned int)i;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetIndex, (nvmlDevice_t device, unsigned int *index), nvml_get_index(device, index))

// nvml_query asks Go for one fact of a device: 0 name, 1 UUID, 2 memory,
// 4 PCI info, 5 compute capability.
static nvmlReturn_t nvml_query(nvmlDevice_t device, int what, void *out, void *out2, unsigned int len) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	int i = nvml_index(device);
	if (i < 0 || !out)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	return gfgo_nvmlQuery(i, what, out, out2, len);
}

GF_NVML(nvmlDeviceGetName, (nvmlDevice_t device, char *name, unsigned int length), nvml_query(device, 0, name, NULL, length))
GF_NVML(nvmlDeviceGetUUID, (nvmlDevice_t device, char *uuid, unsigned int length), nvml_query(device, 1, uuid, NULL, length))
GF_NVML(nvmlDeviceGetMemoryInfo, (nvmlDevice_t device, nvmlMemory_t *memory), nvml_query(device, 2, memory, NULL, 0))
GF_NVML(nvmlDeviceGetPciInfo, (nvmlDevice_t device, nvmlPciInfo_t *pci), nvml_query(device, 4, pci, NULL, 0))
GF_NVML(nvmlDeviceGetPciInfo_v2, (nvmlDevice_t device, nvmlPciInfo_t *pci), nvml_query(device, 4, pci, NULL, 0))
GF_NVML(nvmlDeviceGetPciInfo_v3, (nvmlDevice_t device, nvmlPciInfo_t *pci), nvml_query(device, 4, pci, NULL, 0))
GF_NVML(nvmlDeviceGetCudaComputeCapability, (nvmlDevice_t device, int *major, int *minor),
        nvml_query(device, 5, major, minor, 0))

// NVLink does not reach a remote GPU.
static nvmlReturn_t nvml_not_supported(void) { return nvml_ready() ? GF_NVML_ERROR_NOT_SUPPORTED : GF_NVML_ERROR_UNINITIALIZED; }

GF_NVML(nvmlDeviceGetNvLinkRemoteDeviceType, (nvmlDevice_t device, unsigned int link, int *type),
        ((void)device, (void)link, (void)type, nvml_not_supported()))
GF_NVML(nvmlDeviceGetNvLinkRemotePciInfo_v2, (nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci),
        ((void)device, (void)link, (void)pci, nvml_not_supported()))
GF_NVML(nvmlDeviceGetNvLinkState, (nvmlDevice_t device, unsigned int link, int *isActive),
        ((void)device, (void)link, (void)isActive, nvml_not_supported()))

// The driver's and NVML's versions are the server's (device 0's NVML view):
// the driver's numeric form on the cuda backend, a consistent one on the
// host backend. NVML's version works before nvmlInit, as the real one's.
static nvmlReturn_t version_str(int what, char *version, unsigned int length) {
	if (what == 0 && !nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!version)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	if (gf_in_child())
		return GF_NVML_ERROR_UNINITIALIZED;
	return gfgo_nvmlVersion(what, version, length);
}

GF_NVML(nvmlSystemGetDriverVersion, (char *version, unsigned int length), version_str(0, version, length))
GF_NVML(nvmlSystemGetNVMLVersion, (char *version, unsigned int length), version_str(1, version, length))

static nvmlReturn_t cuda_version(int *v) {
	if (!nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!v)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*v = gf_driver_version;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlSystemGetCudaDriverVersion, (int *cudaDriverVersion), cuda_version(cudaDriverVersion))
GF_NVML(nvmlSystemGetCudaDriverVersion_v2, (int *cudaDriverVersion), cuda_version(cudaDriverVersion))


GF_EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
	switch (result) {
	case 0: return "Success";
	case 1: return "Uninitialized";
	case 2: return "Invalid Argument";
	case 3: return "Not Supported";
	case 4: return "Insufficient Permissions";
	case 5: return "Already Initialized";
	case 6: return "Not Found";
	case 7: return "Insufficient Size";
	case 8: return "Insufficient External Power";
	case 9: return "Driver Not Loaded";
	case 10: return "Timeout";
	case 11: return "Interrupt request issued to GPU";
	case 12: return "NVML Shared Library Not Found";
	case 13: return "Function Not Found";
	case 14: return "Corrupted infoROM";
	case 15: return "GPU is lost";
	case 16: return "GPU requires restart";
	case 17: return "The operating system has blocked the request";
	case 18: return "RM has detected an NVML/RM version mismatch";
	case 19: return "In use by another client";
	case 20: return "Insufficient Memory";
	case 21: return "No data";
	case 22: return "The requested vgpu operation is not available on target device";
	case 23: return "Ran out of critical resources, other than memory";
	case 24: return "Frequency not supported";
	case 25: return "Argument version mismatch";
	case 26: return "Deprecated";
	case 27: return "Not Ready";
	case 28: return "GPU not found";
	case 29: return "Invalid state";
	default: return "Unknown Error";
	}
}
