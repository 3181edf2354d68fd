package numa

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPinCurrentThread(t *testing.T) {
	runtime.LockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	if !orig.IsSet(0) {
		runtime.UnlockOSThread()
		t.Skip("CPU 0 is outside this process's cpuset")
	}
	defer func() {
		// Only a thread whose mask is restored may go back to the pool;
		// otherwise it stays locked and exits with the test's goroutine.
		if err := unix.SchedSetaffinity(0, &orig); err != nil {
			t.Errorf("restore affinity: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()

	if err := PinCurrentThread([]int{0}); err != nil {
		t.Fatal(err)
	}
	var got unix.CPUSet
	if err := unix.SchedGetaffinity(0, &got); err != nil {
		t.Fatal(err)
	}
	if got.Count() != 1 || !got.IsSet(0) {
		t.Errorf("affinity after pinning to CPU 0 holds %d CPUs, CPU 0 set: %v", got.Count(), got.IsSet(0))
	}
}

func TestPinCurrentThreadInvalid(t *testing.T) {
	tests := [][]int{nil, {-1}, {0, cpuSetSize}}
	for _, cpus := range tests {
		// These fail before the syscall, so no thread is changed.
		if err := PinCurrentThread(cpus); !errors.Is(err, ErrInvalidCPU) {
			t.Errorf("PinCurrentThread(%v) = %v, want ErrInvalidCPU", cpus, err)
		}
	}
}

func TestAllocOnNode(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		node    int
		wantErr bool
	}{
		{name: "node 0", size: 1 << 20, node: 0},
		{name: "odd size", size: 4097, node: 0},
		{name: "unknown node is no preference", size: 4096, node: UnknownNode},
		{name: "absent node is a hint refused", size: 4096, node: 1000},
		{name: "zero size", size: 0, node: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AllocOnNode(tt.size, tt.node)
			if tt.wantErr {
				if err == nil {
					t.Fatal("AllocOnNode succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.size {
				t.Errorf("len = %d, want %d", len(b), tt.size)
			}
			for i := range b {
				if b[i] != 0 {
					t.Fatalf("byte %d = %d, want zeroed memory", i, b[i])
				}
				b[i] = byte(i)
			}
			if tt.node == 0 {
				checkPreferred(t, b, 0)
			}
			if err := FreeBuffer(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkPreferred reads the buffer's policy back from /proc/self/numa_maps,
// where the kernel can set one: placement is a hint, and a kernel without
// NUMA or a seccomp profile may refuse it, as a probe mbind shows.
func checkPreferred(t *testing.T, b []byte, node int) {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/numa_maps")
	if err != nil {
		t.Logf("cannot check placement: %v", err)
		return
	}
	probe, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := mbind(probe, unix.MPOL_PREFERRED, []uint64{1 << node}, 0); err != nil {
		t.Logf("the kernel refuses mbind (%v); the buffer was returned without a policy", err)
		return
	}
	addr := strings.TrimPrefix(fmt.Sprintf("%p", &b[0]), "0x")
	for line := range strings.Lines(string(maps)) {
		if strings.HasPrefix(line, addr+" ") {
			if want := fmt.Sprintf(" prefer:%d ", node); !strings.Contains(line, want) {
				t.Errorf("numa_maps: %q, want policy %q", strings.TrimSpace(line), strings.TrimSpace(want))
			}
			return
		}
	}
	t.Errorf("buffer at %s not in /proc/self/numa_maps", addr)
}
