// gf_nvml.h: the NVML types the device answers need, with their real ABI
// (written from the NVML API reference), and the snapshot of a device's
// NVML view that Go hands to C. Declarations only: cgo copies the preambles
// that include this file into _cgo_export.h.
#ifndef GF_NVML_H
#define GF_NVML_H

#include "gf.h"

// NVML_STRUCT_VERSION: a versioned struct's first field holds its size and
// version, which the callee checks.
#define GF_NVML_STRUCT_VERSION(size, ver) ((unsigned int)(size) | ((unsigned int)(ver) << 24U))

enum {
	GF_NVML_ERROR_TIMEOUT = 10,
	GF_NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

typedef struct nvmlMemory_v2_st {
	unsigned int version;
	unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct nvmlBAR1Memory_st {
	unsigned long long bar1Total, bar1Free, bar1Used;
} nvmlBAR1Memory_t;

typedef struct nvmlProcessInfo_v1_st {
	unsigned int pid;
	unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct nvmlProcessInfo_v2_st {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

typedef struct nvmlEventSet_st *nvmlEventSet_t;

typedef struct nvmlEventData_st {
	nvmlDevice_t device;
	unsigned long long eventType, eventData;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

typedef struct {
	unsigned int version, value;
} nvmlDeviceAddressingMode_t;

// ---- shared by the gf_nvml*.c files ----

nvmlReturn_t gf_nvml_refuse(const char *name);
int gf_nvml_ready(void);           // nvmlInit has succeeded more often than nvmlShutdown
int gf_nvml_index(nvmlDevice_t h); // the device of a handle, or -1
nvmlDevice_t gf_nvml_handle(int i);

// GF_NVML defines an NVML entry point: refused in a forked child (the Go
// runtime did not survive the fork), traced when tracing is on.
#define GF_NVML(name, params, expr)                 \
	GF_EXPORT nvmlReturn_t name params {            \
		if (GF_UNLIKELY(gf_forked))                 \
			return gf_nvml_refuse(#name);           \
		GF_TRACED(#name, expr);                     \
	}

// gf_nvml_snap is one device's NVML view, as api.NVMLDevice carries it.
// supported holds the api.NVMLHas* bits of the groups the device answers.
struct gf_nvml_snap {
	unsigned long long supported;
	unsigned long long quota, session_used, device_free;
	unsigned long long bar1_total, bar1_used;
	unsigned long long energy_mj, clocks_event_reasons, supported_events;
	unsigned long long ecc_errors[2][2];
	unsigned int brand, arch, minor, pci_device_id, pci_subsystem_id;
	unsigned int pcie_gen_max, pcie_gen_cur, pcie_width_max, pcie_width_cur;
	unsigned int util_gpu, util_mem, temp, slowdown, shutdown;
	unsigned int power, power_limit, power_default, power_min, power_max, power_enforced;
	unsigned int clocks[4], max_clocks[4];
	unsigned int fan, fans, ecc_current, ecc_pending;
	unsigned int pstate, persistence, compute_mode, addressing_mode;
	unsigned int encoder_util, decoder_util, codec_sampling_us, pcie_tx_kbps, pcie_rx_kbps, memory_bus_width;
	int emulated;
	char serial[64], vbios[64], driver_version[64], nvml_version[80];
};

// The api.NVMLHas* bits, in their order.
enum {
	GF_NV_UTIL = 1 << 0,
	GF_NV_TEMP = 1 << 1,
	GF_NV_TEMP_THRESHOLDS = 1 << 2,
	GF_NV_POWER = 1 << 3,
	GF_NV_POWER_LIMITS = 1 << 4,
	GF_NV_ENERGY = 1 << 5,
	GF_NV_CLOCKS = 1 << 6,
	GF_NV_MAX_CLOCKS = 1 << 7,
	GF_NV_FAN = 1 << 8,
	GF_NV_ECC = 1 << 9,
	GF_NV_PSTATE = 1 << 10,
	GF_NV_PERSISTENCE = 1 << 11,
	GF_NV_COMPUTE_MODE = 1 << 12,
	GF_NV_SERIAL = 1 << 13,
	GF_NV_VBIOS = 1 << 14,
	GF_NV_BRAND = 1 << 15,
	GF_NV_ARCH = 1 << 16,
	GF_NV_MINOR = 1 << 17,
	GF_NV_PCIE = 1 << 18,
	GF_NV_BAR1 = 1 << 19,
	GF_NV_CLOCK_REASONS = 1 << 20,
	GF_NV_EVENTS = 1 << 21,
	GF_NV_ADDRESSING = 1 << 22,
	GF_NV_PCI_IDS = 1 << 23,
	GF_NV_CODEC_UTIL = 1 << 24,
	GF_NV_PCIE_THROUGHPUT = 1 << 25,
	GF_NV_MEMORY_BUS_WIDTH = 1 << 26,
};

#endif
