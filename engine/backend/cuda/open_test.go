package cuda

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// requireGPU is set where a GPU must be found (scripts/gpu-check.sh): tests
// that would skip without one fail instead.
var requireGPU = os.Getenv("GPUFABRIC_REQUIRE_GPU") == "1"

func TestOpenMissingLibrary(t *testing.T) {
	forgetDriver()
	_, err := Open(Options{LibraryPath: "/nonexistent/libcuda.so.1"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	want := "/nonexistent/libcuda.so.1 not found"
	if r := stubReason(); r != "" {
		want = r
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %q does not say %q", err, want)
	}
}

// TestOpenHere opens the system's driver. On a host without one (CI, the
// build machines) Open must fail cleanly with ErrUnavailable and say why;
// on a GPU host it must succeed.
func TestOpenHere(t *testing.T) {
	forgetDriver()
	defer forgetDriver()
	devs, err := Open(Options{})
	if err == nil {
		t.Logf("a driver is present: %d devices", len(devs))
		for _, d := range devs {
			if err := d.Close(); err != nil {
				t.Error(err)
			}
		}
		return
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open = %v, want an error matching ErrUnavailable", err)
	}
	msg := err.Error()
	clear := strings.Contains(msg, "libcuda.so.1 not found") || strings.Contains(msg, "cuInit:") ||
		strings.Contains(msg, "cuDeviceGetCount:") || (stubReason() != "" && strings.Contains(msg, stubReason()))
	if !clear {
		t.Errorf("Open failed without saying why: %q", msg)
	}
	if requireGPU {
		t.Fatalf("GPUFABRIC_REQUIRE_GPU=1 but: %v", err)
	}
	t.Logf("as expected without a GPU: %v", err)
}

// TestSystemInventoryHere lists this host's GPUs through the system's NVML:
// none here (ErrNoNVML, with the reason), a list on a GPU host.
func TestSystemInventoryHere(t *testing.T) {
	gpus, err := SystemInventory()
	if err != nil {
		if !errors.Is(err, ErrNoNVML) {
			t.Fatalf("SystemInventory = %v, want ErrNoNVML", err)
		}
		if requireGPU {
			t.Fatalf("GPUFABRIC_REQUIRE_GPU=1 but: %v", err)
		}
		t.Logf("as expected without a GPU: %v", err)
		return
	}
	for _, g := range gpus {
		t.Logf("NVML GPU %d: %s %s %s %d MiB", g.Index, g.Name, g.UUID, g.PCIBusID, g.MemoryTotal>>20)
		if id, ok := normalizeBusID(g.PCIBusID); !ok || id != g.PCIBusID {
			t.Errorf("GPU %d: PCI bus id %q is not canonical", g.Index, g.PCIBusID)
		}
	}
	if requireGPU && len(gpus) == 0 {
		t.Fatal("GPUFABRIC_REQUIRE_GPU=1 but NVML lists no GPU")
	}
}
