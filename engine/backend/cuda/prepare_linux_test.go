//go:build cgo

package cuda

import (
	"errors"
	"sync"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// TestFakePrepareModule prepares the examples' module on several
// goroutines at once, loads each on the device and runs a kernel from one.
func TestFakePrepareModule(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	d := devs[0]
	image := kernelsPTX(t)
	const n = 4
	prepared := make([]backend.PreparedModule, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { prepared[i], errs[i] = d.PrepareModule(image) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if _, known := prepared[i].GlobalBytes(); known {
			t.Error("GlobalBytes known before the driver loaded the image")
		}
		m, err := d.LoadPrepared(prepared[i])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f, err := m.Function("vector_add")
			if err != nil {
				t.Fatal(err)
			}
			testVectorAdd(t, d, f)
		}
		if err := m.Unload(); err != nil {
			t.Fatal(err)
		}
	}

	other, err := devs[1].PrepareModule(image)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		image []byte
		load  backend.PreparedModule
		want  api.Result
	}{
		{"empty", []byte{}, nil, api.ErrInvalidImage},
		{"fatbin wrapper", []byte{0xb1, 0x43, 0x62, 0x46, 1, 0, 0, 0}, nil, api.ErrInvalidImage},
		{"binary", []byte{1, 2, 0, 3}, nil, api.ErrInvalidImage},
		{"another device's", nil, other, api.ErrInvalidHandle},
		{"not a module for the driver", []byte("just text"), nil, api.ErrInvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.load
			if p == nil {
				var err error
				if p, err = d.PrepareModule(tt.image); err != nil {
					if !errors.Is(err, tt.want) {
						t.Fatalf("PrepareModule: %v, want %v", err, tt.want)
					}
					return
				}
			}
			if _, err := d.LoadPrepared(p); !errors.Is(err, tt.want) {
				t.Fatalf("LoadPrepared: %v, want %v", err, tt.want)
			}
		})
	}
}
