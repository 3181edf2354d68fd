package host

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// TestPrepareModule prepares images on many goroutines at once while the
// "shard" (this goroutine) allocates and loads: PrepareModule touches no
// device state (the race detector watches), each prepared module says what
// its globals will cost, and loading costs exactly that.
func TestPrepareModule(t *testing.T) {
	d, err := New(Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base, err := os.ReadFile("../../../examples/kernels.ptx")
	if err != nil {
		t.Fatal(err)
	}
	image := append([]byte(".global .align 8 .b8 table[40];\n.visible .global .f32 x;\n"), base...)

	const n = 8
	prepared := make([]backend.PreparedModule, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { prepared[i], errs[i] = d.PrepareModule(image) })
	}
	var shardPtrs []backend.DevicePtr
	for range 100 {
		p, err := d.Alloc(4096)
		if err != nil {
			t.Fatal(err)
		}
		shardPtrs = append(shardPtrs, p)
	}
	wg.Wait()
	for _, p := range shardPtrs {
		d.Free(p)
	}

	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		bytes, known := prepared[i].GlobalBytes()
		if !known || bytes != 2*allocAlign {
			t.Fatalf("GlobalBytes = %d, %v; want %d, true", bytes, known, 2*allocAlign)
		}
		free0, _, _ := d.MemInfo()
		m, err := d.LoadPrepared(prepared[i])
		if err != nil {
			t.Fatal(err)
		}
		free1, _, _ := d.MemInfo()
		if free0-free1 != bytes {
			t.Fatalf("loading took %d bytes, GlobalBytes said %d", free0-free1, bytes)
		}
		if _, size, err := m.Global("table"); err != nil || size != 40 {
			t.Fatalf("Global(table) = %d, %v", size, err)
		}
		if _, err := m.Function("saxpy"); err != nil {
			t.Fatal(err)
		}
		if err := m.Unload(); err != nil {
			t.Fatal(err)
		}
	}
	if free, total, _ := d.MemInfo(); free != total {
		t.Fatalf("%d of %d bytes free after unloading everything", free, total)
	}
}

type foreignPrepared struct{}

func (foreignPrepared) GlobalBytes() (uint64, bool) { return 0, false }

func TestPrepareModuleErrors(t *testing.T) {
	d, err := New(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tests := []struct {
		name    string
		prepare []byte
		load    backend.PreparedModule
		want    api.Result
	}{
		{"cubin", []byte("\x7fELF\x02\x01"), nil, api.ErrNotSupported},
		{"not PTX", []byte("hello"), nil, api.ErrInvalidImage},
		{"param alignment", []byte(ptxHead + ".entry k(.param .align 2147483648 .b8 a[4]) { ret; }"), nil, api.ErrInvalidPTX},
		{"globals past the device", []byte(ptxHead + ".global .b8 big[2097152];\n.entry k() { ret; }"), nil, api.ErrOutOfMemory},
		{"another backend's", nil, foreignPrepared{}, api.ErrInvalidHandle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.load
			if tt.prepare != nil {
				var err error
				p, err = d.PrepareModule(tt.prepare)
				if err != nil {
					if !errors.Is(err, tt.want) {
						t.Fatalf("PrepareModule: %v, want %v", err, tt.want)
					}
					return
				}
			}
			if _, err := d.LoadPrepared(p); !errors.Is(err, tt.want) {
				t.Fatalf("LoadPrepared: %v, want %v", err, tt.want)
			}
			if free, total, _ := d.MemInfo(); free != total {
				t.Fatalf("a failed load kept %d bytes", total-free)
			}
		})
	}
}
