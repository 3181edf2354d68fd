//go:build linux && cgo

// gf_nvml_device.c: NVML's readings of a device (memory, utilization,
// temperature, power, clocks, ECC, identity, PCIe, processes, events),
// answered from the device's NVML view that the server sends in one message
// (the cuda backend reads it from the server's NVML; the host backend sends
// labelled emulated values). Memory is the session's share, and the process
// list is this process with what its session holds.
//
// A reading the device does not answer (its group is not in the view's
// supported bits) is NVML_ERROR_NOT_SUPPORTED, as NVML answers for a
// feature the GPU lacks.

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_cgo_export.h"
#include "gf_nvml.h"

// nvml_snap checks a device call (library initialised, handle valid, output
// not NULL) and fetches the device's view; fresh fetches it now rather than
// from the short-lived cache. need is the group the answer needs.
static nvmlReturn_t nvml_snap(nvmlDevice_t device, const void *out, int fresh, unsigned long long need,
                              struct gf_nvml_snap *s) {
	if (!gf_nvml_ready() || gf_in_child())
		return GF_NVML_ERROR_UNINITIALIZED;
	int i = gf_nvml_index(device);
	if (i < 0 || !out)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	nvmlReturn_t r = gfgo_nvmlSnap(i, fresh, s);
	if (r != GF_NVML_SUCCESS)
		return r;
	if (need && !(s->supported & need))
		return GF_NVML_ERROR_NOT_SUPPORTED;
	return GF_NVML_SUCCESS;
}

#define SNAP(device, out, fresh, need)                              \
	struct gf_nvml_snap s;                                          \
	nvmlReturn_t r_ = nvml_snap(device, out, fresh, need, &s);      \
	if (r_ != GF_NVML_SUCCESS)                                      \
		return r_

#define FIELD(name) offsetof(struct gf_nvml_snap, name)

// get_u32 answers a reading that is one unsigned int of the view.
static nvmlReturn_t get_u32(nvmlDevice_t device, unsigned int *out, unsigned long long need, size_t off) {
	SNAP(device, out, 0, need);
	memcpy(out, (const char *)&s + off, sizeof *out);
	return GF_NVML_SUCCESS;
}

static nvmlReturn_t get_u64(nvmlDevice_t device, unsigned long long *out, unsigned long long need, size_t off) {
	SNAP(device, out, 0, need);
	memcpy(out, (const char *)&s + off, sizeof *out);
	return GF_NVML_SUCCESS;
}

static nvmlReturn_t get_str(nvmlDevice_t device, char *out, unsigned int length, unsigned long long need, size_t off) {
	SNAP(device, out, 0, need);
	const char *v = (const char *)&s + off;
	size_t n = strlen(v);
	if (length < n + 1)
		return GF_NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(out, v, n + 1);
	return GF_NVML_SUCCESS;
}

// ---- memory: the share ----

static nvmlReturn_t memory_v2(nvmlDevice_t device, nvmlMemory_v2_t *m) {
	SNAP(device, m, 1, 0);
	if (m->version != GF_NVML_STRUCT_VERSION(sizeof *m, 2))
		return GF_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	m->total = s.quota;
	m->reserved = 0;
	m->used = s.session_used;
	m->free = s.device_free;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetMemoryInfo_v2, (nvmlDevice_t device, nvmlMemory_v2_t *memory), memory_v2(device, memory))

static nvmlReturn_t bar1(nvmlDevice_t device, nvmlBAR1Memory_t *b) {
	SNAP(device, b, 0, GF_NV_BAR1);
	b->bar1Total = s.bar1_total;
	b->bar1Used = s.bar1_used;
	b->bar1Free = s.bar1_total - s.bar1_used;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetBAR1MemoryInfo, (nvmlDevice_t device, nvmlBAR1Memory_t *bar1Memory), bar1(device, bar1Memory))

// ---- utilization, temperature, power ----

// codec answers the encoder's (decoder = 0) or decoder's utilization with
// the sampling period it covers.
static nvmlReturn_t codec(nvmlDevice_t device, int decoder, unsigned int *util, unsigned int *periodUs) {
	SNAP(device, util, 0, GF_NV_CODEC_UTIL);
	if (!periodUs)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*util = decoder ? s.decoder_util : s.encoder_util;
	*periodUs = s.codec_sampling_us;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetEncoderUtilization, (nvmlDevice_t device, unsigned int *utilization, unsigned int *samplingPeriodUs),
        codec(device, 0, utilization, samplingPeriodUs))
GF_NVML(nvmlDeviceGetDecoderUtilization, (nvmlDevice_t device, unsigned int *utilization, unsigned int *samplingPeriodUs),
        codec(device, 1, utilization, samplingPeriodUs))

static nvmlReturn_t util_rates(nvmlDevice_t device, nvmlUtilization_t *u) {
	SNAP(device, u, 0, GF_NV_UTIL);
	u->gpu = s.util_gpu;
	u->memory = s.util_mem;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetUtilizationRates, (nvmlDevice_t device, nvmlUtilization_t *utilization),
        util_rates(device, utilization))

static nvmlReturn_t temperature(nvmlDevice_t device, int sensor, unsigned int *temp) {
	if (sensor != 0) // NVML_TEMPERATURE_GPU is the only sensor
		return gf_nvml_ready() ? GF_NVML_ERROR_INVALID_ARGUMENT : GF_NVML_ERROR_UNINITIALIZED;
	return get_u32(device, temp, GF_NV_TEMP, FIELD(temp));
}

GF_NVML(nvmlDeviceGetTemperature, (nvmlDevice_t device, int sensorType, unsigned int *temp),
        temperature(device, sensorType, temp))

static nvmlReturn_t threshold(nvmlDevice_t device, int which, unsigned int *temp) {
	switch (which) {
	case 0: // NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
		return get_u32(device, temp, GF_NV_TEMP_THRESHOLDS, FIELD(shutdown));
	case 1: // NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
		return get_u32(device, temp, GF_NV_TEMP_THRESHOLDS, FIELD(slowdown));
	}
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (gf_nvml_index(device) < 0 || !temp || which < 0 || which > 7)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	return GF_NVML_ERROR_NOT_SUPPORTED;
}

GF_NVML(nvmlDeviceGetTemperatureThreshold, (nvmlDevice_t device, int thresholdType, unsigned int *temp),
        threshold(device, thresholdType, temp))

GF_NVML(nvmlDeviceGetPowerUsage, (nvmlDevice_t device, unsigned int *power),
        get_u32(device, power, GF_NV_POWER, FIELD(power)))
GF_NVML(nvmlDeviceGetPowerManagementLimit, (nvmlDevice_t device, unsigned int *limit),
        get_u32(device, limit, GF_NV_POWER_LIMITS, FIELD(power_limit)))
GF_NVML(nvmlDeviceGetPowerManagementDefaultLimit, (nvmlDevice_t device, unsigned int *defaultLimit),
        get_u32(device, defaultLimit, GF_NV_POWER_LIMITS, FIELD(power_default)))
GF_NVML(nvmlDeviceGetEnforcedPowerLimit, (nvmlDevice_t device, unsigned int *limit),
        get_u32(device, limit, GF_NV_POWER_LIMITS, FIELD(power_enforced)))
GF_NVML(nvmlDeviceGetTotalEnergyConsumption, (nvmlDevice_t device, unsigned long long *energy),
        get_u64(device, energy, GF_NV_ENERGY, FIELD(energy_mj)))

static nvmlReturn_t limit_constraints(nvmlDevice_t device, unsigned int *minLimit, unsigned int *maxLimit) {
	SNAP(device, minLimit, 0, GF_NV_POWER_LIMITS);
	if (!maxLimit)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*minLimit = s.power_min;
	*maxLimit = s.power_max;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetPowerManagementLimitConstraints,
        (nvmlDevice_t device, unsigned int *minLimit, unsigned int *maxLimit),
        limit_constraints(device, minLimit, maxLimit))

static nvmlReturn_t power_mode(nvmlDevice_t device, int *mode) {
	SNAP(device, mode, 0, GF_NV_POWER_LIMITS);
	*mode = 1; // NVML_FEATURE_ENABLED: the device has limits to manage
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetPowerManagementMode, (nvmlDevice_t device, int *mode), power_mode(device, mode))

// ---- clocks ----

// clock answers a clock of nvmlClockType_t: current (which = 0), the
// application clocks (1, 2: the maximum, as no application clocks are set
// through a share) or the boost maximum (3).
static nvmlReturn_t clock_of(nvmlDevice_t device, int type, int which, unsigned int *mhz) {
	SNAP(device, mhz, 0, which == 0 ? GF_NV_CLOCKS : GF_NV_MAX_CLOCKS);
	if (type < 0 || type > 3 || which < 0 || which > 3)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*mhz = which == 0 ? s.clocks[type] : s.max_clocks[type];
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetClockInfo, (nvmlDevice_t device, int type, unsigned int *clock_),
        clock_of(device, type, 0, clock_))
GF_NVML(nvmlDeviceGetMaxClockInfo, (nvmlDevice_t device, int type, unsigned int *clock_),
        clock_of(device, type, 3, clock_))
GF_NVML(nvmlDeviceGetApplicationsClock, (nvmlDevice_t device, int clockType, unsigned int *clockMHz),
        clock_of(device, clockType, 1, clockMHz))
GF_NVML(nvmlDeviceGetDefaultApplicationsClock, (nvmlDevice_t device, int clockType, unsigned int *clockMHz),
        clock_of(device, clockType, 2, clockMHz))
GF_NVML(nvmlDeviceGetMaxCustomerBoostClock, (nvmlDevice_t device, int clockType, unsigned int *clockMHz),
        clock_of(device, clockType, 3, clockMHz))
GF_NVML(nvmlDeviceGetClock, (nvmlDevice_t device, int clockType, int clockId, unsigned int *clockMHz),
        clock_of(device, clockType, clockId, clockMHz))

// The reasons clocks are held down, and those the device can report: every
// reason NVML defines (GPU idle through display clock setting).
#define GF_CLOCK_REASONS_ALL 0x1FFULL

GF_NVML(nvmlDeviceGetCurrentClocksEventReasons, (nvmlDevice_t device, unsigned long long *reasons),
        get_u64(device, reasons, GF_NV_CLOCK_REASONS, FIELD(clocks_event_reasons)))
GF_NVML(nvmlDeviceGetCurrentClocksThrottleReasons, (nvmlDevice_t device, unsigned long long *reasons),
        get_u64(device, reasons, GF_NV_CLOCK_REASONS, FIELD(clocks_event_reasons)))

static nvmlReturn_t supported_reasons(nvmlDevice_t device, unsigned long long *reasons) {
	SNAP(device, reasons, 0, GF_NV_CLOCK_REASONS);
	*reasons = GF_CLOCK_REASONS_ALL;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetSupportedClocksEventReasons, (nvmlDevice_t device, unsigned long long *reasons),
        supported_reasons(device, reasons))
GF_NVML(nvmlDeviceGetSupportedClocksThrottleReasons, (nvmlDevice_t device, unsigned long long *reasons),
        supported_reasons(device, reasons))

// ---- fan ----

GF_NVML(nvmlDeviceGetFanSpeed, (nvmlDevice_t device, unsigned int *speed),
        get_u32(device, speed, GF_NV_FAN, FIELD(fan)))

static nvmlReturn_t fan_v2(nvmlDevice_t device, unsigned int fan, unsigned int *speed) {
	SNAP(device, speed, 0, GF_NV_FAN);
	if (fan >= s.fans && !(fan == 0 && s.fans == 0))
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*speed = s.fan;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetFanSpeed_v2, (nvmlDevice_t device, unsigned int fan, unsigned int *speed),
        fan_v2(device, fan, speed))
GF_NVML(nvmlDeviceGetNumFans, (nvmlDevice_t device, unsigned int *numFans),
        get_u32(device, numFans, GF_NV_FAN, FIELD(fans)))

// ---- ECC ----

static nvmlReturn_t ecc_mode(nvmlDevice_t device, int *current, int *pending) {
	SNAP(device, current, 0, GF_NV_ECC);
	if (!pending)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*current = (int)s.ecc_current;
	*pending = (int)s.ecc_pending;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetEccMode, (nvmlDevice_t device, int *current, int *pending), ecc_mode(device, current, pending))

static nvmlReturn_t ecc_errors(nvmlDevice_t device, int errorType, int counterType, unsigned long long *count) {
	SNAP(device, count, 0, GF_NV_ECC);
	if (errorType < 0 || errorType > 1 || counterType < 0 || counterType > 1)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	if (!s.ecc_current) // the counters need ECC enabled
		return GF_NVML_ERROR_NOT_SUPPORTED;
	*count = s.ecc_errors[errorType][counterType];
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetTotalEccErrors, (nvmlDevice_t device, int errorType, int counterType, unsigned long long *eccCounts),
        ecc_errors(device, errorType, counterType, eccCounts))

// ---- state and identity ----

GF_NVML(nvmlDeviceGetPerformanceState, (nvmlDevice_t device, unsigned int *pState),
        get_u32(device, pState, GF_NV_PSTATE, FIELD(pstate)))
GF_NVML(nvmlDeviceGetPowerState, (nvmlDevice_t device, unsigned int *pState),
        get_u32(device, pState, GF_NV_PSTATE, FIELD(pstate)))
GF_NVML(nvmlDeviceGetPersistenceMode, (nvmlDevice_t device, unsigned int *mode),
        get_u32(device, mode, GF_NV_PERSISTENCE, FIELD(persistence)))
GF_NVML(nvmlDeviceGetComputeMode, (nvmlDevice_t device, unsigned int *mode),
        get_u32(device, mode, GF_NV_COMPUTE_MODE, FIELD(compute_mode)))
GF_NVML(nvmlDeviceGetBrand, (nvmlDevice_t device, unsigned int *type),
        get_u32(device, type, GF_NV_BRAND, FIELD(brand)))
GF_NVML(nvmlDeviceGetArchitecture, (nvmlDevice_t device, unsigned int *arch),
        get_u32(device, arch, GF_NV_ARCH, FIELD(arch)))
GF_NVML(nvmlDeviceGetMinorNumber, (nvmlDevice_t device, unsigned int *minorNumber),
        get_u32(device, minorNumber, GF_NV_MINOR, FIELD(minor)))
GF_NVML(nvmlDeviceGetSerial, (nvmlDevice_t device, char *serial, unsigned int length),
        get_str(device, serial, length, GF_NV_SERIAL, FIELD(serial)))
GF_NVML(nvmlDeviceGetVbiosVersion, (nvmlDevice_t device, char *version, unsigned int length),
        get_str(device, version, length, GF_NV_VBIOS, FIELD(vbios)))

GF_NVML(nvmlDeviceGetMaxPcieLinkGeneration, (nvmlDevice_t device, unsigned int *maxLinkGen),
        get_u32(device, maxLinkGen, GF_NV_PCIE, FIELD(pcie_gen_max)))
GF_NVML(nvmlDeviceGetGpuMaxPcieLinkGeneration, (nvmlDevice_t device, unsigned int *maxLinkGenDevice),
        get_u32(device, maxLinkGenDevice, GF_NV_PCIE, FIELD(pcie_gen_max)))
GF_NVML(nvmlDeviceGetCurrPcieLinkGeneration, (nvmlDevice_t device, unsigned int *currLinkGen),
        get_u32(device, currLinkGen, GF_NV_PCIE, FIELD(pcie_gen_cur)))
GF_NVML(nvmlDeviceGetMaxPcieLinkWidth, (nvmlDevice_t device, unsigned int *maxLinkWidth),
        get_u32(device, maxLinkWidth, GF_NV_PCIE, FIELD(pcie_width_max)))
GF_NVML(nvmlDeviceGetCurrPcieLinkWidth, (nvmlDevice_t device, unsigned int *currLinkWidth),
        get_u32(device, currLinkWidth, GF_NV_PCIE, FIELD(pcie_width_cur)))

static nvmlReturn_t pcie_throughput(nvmlDevice_t device, int counter, unsigned int *kbps) {
	SNAP(device, kbps, 0, GF_NV_PCIE_THROUGHPUT);
	switch (counter) {
	case 0: // NVML_PCIE_UTIL_TX_BYTES
		*kbps = s.pcie_tx_kbps;
		return GF_NVML_SUCCESS;
	case 1: // NVML_PCIE_UTIL_RX_BYTES
		*kbps = s.pcie_rx_kbps;
		return GF_NVML_SUCCESS;
	}
	return GF_NVML_ERROR_INVALID_ARGUMENT;
}

GF_NVML(nvmlDeviceGetPcieThroughput, (nvmlDevice_t device, int counter, unsigned int *value),
        pcie_throughput(device, counter, value))
GF_NVML(nvmlDeviceGetMemoryBusWidth, (nvmlDevice_t device, unsigned int *busWidth),
        get_u32(device, busWidth, GF_NV_MEMORY_BUS_WIDTH, FIELD(memory_bus_width)))

static nvmlReturn_t addressing_mode(nvmlDevice_t device, nvmlDeviceAddressingMode_t *mode) {
	SNAP(device, mode, 0, GF_NV_ADDRESSING);
	if (mode->version != GF_NVML_STRUCT_VERSION(sizeof *mode, 1))
		return GF_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	mode->value = s.addressing_mode;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetAddressingMode, (nvmlDevice_t device, nvmlDeviceAddressingMode_t *mode),
        addressing_mode(device, mode))

// ---- MIG: a share is not a MIG instance, and MIG is off ----

static nvmlReturn_t mig_mode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (gf_nvml_index(device) < 0 || !current || !pending)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*current = *pending = 0; // NVML_DEVICE_MIG_DISABLE
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetMigMode, (nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode),
        mig_mode(device, currentMode, pendingMode))

static nvmlReturn_t zero_of(nvmlDevice_t device, unsigned int *out) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (gf_nvml_index(device) < 0 || !out)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*out = 0;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceIsMigDeviceHandle, (nvmlDevice_t device, unsigned int *isMigDevice), zero_of(device, isMigDevice))
GF_NVML(nvmlDeviceGetMaxMigDeviceCount, (nvmlDevice_t device, unsigned int *count), zero_of(device, count))
// No display is attached to a GPU lent over the network.
GF_NVML(nvmlDeviceGetDisplayMode, (nvmlDevice_t device, unsigned int *display), zero_of(device, display))
GF_NVML(nvmlDeviceGetDisplayActive, (nvmlDevice_t device, unsigned int *isActive), zero_of(device, isActive))

// ---- processes: this one, with what its session holds ----

// processes lists this process on the device with the bytes its session
// holds there (v2 selects nvmlProcessInfo_v2_t, which v2 and v3 share).
// The process has a context on every device of its session, so it is
// listed even holding nothing, as the driver lists a process with a context.
static nvmlReturn_t processes(nvmlDevice_t device, unsigned int *count, void *infos, int v2) {
	if (!count)
		return gf_nvml_ready() ? GF_NVML_ERROR_INVALID_ARGUMENT : GF_NVML_ERROR_UNINITIALIZED;
	SNAP(device, count, 1, 0);
	if (*count < 1) {
		*count = 1;
		return GF_NVML_ERROR_INSUFFICIENT_SIZE;
	}
	if (!infos)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	if (v2) {
		nvmlProcessInfo_v2_t *p = infos;
		p->pid = (unsigned int)getpid();
		p->usedGpuMemory = s.session_used;
		p->gpuInstanceId = p->computeInstanceId = 0xFFFFFFFFu; // no MIG
	} else {
		nvmlProcessInfo_v1_t *p = infos;
		p->pid = (unsigned int)getpid();
		p->usedGpuMemory = s.session_used;
	}
	*count = 1;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetComputeRunningProcesses, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos),
        processes(device, infoCount, infos, 0))
GF_NVML(nvmlDeviceGetComputeRunningProcesses_v2, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        processes(device, infoCount, infos, 1))
GF_NVML(nvmlDeviceGetComputeRunningProcesses_v3, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        processes(device, infoCount, infos, 1))

// process_name names a process of the lists above: this one, the only one
// a share lists (others' processes are the server's). The name is the
// command line's first word, as nvidia-smi shows it, cut to length.
static nvmlReturn_t process_name(unsigned int pid, char *name, unsigned int length) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!name || length == 0)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	if (pid != (unsigned int)getpid())
		return GF_NVML_ERROR_NOT_FOUND;
	char buf[4096];
	ssize_t n = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	if (n <= 0)
		return 999; // NVML_ERROR_UNKNOWN
	buf[n] = 0;     // the first word ends at its NUL
	size_t len = strnlen(buf, length - 1);
	memcpy(name, buf, len);
	name[len] = 0;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlSystemGetProcessName, (unsigned int pid, char *name, unsigned int length), process_name(pid, name, length))

// No graphics or MPS work runs through a share.
static nvmlReturn_t no_processes(nvmlDevice_t device, unsigned int *count) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (gf_nvml_index(device) < 0 || !count)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	*count = 0;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetGraphicsRunningProcesses, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos),
        ((void)infos, no_processes(device, infoCount)))
GF_NVML(nvmlDeviceGetGraphicsRunningProcesses_v2, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        ((void)infos, no_processes(device, infoCount)))
GF_NVML(nvmlDeviceGetGraphicsRunningProcesses_v3, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        ((void)infos, no_processes(device, infoCount)))
GF_NVML(nvmlDeviceGetMPSComputeRunningProcesses, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v1_t *infos),
        ((void)infos, no_processes(device, infoCount)))
GF_NVML(nvmlDeviceGetMPSComputeRunningProcesses_v2, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        ((void)infos, no_processes(device, infoCount)))
GF_NVML(nvmlDeviceGetMPSComputeRunningProcesses_v3, (nvmlDevice_t device, unsigned int *infoCount, nvmlProcessInfo_v2_t *infos),
        ((void)infos, no_processes(device, infoCount)))

// ---- events ----
//
// The device reports the event types it supports; a set registers them and
// waits. No event reaches a client through a share (the server watches its
// GPUs' health itself, and a fault ends the session), so a wait sleeps its
// timeout and answers NVML_ERROR_TIMEOUT, as a quiet GPU does.

#define GF_MAX_EVENT_SETS 64

static struct {
	int used;
	unsigned int gen;
	unsigned long long types[GF_MAX_DEVICES];
} gf_event_sets[GF_MAX_EVENT_SETS];
static int gf_event_lock;

static void ev_lock(void) {
	while (__atomic_exchange_n(&gf_event_lock, 1, __ATOMIC_ACQUIRE))
		;
}
static void ev_unlock(void) { __atomic_store_n(&gf_event_lock, 0, __ATOMIC_RELEASE); }

// A set handle is (gen << 8 | slot + 1) << 4 | 0xE: never NULL, and a freed
// set's handle does not match its slot's next use.
static nvmlEventSet_t set_handle(int slot) {
	return (nvmlEventSet_t)((((uintptr_t)gf_event_sets[slot].gen << 8 | (uintptr_t)(slot + 1)) << 4) | 0xE);
}

// set_slot finds a live set's slot; call with the lock held.
static int set_slot(nvmlEventSet_t set) {
	uintptr_t v = (uintptr_t)set;
	if ((v & 0xF) != 0xE)
		return -1;
	int slot = (int)((v >> 4) & 0xFF) - 1;
	if (slot < 0 || slot >= GF_MAX_EVENT_SETS || !gf_event_sets[slot].used ||
	    (unsigned int)(v >> 12) != gf_event_sets[slot].gen)
		return -1;
	return slot;
}

static nvmlReturn_t supported_events(nvmlDevice_t device, unsigned long long *types) {
	SNAP(device, types, 0, 0);
	*types = (s.supported & GF_NV_EVENTS) ? s.supported_events : 0;
	return GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceGetSupportedEventTypes, (nvmlDevice_t device, unsigned long long *eventTypes),
        supported_events(device, eventTypes))

static nvmlReturn_t set_create(nvmlEventSet_t *set) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	if (!set)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	ev_lock();
	for (int i = 0; i < GF_MAX_EVENT_SETS; i++) {
		if (!gf_event_sets[i].used) {
			gf_event_sets[i].used = 1;
			gf_event_sets[i].gen = (gf_event_sets[i].gen + 1) & 0xFFFFF;
			memset(gf_event_sets[i].types, 0, sizeof gf_event_sets[i].types);
			*set = set_handle(i);
			ev_unlock();
			return GF_NVML_SUCCESS;
		}
	}
	ev_unlock();
	return 20; // NVML_ERROR_MEMORY: every set is in use
}

GF_NVML(nvmlEventSetCreate, (nvmlEventSet_t *set), set_create(set))

static nvmlReturn_t register_events(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
	unsigned long long supported;
	nvmlReturn_t r = supported_events(device, &supported);
	if (r != GF_NVML_SUCCESS)
		return r;
	if (types & ~supported)
		return GF_NVML_ERROR_NOT_SUPPORTED;
	int dev = gf_nvml_index(device); // valid: supported_events checked it
	ev_lock();
	int slot = set_slot(set);
	if (slot >= 0 && dev < GF_MAX_DEVICES)
		gf_event_sets[slot].types[dev] |= types;
	ev_unlock();
	return slot < 0 ? GF_NVML_ERROR_INVALID_ARGUMENT : GF_NVML_SUCCESS;
}

GF_NVML(nvmlDeviceRegisterEvents, (nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set),
        register_events(device, eventTypes, set))

static nvmlReturn_t set_wait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	ev_lock();
	int slot = set_slot(set);
	ev_unlock();
	if (slot < 0 || !data)
		return GF_NVML_ERROR_INVALID_ARGUMENT;
	struct timespec ts = {timeoutms / 1000, (long)(timeoutms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return GF_NVML_ERROR_TIMEOUT;
}

GF_NVML(nvmlEventSetWait, (nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms),
        set_wait(set, data, timeoutms))
GF_NVML(nvmlEventSetWait_v2, (nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms),
        set_wait(set, data, timeoutms))

static nvmlReturn_t set_free(nvmlEventSet_t set) {
	if (!gf_nvml_ready())
		return GF_NVML_ERROR_UNINITIALIZED;
	ev_lock();
	int slot = set_slot(set);
	if (slot >= 0)
		gf_event_sets[slot].used = 0;
	ev_unlock();
	return slot < 0 ? GF_NVML_ERROR_INVALID_ARGUMENT : GF_NVML_SUCCESS;
}

GF_NVML(nvmlEventSetFree, (nvmlEventSet_t set), set_free(set))
