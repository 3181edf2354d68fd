//go:build cgo

package cuda

import (
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// module is a CUmodule. Functions are looked up once per name and kept, so
// the parameter layout is asked of the driver once per kernel.
type module struct {
	d *Device
	h handle

	mu       sync.Mutex
	fns      map[string]*function
	unloaded bool
}

var _ backend.Module = (*module)(nil)

func (m *module) isUnloaded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unloaded
}

func (m *module) Function(name string) (backend.Function, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unloaded {
		return nil, api.Errorf(api.ErrInvalidHandle, "module is unloaded")
	}
	if f, ok := m.fns[name]; ok {
		return f, nil
	}
	h, r := moduleFunction(m.d.ctx, m.h, name)
	if r == api.ErrNotFound {
		return nil, api.Errorf(api.ErrNotFound, "the module has no kernel %q", name)
	}
	if err := check(r, "cuModuleGetFunction(%q)", name); err != nil {
		return nil, err
	}
	f := &function{mod: m, h: h, name: name}
	f.params = paramLayout(func(i int) (uint64, uint64, api.Result) {
		return funcParamInfo(m.d.ctx, h, i)
	})
	if m.fns == nil {
		m.fns = make(map[string]*function)
	}
	m.fns[name] = f
	return f, nil
}

func (m *module) Global(name string) (backend.DevicePtr, uint64, error) {
	if m.isUnloaded() {
		return 0, 0, api.Errorf(api.ErrInvalidHandle, "module is unloaded")
	}
	p, n, r := moduleGlobal(m.d.ctx, m.h, name)
	if r == api.ErrNotFound {
		return 0, 0, api.Errorf(api.ErrNotFound, "the module has no global %q", name)
	}
	return p, n, check(r, "cuModuleGetGlobal(%q)", name)
}

func (m *module) Unload() error {
	m.mu.Lock()
	if m.unloaded {
		m.mu.Unlock()
		return api.Errorf(api.ErrInvalidHandle, "module is unloaded")
	}
	m.unloaded = true
	m.mu.Unlock()
	return check(moduleUnload(m.d.ctx, m.h), "cuModuleUnload")
}

// function is a CUfunction of a loaded module.
type function struct {
	mod    *module
	h      handle
	name   string
	params []api.Param // nil: the driver cannot say (before 12.4)
}

var _ backend.Function = (*function)(nil)

func (f *function) Name() string { return f.name }

// Params is the layout cuFuncGetParamInfo gave, or nil where the driver
// predates it (12.4): the client must then know the layout itself, as it
// does for PTX it compiled.
func (f *function) Params() []api.Param { return f.params }
