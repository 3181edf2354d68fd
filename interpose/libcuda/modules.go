//go:build linux

package main

/*
#include <stdlib.h>
#include "gf.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

type module struct {
	m      *interpose.Module
	dev    int
	handle uintptr
	// ctx is the context the module was loaded in, which owns it: its
	// functions launch only while it is current. 0 for a library's
	// module, which is context-independent.
	ctx uintptr

	mu      sync.Mutex
	funcs   map[string]*function
	globals []uint64 // registered in devMem; taken out at unload
}

type function struct {
	f      *interpose.Function
	mod    *module
	name   string
	cname  *C.char // for cuFuncGetName; lives as long as the process
	params []api.Param
	handle uintptr

	mu    sync.Mutex
	attrs map[int]int32 // values set with cuFuncSetAttribute
	// devAttrs are the attributes the device reports (see deviceAttrs),
	// fetched once.
	devAttrs []int32
	fetched  bool
}

// library is a cuLibrary*: an image loaded into every device it is used on,
// lazily, as context-independent loading asks.
type library struct {
	image  []byte
	handle uintptr

	mu      sync.Mutex
	mods    map[int]*module
	kernels map[string]*kernel
}

type kernel struct {
	lib    *library
	name   string
	cname  *C.char
	handle uintptr
	params []api.Param
}

// ---- JIT options ----

// CUjit_option values that carry results back.
const (
	jitWallTime          = 2
	jitInfoLogBuffer     = 3
	jitInfoLogBufferSize = 4
	jitErrorLogBuffer    = 5
	jitErrorLogBuffSize  = 6
)

// jitResults fills the options a caller passes to receive the JIT's logs:
// the server compiled, so the info log is empty and the error log holds the
// server's explanation of a failure. Sizes are stored in the option value
// slots themselves, as the driver does.
func jitResults(n C.uint, opts *C.int, vals *unsafe.Pointer, failure error) {
	if n == 0 || opts == nil || vals == nil {
		return
	}
	keys := unsafe.Slice(opts, n)
	vs := unsafe.Slice(vals, n)
	find := func(opt int) int {
		for i, o := range keys {
			if int(o) == opt {
				return i
			}
		}
		return -1
	}
	fill := func(bufOpt, sizeOpt int, text string) {
		b, s := find(bufOpt), find(sizeOpt)
		if b < 0 || s < 0 || vs[b] == nil {
			return
		}
		size := int(uintptr(vs[s]))
		if size <= 0 {
			return
		}
		dst := unsafe.Slice((*byte)(vs[b]), size)
		k := copy(dst[:size-1], text)
		dst[k] = 0
		*(*uintptr)(unsafe.Pointer(&vs[s])) = uintptr(k) // the slot holds a number, not a pointer
	}
	if i := find(jitWallTime); i >= 0 {
		*(*float32)(unsafe.Pointer(&vs[i])) = 0
	}
	fill(jitInfoLogBuffer, jitInfoLogBufferSize, "")
	msg := ""
	if failure != nil {
		msg = "gpufabric server: " + failure.Error()
	}
	fill(jitErrorLogBuffer, jitErrorLogBuffSize, msg)
}

// ---- modules ----

func loadModule(dev C.int, image []byte) (*module, error) {
	d, r := device(dev)
	if r != api.Success {
		return nil, r
	}
	m, err := d.LoadModule(image)
	if err != nil {
		return nil, err
	}
	mod := &module{m: m, dev: int(dev), funcs: map[string]*function{}}
	mod.handle = objects.add(kindModule, mod)
	return mod, nil
}

func (mod *module) unload() error {
	mod.mu.Lock()
	for _, f := range mod.funcs {
		objects.remove(f.handle, kindFunction)
	}
	for _, g := range mod.globals {
		devMem.remove(g, nil)
	}
	mod.funcs, mod.globals = map[string]*function{}, nil
	mod.mu.Unlock()
	objects.remove(mod.handle, kindModule)
	return mod.m.Unload()
}

// function returns the module's kernel name, one handle per name.
func (mod *module) function(name string) (*function, error) {
	mod.mu.Lock()
	defer mod.mu.Unlock()
	if f := mod.funcs[name]; f != nil {
		return f, nil
	}
	f, err := mod.m.Function(name)
	if err != nil {
		return nil, err
	}
	fn := &function{f: f, mod: mod, name: name, cname: C.CString(name), params: f.Params()}
	fn.handle = objects.add(kindFunction, fn)
	mod.funcs[name] = fn
	return fn, nil
}

func (mod *module) global(name string) (uint64, uint64, error) {
	p, size, err := mod.m.Global(name)
	if err != nil {
		return 0, 0, err
	}
	mod.mu.Lock()
	defer mod.mu.Unlock()
	if devMem.find(uint64(p)) == nil {
		devMem.add(&region{base: uint64(p), size: size, dev: mod.dev, global: true})
		mod.globals = append(mod.globals, uint64(p))
	}
	return uint64(p), size, nil
}

//export gfgo_moduleLoad
func gfgo_moduleLoad(ctx C.uintptr_t, dev C.int, out *C.uintptr_t, image unsafe.Pointer, nopt C.uint, opts *C.int, vals *unsafe.Pointer) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	img, _, err := imageAt(image)
	if err != nil {
		jitResults(nopt, opts, vals, err)
		return res(api.ErrInvalidImage)
	}
	mod, err := loadModule(dev, img)
	jitResults(nopt, opts, vals, err)
	if err != nil {
		return ret(err)
	}
	mod.ctx = uintptr(ctx)
	*out = C.uintptr_t(mod.handle)
	return 0
}

// readImage reads a module or library file, NUL-terminating PTX text.
func readImage(path string) ([]byte, api.Result) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, api.ErrFileNotFound
	}
	if len(b) >= 4 && classify([4]byte(b[:4])) == imagePTX && !bytes.HasSuffix(b, []byte{0}) {
		b = append(b, 0)
	}
	return b, api.Success
}

//export gfgo_moduleLoadFile
func gfgo_moduleLoadFile(dev C.int, out *C.uintptr_t, path *C.char) C.CUresult {
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if out == nil || path == nil {
		return res(api.ErrInvalidValue)
	}
	img, r := readImage(C.GoString(path))
	if r != api.Success {
		return res(r)
	}
	mod, err := loadModule(dev, img)
	if err != nil {
		return ret(err)
	}
	mod.ctx = uintptr(C.gf_cur_ctx()) // this thread's, as the C entry's
	*out = C.uintptr_t(mod.handle)
	return 0
}

//export gfgo_moduleUnload
func gfgo_moduleUnload(h C.uintptr_t) C.CUresult {
	mod, r := lookup[*module](uintptr(h), kindModule)
	if r != api.Success || mod.m == nil {
		return res(api.ErrInvalidHandle)
	}
	return ret(mod.unload())
}

//export gfgo_moduleGetFunction
func gfgo_moduleGetFunction(out *C.uintptr_t, h C.uintptr_t, name *C.char) C.CUresult {
	if out == nil || name == nil {
		return res(api.ErrInvalidValue)
	}
	mod, r := lookup[*module](uintptr(h), kindModule)
	if r != api.Success {
		return res(r)
	}
	fn, err := mod.function(C.GoString(name))
	if err != nil {
		return ret(err)
	}
	*out = C.uintptr_t(fn.handle)
	return 0
}

//export gfgo_moduleGetGlobal
func gfgo_moduleGetGlobal(dptr *C.CUdeviceptr, size *C.size_t, h C.uintptr_t, name *C.char) C.CUresult {
	if name == nil {
		return res(api.ErrInvalidValue)
	}
	mod, r := lookup[*module](uintptr(h), kindModule)
	if r != api.Success {
		return res(r)
	}
	p, n, err := mod.global(C.GoString(name))
	if err != nil {
		return ret(err)
	}
	if dptr != nil {
		*dptr = C.CUdeviceptr(p)
	}
	if size != nil {
		*size = C.size_t(n)
	}
	return 0
}

// ---- functions ----

// CUfunction_attribute values with answers of their own.
const (
	funcAttrMaxThreadsPerBlock    = 0
	funcAttrNumRegs               = 4
	funcAttrPTXVersion            = 5
	funcAttrBinaryVersion         = 6
	funcAttrMaxDynamicSharedBytes = 8
	funcAttrPreferredCarveout     = 9
	funcAttrLast                  = 15
)

// attribute answers cuFuncGetAttribute: a kernel's resource use as its
// device reports it (the cuda backend), else the device's limits and
// conservative figures: no static shared, constant or local memory, 32
// registers, the device's compute capability as binary and PTX version.
func (fn *function) attribute(attr int) (int32, api.Result) {
	if attr < 0 || attr > funcAttrLast {
		return 0, api.ErrInvalidValue
	}
	fn.mu.Lock()
	v, set := fn.attrs[attr]
	fn.mu.Unlock()
	if set {
		return v, api.Success
	}
	d, r := device(C.int(fn.mod.dev))
	if r != api.Success {
		return 0, r
	}
	a := func(i int) int32 {
		v, _ := d.Attribute(i)
		return v
	}
	if dev := fn.deviceAttrs(); attr < len(dev) && dev[attr] >= 0 {
		switch attr {
		case funcAttrMaxThreadsPerBlock, funcAttrSharedSizeBytes, funcAttrConstSizeBytes, funcAttrLocalSizeBytes,
			funcAttrNumRegs, funcAttrPTXVersion, funcAttrBinaryVersion:
			return dev[attr], api.Success
		}
	}
	switch attr {
	case funcAttrMaxThreadsPerBlock:
		return a(api.AttrMaxThreadsPerBlock), api.Success
	case funcAttrNumRegs:
		return 32, api.Success
	case funcAttrPTXVersion, funcAttrBinaryVersion:
		return a(api.AttrComputeCapabilityMajor)*10 + a(api.AttrComputeCapabilityMinor), api.Success
	case funcAttrMaxDynamicSharedBytes:
		return a(api.AttrMaxSharedMemoryPerBlock), api.Success
	case funcAttrPreferredCarveout:
		return -1, api.Success
	}
	return 0, api.Success
}

func (fn *function) setAttribute(attr int, v int32) api.Result {
	switch attr {
	case funcAttrMaxDynamicSharedBytes, funcAttrPreferredCarveout, 10, 11, 12, 13, 14, 15:
		fn.mu.Lock()
		if fn.attrs == nil {
			fn.attrs = map[int]int32{}
		}
		fn.attrs[attr] = v
		fn.mu.Unlock()
		return api.Success
	}
	return api.ErrInvalidValue
}

func paramInfo(params []api.Param, i C.size_t, off, size *C.size_t) C.CUresult {
	if off == nil && size == nil || int(i) >= len(params) {
		return res(api.ErrInvalidValue)
	}
	if off != nil {
		*off = C.size_t(params[i].Offset)
	}
	if size != nil {
		*size = C.size_t(params[i].Size)
	}
	return 0
}

//export gfgo_funcInfo
func gfgo_funcInfo(h C.uintptr_t, what C.int, arg C.int, out unsafe.Pointer, out2 unsafe.Pointer) C.CUresult {
	fn, r := lookup[*function](uintptr(h), kindFunction)
	if r != api.Success {
		return res(r)
	}
	switch what {
	case 0: // cuFuncGetModule
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		*(*C.uintptr_t)(out) = C.uintptr_t(fn.mod.handle)
	case 1: // cuFuncGetName
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		*(**C.char)(out) = fn.cname
	case 2: // cuFuncGetParamInfo
		return paramInfo(fn.params, C.size_t(arg), (*C.size_t)(out), (*C.size_t)(out2))
	case 3: // cuFuncGetAttribute
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		v, r := fn.attribute(int(arg))
		if r != api.Success {
			return res(r)
		}
		*(*C.int)(out) = C.int(v)
	case 4: // cuFuncSetAttribute
		return res(fn.setAttribute(int(arg), int32(uintptr(out))))
	case 5: // cuFuncIsLoaded
		if out != nil {
			*(*C.int)(out) = 1 // CU_FUNCTION_LOADING_STATE_LOADED
		}
	default:
		return res(api.ErrInvalidValue)
	}
	return 0
}

// ---- libraries and kernels ----

// moduleOn returns the library's module on dev, loading it there first.
func (lib *library) moduleOn(dev C.int) (*module, error) {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.mods == nil {
		return nil, api.Errorf(api.ErrInvalidHandle, "library unloaded")
	}
	if m := lib.mods[int(dev)]; m != nil {
		return m, nil
	}
	m, err := loadModule(dev, lib.image)
	if err != nil {
		return nil, err
	}
	lib.mods[int(dev)] = m
	return m, nil
}

// anyDev is the device to resolve a library's names on when the caller
// has no current context: one it is loaded on already, else device 0.
func (lib *library) anyDev(dev C.int) C.int {
	if dev >= 0 {
		return dev
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	for d := range lib.mods {
		return C.int(d)
	}
	return 0
}

//export gfgo_libraryLoad
func gfgo_libraryLoad(dev C.int, out *C.uintptr_t, code unsafe.Pointer, path *C.char) C.CUresult {
	if out == nil || (code == nil && path == nil) {
		return res(api.ErrInvalidValue)
	}
	if live.Load() == nil {
		return res(api.ErrNotInitialized)
	}
	var img []byte
	if path != nil {
		var r api.Result
		if img, r = readImage(C.GoString(path)); r != api.Success {
			return res(r)
		}
	} else {
		b, _, err := imageAt(code)
		if err != nil {
			return res(api.ErrInvalidImage)
		}
		img = bytes.Clone(b) // the library outlives the caller's buffer
	}
	lib := &library{image: img, mods: map[int]*module{}, kernels: map[string]*kernel{}}
	// Load where the caller works now, to report a bad image at once.
	if _, err := lib.moduleOn(lib.anyDev(dev)); err != nil {
		return ret(err)
	}
	lib.handle = objects.add(kindLibrary, lib)
	*out = C.uintptr_t(lib.handle)
	return 0
}

//export gfgo_libraryUnload
func gfgo_libraryUnload(h C.uintptr_t) C.CUresult {
	lib, ok := objects.remove(uintptr(h), kindLibrary).(*library)
	if !ok {
		return res(api.ErrInvalidHandle)
	}
	lib.mu.Lock()
	mods, kernels := lib.mods, lib.kernels
	lib.mods, lib.kernels = nil, nil
	lib.mu.Unlock()
	for _, k := range kernels {
		objects.remove(k.handle, kindKernel)
	}
	var first error
	for _, m := range mods {
		if err := m.unload(); err != nil && first == nil {
			first = err
		}
	}
	return ret(first)
}

//export gfgo_libraryGetKernel
func gfgo_libraryGetKernel(out *C.uintptr_t, h C.uintptr_t, name *C.char, dev C.int) C.CUresult {
	if out == nil || name == nil {
		return res(api.ErrInvalidValue)
	}
	lib, r := lookup[*library](uintptr(h), kindLibrary)
	if r != api.Success {
		return res(r)
	}
	n := C.GoString(name)
	lib.mu.Lock()
	k := lib.kernels[n]
	lib.mu.Unlock()
	if k == nil {
		m, err := lib.moduleOn(lib.anyDev(dev))
		if err != nil {
			return ret(err)
		}
		fn, err := m.function(n)
		if err != nil {
			return ret(err)
		}
		lib.mu.Lock()
		if k = lib.kernels[n]; k == nil {
			k = &kernel{lib: lib, name: n, cname: fn.cname, params: fn.params}
			k.handle = objects.add(kindKernel, k)
			lib.kernels[n] = k
		}
		lib.mu.Unlock()
	}
	*out = C.uintptr_t(k.handle)
	return 0
}

// function returns the kernel's function on dev.
func (k *kernel) function(dev C.int) (*function, error) {
	m, err := k.lib.moduleOn(dev)
	if err != nil {
		return nil, err
	}
	return m.function(k.name)
}

//export gfgo_libraryGetModule
func gfgo_libraryGetModule(out *C.uintptr_t, h C.uintptr_t, dev C.int) C.CUresult {
	if out == nil {
		return res(api.ErrInvalidValue)
	}
	m, r := libraryModule(h, dev)
	if r != 0 {
		return r
	}
	*out = C.uintptr_t(m.handle)
	return 0
}

// libraryModule is library h's module on device dev, loaded there on first
// use.
func libraryModule(h C.uintptr_t, dev C.int) (*module, C.CUresult) {
	lib, r := lookup[*library](uintptr(h), kindLibrary)
	if r != api.Success {
		return nil, res(r)
	}
	if _, r := device(dev); r != api.Success {
		return nil, res(r)
	}
	m, err := lib.moduleOn(dev)
	if err != nil {
		return nil, ret(err)
	}
	return m, 0
}

//export gfgo_libraryGetGlobal
func gfgo_libraryGetGlobal(dptr *C.CUdeviceptr, size *C.size_t, h C.uintptr_t, name *C.char, dev C.int) C.CUresult {
	if name == nil {
		return res(api.ErrInvalidValue)
	}
	m, r := libraryModule(h, dev)
	if r != 0 {
		return r
	}
	return gfgo_moduleGetGlobal(dptr, size, C.uintptr_t(m.handle), name)
}

//export gfgo_kernelInfo
func gfgo_kernelInfo(h C.uintptr_t, what C.int, arg C.int, out unsafe.Pointer, out2 unsafe.Pointer, dev C.int) C.CUresult {
	k, r := lookup[*kernel](uintptr(h), kindKernel)
	if r != api.Success {
		return res(r)
	}
	switch what {
	case 0: // cuKernelGetFunction
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		if _, r := device(dev); r != api.Success {
			return res(r)
		}
		fn, err := k.function(dev)
		if err != nil {
			return ret(err)
		}
		*(*C.uintptr_t)(out) = C.uintptr_t(fn.handle)
	case 1: // cuKernelGetName
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		*(**C.char)(out) = k.cname
	case 2: // cuKernelGetParamInfo
		return paramInfo(k.params, C.size_t(arg), (*C.size_t)(out), (*C.size_t)(out2))
	case 3: // cuKernelGetLibrary
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		*(*C.uintptr_t)(out) = C.uintptr_t(k.lib.handle)
	case 4, 5: // cuKernelGetAttribute (out = int*), cuKernelSetAttribute (out = value); arg = attribute, dev = device
		fn, err := k.function(k.lib.anyDev(dev))
		if err != nil {
			return ret(err)
		}
		if what == 5 {
			return res(fn.setAttribute(int(arg), int32(uintptr(out))))
		}
		if out == nil {
			return res(api.ErrInvalidValue)
		}
		v, r := fn.attribute(int(arg))
		if r != api.Success {
			return res(r)
		}
		*(*C.int)(out) = C.int(v)
	default:
		return res(api.ErrInvalidValue)
	}
	return 0
}

// ---- launches ----

var paramBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

const (
	launchParamEnd           = 0 // CU_LAUNCH_PARAM_END
	launchParamBufferPointer = 1 // CU_LAUNCH_PARAM_BUFFER_POINTER
	launchParamBufferSize    = 2 // CU_LAUNCH_PARAM_BUFFER_SIZE
)

var errParams = errors.New("kernel parameters")

// packParams lays the arguments out as the kernel's parameter layout says:
// kernelParams[i] points at argument i, of params[i].Size bytes.
func packParams(buf []byte, layout []api.Param, kernelParams unsafe.Pointer) []byte {
	var size uint32
	if n := len(layout); n > 0 {
		size = layout[n-1].Offset + layout[n-1].Size
	}
	buf = append(buf[:0], make([]byte, size)...)
	args := unsafe.Slice((*unsafe.Pointer)(kernelParams), len(layout))
	for i, p := range layout {
		copy(buf[p.Offset:p.Offset+p.Size], unsafe.Slice((*byte)(args[i]), p.Size))
	}
	return buf
}

// extraParams reads the `extra` form: {BUFFER_POINTER, buf, BUFFER_SIZE,
// &size, END}.
func extraParams(extra unsafe.Pointer) ([]byte, error) {
	var ptr unsafe.Pointer
	var size uint64
	haveSize := false
	for i := 0; i < 64; i += 2 {
		key := uintptr(*(*unsafe.Pointer)(unsafe.Add(extra, i*8)))
		if key == launchParamEnd {
			if ptr == nil || !haveSize {
				break
			}
			return unsafe.Slice((*byte)(ptr), size), nil
		}
		val := *(*unsafe.Pointer)(unsafe.Add(extra, (i+1)*8))
		switch key {
		case launchParamBufferPointer:
			ptr = val
		case launchParamBufferSize:
			if val == nil {
				return nil, errParams
			}
			size, haveSize = uint64(*(*C.size_t)(val)), true
		default:
			return nil, errParams
		}
	}
	return nil, errParams
}

//export gfgo_launch
func gfgo_launch(fh C.uintptr_t, gx, gy, gz, bx, by, bz, shmem C.uint, sh C.uintptr_t, dev C.int, params unsafe.Pointer, extra unsafe.Pointer) C.CUresult {
	st, sdev, r := streamFor(sh, dev)
	if r != api.Success {
		return res(r)
	}
	var fn *function
	switch kind(uintptr(fh) & 0xF) {
	case kindFunction:
		if fn, r = lookup[*function](uintptr(fh), kindFunction); r != api.Success {
			return res(r)
		}
		if fn.mod.dev != sdev {
			return res(api.ErrInvalidHandle)
		}
		// A module belongs to the context it was loaded in: launched
		// while another is current, its function is not a valid handle
		// there, as the driver says. (gf_cur_ctx reads the calling C
		// thread's current context: a cgo callback runs on that thread.)
		if fn.mod.ctx != 0 {
			switch cur := uintptr(C.gf_cur_ctx()); {
			case cur == 0:
				return res(api.ErrInvalidContext)
			case cur != fn.mod.ctx:
				return res(api.ErrInvalidHandle)
			}
		}
	case kindKernel:
		k, r := lookup[*kernel](uintptr(fh), kindKernel)
		if r != api.Success {
			return res(r)
		}
		var err error
		if fn, err = k.function(C.int(sdev)); err != nil {
			return ret(err)
		}
	default:
		return res(api.ErrInvalidHandle)
	}
	if gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 {
		return res(api.ErrInvalidValue)
	}
	bp := paramBufs.Get().(*[]byte)
	defer paramBufs.Put(bp)
	var packed []byte
	switch {
	case params != nil:
		packed = packParams(*bp, fn.params, params)
		*bp = packed
	case extra != nil:
		var err error
		if packed, err = extraParams(extra); err != nil {
			return res(api.ErrInvalidValue)
		}
	case len(fn.params) > 0:
		return res(api.ErrInvalidValue)
	}
	return ret(fn.f.LaunchPacked(st, interpose.Dim3{uint32(gx), uint32(gy), uint32(gz)},
		interpose.Dim3{uint32(bx), uint32(by), uint32(bz)}, uint32(shmem), packed))
}
