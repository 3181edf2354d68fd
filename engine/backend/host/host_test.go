package host

import (
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

func pa(off, size uint32) api.Param { return api.Param{Offset: off, Size: size} }

func TestAllocatorCoalesces(t *testing.T) {
	a := newAllocator(1 << 20)
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[uint64]uint64{}
	for range 5000 {
		if len(live) > 0 && rng.IntN(2) == 0 {
			for off := range live {
				if a.put(off) == 0 {
					t.Fatalf("put(%d) of a live allocation", off)
				}
				delete(live, off)
				break
			}
			continue
		}
		n := uint64(1 + rng.IntN(16<<10))
		off, ok := a.get(n)
		if !ok {
			continue
		}
		if off%allocAlign != 0 {
			t.Fatalf("unaligned offset %d", off)
		}
		for o, s := range live {
			if off < o+s && o < off+n {
				t.Fatalf("[%d,+%d) overlaps [%d,+%d)", off, n, o, s)
			}
		}
		live[off], _ = roundUp(n)
	}
	for off := range live {
		a.put(off)
	}
	if a.used != 0 || len(a.free) != 1 || a.free[0] != (extent{0, 1 << 20}) {
		t.Fatalf("after freeing everything: used %d, free list %v", a.used, a.free)
	}
	if a.put(12345) != 0 {
		t.Fatal("put of a non-allocation succeeded")
	}
	if _, ok := a.get(^uint64(0)); ok {
		t.Fatal("an allocation of 2^64-1 bytes succeeded")
	}
}

func TestParsePTX(t *testing.T) {
	image, err := os.ReadFile("../../../examples/kernels.ptx")
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := parsePTX(image)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]api.Param{}
	for _, e := range entries {
		got[e.name] = e.params
	}
	want := map[string][]api.Param{
		"vector_add":     {pa(0, 8), pa(8, 8), pa(16, 8), pa(24, 4)},
		"saxpy":          {pa(0, 4), pa(4, 4), pa(8, 8), pa(16, 8)},
		"fill_u32":       {pa(0, 8), pa(8, 4), pa(16, 8)},
		"scale_f32":      {pa(0, 8), pa(8, 4), pa(16, 8)},
		"reduce_sum_f32": {pa(0, 8), pa(8, 8), pa(16, 4)},
		"spin":           {pa(0, 8)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries:\n got %v\nwant %v", got, want)
	}
	// Every entry binds to its built-in.
	for name, params := range want {
		k := builtins[name]
		if k == nil || len(k.sig) != len(params) {
			t.Errorf("%s: no built-in or a different arity", name)
		}
	}
}

func TestParsePTXDeclarations(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		params []api.Param
		global *ptxGlobal
		err    api.Result
	}{
		{"aligned array param", ".version 7.0\n.target sm_80\n.entry k(.param .u32 a, .param .align 8 .b8 s[24], .param .f64 d) { ret; }",
			[]api.Param{pa(0, 4), pa(8, 24), pa(32, 8)}, nil, 0},
		{"ptr qualifiers", ".version 7.0\n.target sm_80\n.entry k(.param .u64 .ptr .global .align 16 p, .param .s8 c) { ret; }",
			[]api.Param{pa(0, 8), pa(8, 1)}, nil, 0},
		{"no params", ".version 7.0\n.target sm_80\n.entry k() { ret; }", nil, nil, 0},
		{"comments hide entries", ".version 7.0\n.target sm_80\n// .entry fake(.param .u32 x)\n/* .entry fake2() */\n.entry k(.param .b16 h) { ret; }",
			[]api.Param{pa(0, 2)}, nil, 0},
		{"global array", ".version 7.0\n.target sm_80\n.visible .global .align 8 .b8 table[40];\n.entry k() { ret; }",
			nil, &ptxGlobal{"table", 40, 8}, 0},
		{"extern global has no storage", ".version 7.0\n.target sm_80\n.extern .global .u32 x;\n.entry k() { ret; }", nil, nil, 0},
		{"not PTX", "hello world", nil, nil, api.ErrInvalidImage},
		{"param without a type", ".version 7.0\n.target sm_80\n.entry k(.param a) { ret; }", nil, nil, api.ErrInvalidPTX},
		{"bad alignment", ".version 7.0\n.target sm_80\n.entry k(.param .align 3 .b8 a[4]) { ret; }", nil, nil, api.ErrInvalidPTX},
		{"cubin", "\x7fELF\x02\x01", nil, nil, api.ErrNotSupported},
		{"fatbin", "\x50\xed\x55\xba\x01\x00\x10\x00", nil, nil, api.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, globals, err := parsePTX([]byte(tt.src))
			if tt.err != 0 {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var k *ptxEntry
			for i := range entries {
				if entries[i].name == "k" {
					k = &entries[i]
				}
			}
			if k == nil || len(entries) != 1 {
				t.Fatalf("entries %v", entries)
			}
			if !reflect.DeepEqual(k.params, tt.params) {
				t.Fatalf("params %v, want %v", k.params, tt.params)
			}
			if tt.global != nil && (len(globals) != 1 || globals[0] != *tt.global) {
				t.Fatalf("globals %v, want %v", globals, *tt.global)
			}
			if tt.global == nil && len(globals) != 0 {
				t.Fatalf("globals %v, want none", globals)
			}
		})
	}
}

func TestBaseName(t *testing.T) {
	for in, want := range map[string]string{
		"saxpy":                   "saxpy",
		"_Z10vector_addPKfS1_Pfi": "vector_add",
		"_Z5saxpyifPKfPf":         "saxpy",
		"_Z":                      "_Z",
		"_Z99x":                   "_Z99x",
	} {
		if got := baseName(in); got != want {
			t.Errorf("baseName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFill(t *testing.T) {
	for _, size := range []int{1, 2, 4} {
		for _, n := range []int{0, 1, 7, 64, 1000} {
			b := make([]byte, n*size)
			fill(b, 0xa1b2c3d4, size)
			for i := range b {
				if want := byte(uint32(0xa1b2c3d4) >> (8 * (i % size))); b[i] != want {
					t.Fatalf("size %d n %d: b[%d] = %#x, want %#x", size, n, i, b[i], want)
				}
			}
		}
	}
}

func TestDeviceMemory(t *testing.T) {
	d, err := New(Config{Index: 3, MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if info := d.Info(); !info.Emulated || info.Backend != "host" || info.TotalMem != 1<<20 || info.UUID == [16]byte{} {
		t.Fatalf("info %+v", info)
	}
	p, err := d.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	if p>>40 != addressBase>>40+3 {
		t.Fatalf("device 3's address %#x is outside its terabyte", p)
	}
	if _, err := d.Alloc(1 << 20); !errors.Is(err, api.ErrOutOfMemory) {
		t.Fatalf("over-allocation: %v", err)
	}
	if err := d.Free(p + 1); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("free inside an allocation: %v", err)
	}
	if err := d.Free(p); err != nil {
		t.Fatal(err)
	}
	if free, total, _ := d.MemInfo(); free != total {
		t.Fatalf("free %d of %d after freeing everything", free, total)
	}
	if _, err := d.bytes(p-1, 4); !errors.Is(err, api.ErrIllegalAddress) {
		t.Fatalf("address below the arena: %v", err)
	}
	// The arena holds the device's memory and the VMM span after it (vmm.go).
	if _, err := d.bytes(p, uint64(len(d.arena))+1); !errors.Is(err, api.ErrIllegalAddress) {
		t.Fatalf("range past the arena: %v", err)
	}
}

// Servers in different address slots hand out addresses that cannot meet,
// and each device says which range is its own.
func TestAddressSlots(t *testing.T) {
	var ranges [][2]uint64
	for _, cfg := range []Config{{Index: 0}, {Index: 63}, {Index: 0, Slot: 1}, {Index: 63, Slot: MaxSlot}} {
		cfg.MemorySize = 1 << 20
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		info := d.Info()
		p, err := d.Alloc(4096)
		if err != nil {
			t.Fatal(err)
		}
		if p < info.AddrLow || p+4096 > info.AddrHigh {
			t.Errorf("%+v: address %#x outside its range [%#x, %#x)", cfg, p, info.AddrLow, info.AddrHigh)
		}
		for _, r := range ranges {
			if info.AddrLow < r[1] && r[0] < info.AddrHigh {
				t.Errorf("%+v: range [%#x, %#x) meets [%#x, %#x)", cfg, info.AddrLow, info.AddrHigh, r[0], r[1])
			}
		}
		ranges = append(ranges, [2]uint64{info.AddrLow, info.AddrHigh})
		d.Close()
	}
	for _, slot := range []int{-1, MaxSlot + 1} {
		if d, err := New(Config{MemorySize: 1 << 20, Slot: slot}); err == nil {
			d.Close()
			t.Errorf("slot %d accepted", slot)
		}
	}
}
