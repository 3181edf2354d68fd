//go:build cgo

package cuda

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

var fakes struct {
	sync.Mutex
	dir   string
	built map[string]string
}

// buildFake compiles testdata/fakecuda.c into a libcuda.so.1 with the given
// -D defines, once per variant per run.
func buildFake(t *testing.T, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		cc, err = exec.LookPath("cc")
	}
	if err != nil {
		t.Skip("no C compiler to build the fake driver")
	}
	fakes.Lock()
	defer fakes.Unlock()
	key := strings.Join(defines, ",")
	if p, ok := fakes.built[key]; ok {
		return p
	}
	if fakes.dir == "" {
		fakes.dir, err = os.MkdirTemp("", "fakecuda")
		if err != nil {
			t.Fatal(err)
		}
		dir := fakes.dir
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		fakes.built = make(map[string]string)
	}
	out := filepath.Join(fakes.dir, "v"+string(rune('a'+len(fakes.built))), "libcuda.so.1")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-shared", "-fPIC", "-O1", "-Wall", "-o", out}
	for _, d := range defines {
		args = append(args, "-D"+d)
	}
	args = append(args, filepath.Join("testdata", "fakecuda.c"), "-lpthread")
	if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("building the fake driver: %v\n%s", err, msg)
	}
	fakes.built[key] = out
	return out
}

// openFake opens the fake driver's devices; they are closed, and the
// driver forgotten, when the test ends.
func openFake(t *testing.T, opts Options, defines ...string) []*Device {
	t.Helper()
	opts.LibraryPath = buildFake(t, defines...)
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	forgetDriver()
	devs, err := Open(opts)
	if err != nil {
		forgetDriver()
		t.Fatalf("Open(fake): %v", err)
	}
	out := make([]*Device, len(devs))
	for i, d := range devs {
		out[i] = d.(*Device)
	}
	t.Cleanup(func() {
		for _, d := range out {
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		forgetDriver()
	})
	return out
}

func TestFakeInfo(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true})
	if len(devs) != 2 {
		t.Fatalf("%d devices, want 2", len(devs))
	}
	for i, d := range devs {
		info := d.Info()
		want := [16]byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, byte(i)}
		switch {
		case info.Index != i || d.Ordinal() != i:
			t.Errorf("device %d: index %d, ordinal %d", i, info.Index, d.Ordinal())
		case info.Name != "Fake GPU "+string(rune('0'+i)):
			t.Errorf("device %d: name %q", i, info.Name)
		case info.UUID != want:
			t.Errorf("device %d: UUID %x, want %x", i, info.UUID, want)
		case info.TotalMem != 1<<30:
			t.Errorf("device %d: total memory %d", i, info.TotalMem)
		case info.PCIBusID != []string{"0000:3b:00.0", "0000:3c:00.0"}[i]:
			t.Errorf("device %d: PCI bus id %q (the driver said 0000:%02X:00.0)", i, info.PCIBusID, 0x3b+i)
		case info.DriverVersion != 12040:
			t.Errorf("device %d: driver version %d", i, info.DriverVersion)
		case info.Backend != "cuda" || info.Emulated:
			t.Errorf("device %d: backend %q, emulated %v", i, info.Backend, info.Emulated)
		case len(info.Attrs) != api.AttrCount:
			t.Errorf("device %d: %d attributes, want %d", i, len(info.Attrs), api.AttrCount)
		case info.Attrs[api.AttrMaxThreadsPerBlock] != 1024 || info.Attrs[api.AttrMultiprocessorCount] != 8 ||
			info.Attrs[api.AttrComputeCapabilityMajor] != 9 || info.Attrs[150] != 0 || info.Attrs[0] != 0:
			t.Errorf("device %d: attributes %v", i, info.Attrs)
		}
	}
}

func TestFakeOrdinals(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true, Ordinals: []int{1}})
	if len(devs) != 1 || devs[0].Info().Index != 0 || devs[0].Ordinal() != 1 || devs[0].Info().Name != "Fake GPU 1" {
		t.Fatalf("Ordinals [1]: got %d devices, first %+v", len(devs), devs[0].Info())
	}
	for _, ords := range [][]int{{2}, {-1}, {0, 0}} {
		forgetDriver()
		_, err := Open(Options{LibraryPath: buildFake(t), NoMonitor: true, Ordinals: ords})
		if !errors.Is(err, api.ErrInvalidDevice) {
			t.Errorf("Ordinals %v: %v, want CUDA_ERROR_INVALID_DEVICE", ords, err)
		}
	}
}

// TestFakeUnusableDrivers covers the ways a libcuda.so.1 can be present and
// still unusable: each must fail Open with ErrUnavailable and say why.
func TestFakeUnusableDrivers(t *testing.T) {
	tests := []struct {
		name    string
		defines []string
		env     string
		is      error
		say     string
	}{
		{"no device", nil, "100", api.ErrNoDevice, "cuInit: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)"},
		{"init fails", nil, "3", api.ErrNotInitialized, "cuInit: CUDA_ERROR_NOT_INITIALIZED"},
		{"not a driver", []string{"ONLY_INIT"}, "", api.ErrNotSupported, "has no symbol cuDriverGetVersion"},
		{"our own interposer", []string{"INTERPOSER"}, "", api.ErrNotSupported, "is gpufabric's interposer"},
		{"a Go c-shared library", []string{"GO_SHARED"}, "", api.ErrNotSupported, "is gpufabric's interposer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib := buildFake(t, tt.defines...)
			if tt.env != "" {
				t.Setenv("FAKECUDA_INIT_RESULT", tt.env)
			}
			forgetDriver()
			defer forgetDriver()
			_, err := Open(Options{LibraryPath: lib, NoMonitor: true})
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.is) {
				t.Fatalf("Open = %v, want ErrUnavailable and %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.say) {
				t.Errorf("Open: %q does not say %q", err, tt.say)
			}
		})
	}
}

func TestFakeDriverLoadedOnce(t *testing.T) {
	openFake(t, Options{NoMonitor: true})
	if _, err := Open(Options{LibraryPath: buildFake(t, "NO_PARAM_INFO"), NoMonitor: true}); err == nil ||
		!strings.Contains(err.Error(), "already loaded") {
		t.Fatalf("a second driver library: %v, want a refusal", err)
	}
}

func TestFakeNoParamInfo(t *testing.T) {
	devs := openFake(t, Options{NoMonitor: true}, "NO_PARAM_INFO")
	m, err := devs[0].LoadModule(kernelsPTX(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unload()
	f, err := m.Function("vector_add")
	if err != nil {
		t.Fatal(err)
	}
	if p := f.Params(); p != nil {
		t.Fatalf("Params = %v without cuFuncGetParamInfo, want nil (unknown)", p)
	}
	// The launch still works: the client packs from the PTX it knows.
	testVectorAdd(t, devs[0], f)
}

func TestFakeTelemetryWithoutNVML(t *testing.T) {
	d := openFake(t, Options{NoMonitor: true})[0]
	p, err := d.Alloc(3 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(p)
	tel, err := d.Telemetry()
	if err != nil {
		t.Fatal(err)
	}
	if tel.Utilization != -1 || tel.TemperatureC != -1 || tel.PowerWatts != -1 || tel.MemoryUsed < 3<<20 ||
		!tel.Healthy || tel.Health != "NVML monitoring disabled" {
		t.Fatalf("Telemetry = %+v", tel)
	}
}

func TestFakeClose(t *testing.T) {
	lib := buildFake(t)
	forgetDriver()
	defer forgetDriver()
	devs, err := Open(Options{LibraryPath: lib, NoMonitor: true})
	if err != nil {
		t.Fatal(err)
	}
	d := devs[0]
	s, err := d.NewStream(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); !errors.Is(err, api.ErrInvalidDevice) {
		t.Errorf("second Close = %v, want CUDA_ERROR_INVALID_DEVICE", err)
	}
	// The context is gone: the fake, like the driver, refuses calls in it.
	if _, err := d.Alloc(1); !errors.Is(err, api.ErrInvalidContext) {
		t.Errorf("Alloc after Close = %v, want CUDA_ERROR_INVALID_CONTEXT", err)
	}
}
