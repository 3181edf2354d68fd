//go:build cgo

package rdma

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// libraryPresent reports whether libibverbs.so.1 is installed where the
// dynamic loader looks on Debian and Red Hat systems.
func libraryPresent() bool {
	for _, pattern := range []string{"/usr/lib/*/" + Library, "/lib/*/" + Library, "/usr/lib64/" + Library, "/usr/lib/" + Library} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return true
		}
	}
	return false
}

// TestLoadLibibverbs resolves every verb the transport uses in the real
// library, and asks it for devices: on a machine without any it must say
// so cleanly.
func TestLoadLibibverbs(t *testing.T) {
	if !libraryPresent() {
		err := Load()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), Library) {
			t.Fatalf("Load without %s = %v; want ErrUnavailable naming the library", Library, err)
		}
		t.Skipf("%s is not installed (apt-get install libibverbs1 ibverbs-providers): %v", Library, err)
	}
	if err := Load(); err != nil {
		t.Fatalf("Load: %v", err)
	}
	names, err := Devices()
	sysfs, _ := os.ReadDir("/sys/class/infiniband")
	switch {
	case len(sysfs) == 0:
		if !errors.Is(err, ErrNoDevices) || !strings.HasPrefix(err.Error(), "rdma: unavailable: no RDMA devices") {
			t.Fatalf("Devices on a machine without RDMA devices = %v, %v; want %q", names, err, ErrNoDevices)
		}
		if _, err := Open("mlx5_0", OpenOptions{}); err == nil {
			t.Fatal("Open of a device that does not exist succeeded")
		}
	case err != nil:
		t.Fatalf("Devices with %d in /sys/class/infiniband: %v", len(sysfs), err)
	default:
		t.Logf("devices: %v", names)
	}
}

// TestABI compiles the project's own verbs declarations against
// rdma-core's verbs.h, when the headers are installed, and fails when a
// size or an offset the shim relies on differs.
func TestABI(t *testing.T) {
	if _, err := os.Stat("/usr/include/infiniband/verbs.h"); err != nil {
		t.Skip("rdma-core headers not installed (libibverbs-dev): nothing to check against")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	out, err := exec.Command(cc, "-std=c11", "-fsyntax-only", "-I.", "testdata/abicheck.c").CombinedOutput()
	if err != nil {
		t.Fatalf("the shim's declarations differ from verbs.h:\n%s", out)
	}
}
