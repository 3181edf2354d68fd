// The C side of the cuda backend: libcuda.so.1 opened with dlopen, and one
// small wrapper per driver call. Written for this project from NVIDIA's
// public driver API reference; there is no cuda.h on the build host.
//
// Handles (CUcontext, CUstream, CUevent, CUmodule, CUfunction) cross to Go
// as uintptr_t, so the Go side never holds a C pointer type; host memory
// crosses as void*, only in cmem_linux.go. Every call that needs a context
// takes it first and makes it current on the calling thread, so any thread
// can call any wrapper. Results are CUresult values (0 = CUDA_SUCCESS).

#ifndef GPUFABRIC_CUDA_SHIM_H
#define GPUFABRIC_CUDA_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef uintptr_t gf_handle;

// gf_open outcomes.
enum {
	GF_OPEN_OK = 0,
	GF_OPEN_DLOPEN = 1,     // dlopen failed; err holds dlerror()
	GF_OPEN_SYMBOL = 2,     // a required symbol is missing; err names it
	GF_OPEN_INTERPOSER = 3, // the library is gpufabric's own interposer
};

// GF_MISSING is returned by wrappers whose optional driver symbol is absent.
#define GF_MISSING (-1)

int gf_open(const char *path, char *err, size_t errlen);
int gf_loaded_path(char *buf, size_t len);
int gf_has_param_info(void);
const char *gf_error_string(int result);

int gf_init(void);
int gf_driver_version(int *version);
int gf_device_count(int *count);
int gf_device_get(int ordinal, int *dev);
int gf_device_name(int dev, char *buf, int len);
int gf_device_uuid(int dev, unsigned char *uuid16);
int gf_device_total_mem(int dev, size_t *bytes);
int gf_device_pci_bus_id(int dev, char *buf, int len);
int gf_device_attribute(int dev, int attr, int *value);

int gf_ctx_retain(int dev, gf_handle *ctx);
int gf_ctx_release(int dev);

int gf_mem_info(gf_handle ctx, size_t *free_bytes, size_t *total_bytes);
int gf_mem_alloc(gf_handle ctx, size_t n, uint64_t *ptr);
int gf_mem_free(gf_handle ctx, uint64_t ptr);
int gf_host_alloc(gf_handle ctx, size_t n, void **p);
int gf_host_free(gf_handle ctx, void *p);
int gf_host_register(gf_handle ctx, void *p, size_t n);
int gf_host_unregister(gf_handle ctx, void *p);

int gf_stream_create(gf_handle ctx, unsigned flags, int priority, gf_handle *stream);
int gf_stream_destroy(gf_handle ctx, gf_handle stream);
int gf_stream_query(gf_handle ctx, gf_handle stream);
int gf_stream_wait_event(gf_handle ctx, gf_handle stream, gf_handle event);

int gf_event_create(gf_handle ctx, unsigned flags, gf_handle *event);
int gf_event_destroy(gf_handle ctx, gf_handle event);
int gf_event_record(gf_handle ctx, gf_handle event, gf_handle stream);
int gf_event_query(gf_handle ctx, gf_handle event);
int gf_event_sync(gf_handle ctx, gf_handle event);
int gf_event_elapsed(gf_handle ctx, gf_handle start, gf_handle end, float *ms);

int gf_module_load(gf_handle ctx, const void *image, size_t n, gf_handle *module);
int gf_module_unload(gf_handle ctx, gf_handle module);
int gf_module_function(gf_handle ctx, gf_handle module, const char *name, gf_handle *fn);
int gf_module_global(gf_handle ctx, gf_handle module, const char *name, uint64_t *ptr, size_t *size);
int gf_func_param_info(gf_handle ctx, gf_handle fn, size_t index, size_t *offset, size_t *size);

int gf_launch(gf_handle ctx, gf_handle fn, unsigned gx, unsigned gy, unsigned gz,
	unsigned bx, unsigned by, unsigned bz, unsigned shared_mem, gf_handle stream,
	const void *params, size_t n);

int gf_memcpy_htod(gf_handle ctx, uint64_t dst, const void *src, size_t n, gf_handle stream);
int gf_memcpy_dtoh(gf_handle ctx, void *dst, uint64_t src, size_t n, gf_handle stream);
int gf_memcpy_dtod(gf_handle ctx, uint64_t dst, uint64_t src, size_t n, gf_handle stream);
int gf_memset(gf_handle ctx, uint64_t dst, unsigned value, int elem_size, size_t count, gf_handle stream);
int gf_stream_write_value(gf_handle ctx, gf_handle stream, uint64_t ptr, uint64_t value, int size);
int gf_func_attributes(gf_handle ctx, gf_handle fn, int n, int *values);
int gf_link(gf_handle ctx, int n, const int *types, const void *data, const size_t *sizes, const char *names,
	void **out, size_t *out_size, char *log, size_t loglen);

// Virtual memory management; GF_MISSING where the driver lacks it.
int gf_has_vmm(void);
int gf_vmm_reserve(gf_handle ctx, size_t size, size_t align, uint64_t *ptr);
int gf_vmm_free(gf_handle ctx, uint64_t ptr, size_t size);
int gf_vmm_create(gf_handle ctx, int dev, size_t size, uint64_t *handle);
int gf_vmm_release(gf_handle ctx, uint64_t handle);
int gf_vmm_map(gf_handle ctx, int dev, uint64_t ptr, size_t size, size_t offset, uint64_t handle);
int gf_vmm_unmap(gf_handle ctx, uint64_t ptr, size_t size);

// cuMemcpyPeerAsync; GF_MISSING where the driver lacks it.
int gf_memcpy_peer(gf_handle ctx, uint64_t dst, gf_handle dst_ctx, uint64_t src, gf_handle src_ctx, size_t n,
                   gf_handle stream);

// cuMemcpy2DAsync between device operands and cuMemsetD2D*Async;
// GF_MISSING where the driver lacks them.
int gf_memcpy2d_dtod(gf_handle ctx, uint64_t dst, size_t dst_pitch, uint64_t src, size_t src_pitch, size_t width,
                     size_t height, gf_handle stream);
int gf_memset2d(gf_handle ctx, uint64_t dst, size_t pitch, unsigned value, int elem_size, size_t width, size_t height,
                gf_handle stream);

#endif
