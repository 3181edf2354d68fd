package host

import (
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

type module struct {
	dev     *Device
	entries map[string]ptxEntry
	globals map[string]global
	block   backend.DevicePtr // the allocation holding the globals; 0 if none
	gone    atomic.Bool
}

type global struct{ ptr, size uint64 }

type function struct {
	mod    *module
	name   string
	params []api.Param
	kernel *kernel
}

var (
	_ backend.Module   = (*module)(nil)
	_ backend.Function = (*function)(nil)
)

// prepared is a parsed PTX image: what loading needs, and nothing of the
// device, so it can be made on any goroutine and shared by the modules
// loaded from it (they only read it).
type prepared struct {
	entries     map[string]ptxEntry
	globals     []ptxGlobal
	globalBytes uint64
}

var _ backend.PreparedModule = (*prepared)(nil)

func prepare(image []byte) (*prepared, error) {
	entries, globals, err := parsePTX(image)
	if err != nil {
		return nil, err
	}
	p := &prepared{entries: make(map[string]ptxEntry, len(entries)), globals: globals}
	for _, e := range entries {
		p.entries[e.name] = e
	}
	for _, g := range globals {
		n, _ := roundUp(max(g.size, 1)) // bounded by parsePTX: no overflow
		p.globalBytes += n
	}
	return p, nil
}

// GlobalBytes is what loading allocates for the module's globals.
func (p *prepared) GlobalBytes() (uint64, bool) { return p.globalBytes, true }

// load allocates the module's globals, all in one allocation (each at a
// multiple of allocAlign inside it, which is every alignment parsePTX
// accepts): one first-fit search on the shard however many globals the
// image declares, and the block is exactly GlobalBytes.
func (p *prepared) load(d *Device) (*module, error) {
	m := &module{dev: d, entries: p.entries, globals: make(map[string]global, len(p.globals))}
	if len(p.globals) == 0 {
		return m, nil
	}
	// PTX globals without an initialiser start at zero, which Alloc's
	// guarantee already gives.
	block, err := d.Alloc(p.globalBytes)
	if err != nil {
		return nil, err
	}
	m.block = block
	off := uint64(0)
	for _, g := range p.globals {
		m.globals[g.name] = global{block + off, g.size}
		n, _ := roundUp(max(g.size, 1))
		off += n
	}
	return m, nil
}

func (m *module) unloaded() bool { return m.gone.Load() }

func (m *module) Function(name string) (backend.Function, error) {
	e, ok := m.entries[name]
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "module has no entry %q", name)
	}
	k := builtins[baseName(name)]
	if k == nil {
		return nil, api.Errorf(api.ErrNotSupported, "entry %q has no built-in kernel on the host backend (it has: %s)", name, builtinNames())
	}
	if !slices.EqualFunc(e.params, k.sig, func(p api.Param, size uint32) bool { return p.Size == size }) {
		return nil, api.Errorf(api.ErrNotSupported, "entry %q takes parameters of sizes %v; the built-in %s takes %v",
			name, paramSizes(e.params), k.name, k.sig)
	}
	return &function{mod: m, name: name, params: e.params, kernel: k}, nil
}

func (m *module) Global(name string) (backend.DevicePtr, uint64, error) {
	g, ok := m.globals[name]
	if !ok {
		return 0, 0, api.Errorf(api.ErrNotFound, "module has no global %q", name)
	}
	return g.ptr, g.size, nil
}

func (m *module) Unload() error {
	if m.gone.Swap(true) {
		return api.Errorf(api.ErrInvalidHandle, "module already unloaded")
	}
	if m.block != 0 {
		m.dev.Free(m.block)
	}
	return nil
}

func (f *function) Name() string        { return f.name }
func (f *function) Params() []api.Param { return f.params }

func paramSizes(ps []api.Param) []uint32 {
	s := make([]uint32, len(ps))
	for i, p := range ps {
		s[i] = p.Size
	}
	return s
}

func builtinNames() string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
