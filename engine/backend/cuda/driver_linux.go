//go:build cgo

package cuda

// This file is the package's only cgo surface for driver calls that pass
// handles and numbers; the calls that pass memory are in cmem_linux.go. The
// wrappers are thin on purpose: one cgo call each, the context made current
// inside it (cuda_shim_linux.c), the raw CUresult back as an api.Result.

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include <string.h>
#include "cuda_shim.h"

// Names arrive as Go strings and are copied to NUL-terminated C strings
// here, so the Go side needs neither C.CString nor unsafe.
static char *gf_cstr(_GoString_ s) {
	size_t n = _GoStringLen(s);
	char *c = malloc(n + 1);
	if (c) {
		memcpy(c, _GoStringPtr(s), n);
		c[n] = 0;
	}
	return c;
}

static int gf_open_s(_GoString_ path, char *err, size_t errlen) {
	char *p = gf_cstr(path);
	if (!p)
		return GF_OPEN_DLOPEN;
	int r = gf_open(p, err, errlen);
	free(p);
	return r;
}

static int gf_module_function_s(gf_handle ctx, gf_handle mod, _GoString_ name, gf_handle *fn) {
	char *c = gf_cstr(name);
	if (!c)
		return 2;
	int r = gf_module_function(ctx, mod, c, fn);
	free(c);
	return r;
}

static int gf_module_global_s(gf_handle ctx, gf_handle mod, _GoString_ name, uint64_t *ptr, size_t *size) {
	char *c = gf_cstr(name);
	if (!c)
		return 2;
	int r = gf_module_global(ctx, mod, c, ptr, size);
	free(c);
	return r;
}
*/
import "C"

import (
	"fmt"

	"github.com/gpufabric/gpufabric/engine/api"
)

// handle is a driver object (CUcontext, CUstream, CUevent, CUmodule,
// CUfunction) as the shim passes it: an opaque address, never dereferenced
// in Go.
type handle uintptr

func res(r C.int) api.Result { return api.Result(uint32(r)) }

// check turns a driver result into the error a client should see: the
// CUresult itself (so it reaches the application unchanged), with the call
// and the driver's own words as detail.
func check(r api.Result, format string, args ...any) error {
	if r == api.Success {
		return nil
	}
	detail := fmt.Sprintf(format, args...)
	if s := driverErrorString(r); s != "" {
		detail += " (" + s + ")"
	}
	return &api.Error{Result: r, Detail: detail}
}

// openOutcome mirrors gf_open's result codes.
type openOutcome int

const (
	openOK         openOutcome = C.GF_OPEN_OK
	openDlopen     openOutcome = C.GF_OPEN_DLOPEN
	openSymbol     openOutcome = C.GF_OPEN_SYMBOL
	openInterposer openOutcome = C.GF_OPEN_INTERPOSER
)

func dlOpen(path string) (openOutcome, string) {
	var msg [512]C.char
	r := C.gf_open_s(path, &msg[0], C.size_t(len(msg)))
	return openOutcome(r), C.GoString(&msg[0])
}

func loadedPath() string {
	var buf [4096]C.char
	if C.gf_loaded_path(&buf[0], C.size_t(len(buf))) == 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

func hasParamInfo() bool { return C.gf_has_param_info() != 0 }

// driverErrorString is the driver's own description of r, or "".
func driverErrorString(r api.Result) string {
	s := C.gf_error_string(C.int(int32(r)))
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

func cuInit() api.Result { return res(C.gf_init()) }

func driverVersion() (int32, api.Result) {
	var v C.int
	r := C.gf_driver_version(&v)
	return int32(v), res(r)
}

func deviceCount() (int, api.Result) {
	var n C.int
	r := C.gf_device_count(&n)
	return int(n), res(r)
}

func deviceGet(ordinal int) (int32, api.Result) {
	var d C.int
	r := C.gf_device_get(C.int(ordinal), &d)
	return int32(d), res(r)
}

func deviceName(dev int32) (string, api.Result) {
	var buf [256]C.char
	r := C.gf_device_name(C.int(dev), &buf[0], C.int(len(buf)))
	if r != 0 {
		return "", res(r)
	}
	return C.GoString(&buf[0]), api.Success
}

func deviceUUID(dev int32) ([16]byte, api.Result) {
	var raw [16]C.uchar
	var u [16]byte
	r := C.gf_device_uuid(C.int(dev), &raw[0])
	for i := range raw {
		u[i] = byte(raw[i])
	}
	return u, res(r)
}

func deviceTotalMem(dev int32) (uint64, api.Result) {
	var n C.size_t
	r := C.gf_device_total_mem(C.int(dev), &n)
	return uint64(n), res(r)
}

func devicePCIBusID(dev int32) (string, api.Result) {
	var buf [64]C.char
	r := C.gf_device_pci_bus_id(C.int(dev), &buf[0], C.int(len(buf)))
	if r != 0 {
		return "", res(r)
	}
	return C.GoString(&buf[0]), api.Success
}

func deviceAttribute(dev int32, attr int) (int32, api.Result) {
	var v C.int
	r := C.gf_device_attribute(C.int(dev), C.int(attr), &v)
	return int32(v), res(r)
}

func ctxRetain(dev int32) (handle, api.Result) {
	var h C.gf_handle
	r := C.gf_ctx_retain(C.int(dev), &h)
	return handle(h), res(r)
}

func ctxRelease(dev int32) api.Result { return res(C.gf_ctx_release(C.int(dev))) }

func memInfo(ctx handle) (free, total uint64, r api.Result) {
	var f, t C.size_t
	rc := C.gf_mem_info(C.gf_handle(ctx), &f, &t)
	return uint64(f), uint64(t), res(rc)
}

func memAlloc(ctx handle, n uint64) (uint64, api.Result) {
	var p C.uint64_t
	r := C.gf_mem_alloc(C.gf_handle(ctx), C.size_t(n), &p)
	return uint64(p), res(r)
}

func memFree(ctx handle, p uint64) api.Result {
	return res(C.gf_mem_free(C.gf_handle(ctx), C.uint64_t(p)))
}

func streamCreate(ctx handle, flags uint32, priority int32) (handle, api.Result) {
	var h C.gf_handle
	r := C.gf_stream_create(C.gf_handle(ctx), C.uint(flags), C.int(priority), &h)
	return handle(h), res(r)
}

func streamDestroy(ctx, s handle) api.Result {
	return res(C.gf_stream_destroy(C.gf_handle(ctx), C.gf_handle(s)))
}

func streamQuery(ctx, s handle) api.Result {
	return res(C.gf_stream_query(C.gf_handle(ctx), C.gf_handle(s)))
}

func streamWaitEvent(ctx, s, ev handle) api.Result {
	return res(C.gf_stream_wait_event(C.gf_handle(ctx), C.gf_handle(s), C.gf_handle(ev)))
}

func eventCreate(ctx handle, flags uint32) (handle, api.Result) {
	var h C.gf_handle
	r := C.gf_event_create(C.gf_handle(ctx), C.uint(flags), &h)
	return handle(h), res(r)
}

func eventDestroy(ctx, ev handle) api.Result {
	return res(C.gf_event_destroy(C.gf_handle(ctx), C.gf_handle(ev)))
}

func eventRecord(ctx, ev, s handle) api.Result {
	return res(C.gf_event_record(C.gf_handle(ctx), C.gf_handle(ev), C.gf_handle(s)))
}

func eventQuery(ctx, ev handle) api.Result {
	return res(C.gf_event_query(C.gf_handle(ctx), C.gf_handle(ev)))
}

func eventSync(ctx, ev handle) api.Result {
	return res(C.gf_event_sync(C.gf_handle(ctx), C.gf_handle(ev)))
}

func eventElapsed(ctx, start, end handle) (float32, api.Result) {
	var ms C.float
	r := C.gf_event_elapsed(C.gf_handle(ctx), C.gf_handle(start), C.gf_handle(end), &ms)
	return float32(ms), res(r)
}

func moduleUnload(ctx, m handle) api.Result {
	return res(C.gf_module_unload(C.gf_handle(ctx), C.gf_handle(m)))
}

func moduleFunction(ctx, m handle, name string) (handle, api.Result) {
	var h C.gf_handle
	r := C.gf_module_function_s(C.gf_handle(ctx), C.gf_handle(m), name, &h)
	return handle(h), res(r)
}

func moduleGlobal(ctx, m handle, name string) (uint64, uint64, api.Result) {
	var p C.uint64_t
	var n C.size_t
	r := C.gf_module_global_s(C.gf_handle(ctx), C.gf_handle(m), name, &p, &n)
	return uint64(p), uint64(n), res(r)
}

// funcParamInfo is cuFuncGetParamInfo; missing when the driver predates it.
func funcParamInfo(ctx, fn handle, index int) (offset, size uint64, r api.Result) {
	var o, s C.size_t
	rc := C.gf_func_param_info(C.gf_handle(ctx), C.gf_handle(fn), C.size_t(index), &o, &s)
	if rc == C.GF_MISSING {
		return 0, 0, missing
	}
	return uint64(o), uint64(s), res(rc)
}

func memcpyDtoD(ctx handle, dst, src, n uint64, s handle) api.Result {
	return res(C.gf_memcpy_dtod(C.gf_handle(ctx), C.uint64_t(dst), C.uint64_t(src), C.size_t(n), C.gf_handle(s)))
}

func memset(ctx handle, dst uint64, value uint32, elemSize int, count uint64, s handle) api.Result {
	return res(C.gf_memset(C.gf_handle(ctx), C.uint64_t(dst), C.uint(value), C.int(elemSize), C.size_t(count), C.gf_handle(s)))
}

// streamWriteValue is cuStreamWriteValue32/64; missing when the driver
// lacks it.
func streamWriteValue(ctx, s handle, ptr, value uint64, size int) api.Result {
	rc := C.gf_stream_write_value(C.gf_handle(ctx), C.gf_handle(s), C.uint64_t(ptr), C.uint64_t(value), C.int(size))
	if rc == C.GF_MISSING {
		return missing
	}
	return res(rc)
}
