package e2e

import (
	"cmp"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cc compiles one C file of testdata into the test's temporary directory.
func cc(t *testing.T, src string, args ...string) string {
	t.Helper()
	compiler, err := exec.LookPath(cmp.Or(os.Getenv("CC"), "cc"))
	if err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	full := append([]string{"-O2", "-Wall", "-Wextra", "-o", out, filepath.Join("testdata", src)}, args...)
	if b, err := exec.Command(compiler, full...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", compiler, full, err, b)
	}
	return out
}

// TestEveryNVMLNameResolves opens libnvidia-ml.so.1 of the build with
// dlopen, as go-nvml and PyTorch do, and looks up every name of NVML's
// header (gen/nvml_names.txt, which the generator checks against the
// header): none may be missing, since a client that binds a missing name
// dies in the dynamic linker. It also checks that libcuda.so.1 and
// libnvidia-ml.so.1 are one library, so NVML answers from the session the
// driver API opened.
func TestEveryNVMLNameResolves(t *testing.T) {
	requireBuild(t)
	prog := cc(t, "dlsym_all.c", "-ldl")
	names, err := os.Open(filepath.Join(root, "interpose", "libcuda", "gen", "nvml_names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	nvmlLib, _ := filepath.Abs(filepath.Join(libDir, "libnvidia-ml.so.1"))
	cudaLib, _ := filepath.Abs(filepath.Join(libDir, "libcuda.so.1"))
	cmd := exec.Command(prog, nvmlLib, cudaLib)
	cmd.Stdin = names
	cmd.Env = append(os.Environ(), "GPUFABRIC_LOG=quiet")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dlsym_all: %v\n%s", err, out)
	}
	for _, want := range []string{"same handle: yes", "same nvmlInit_v2: yes"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dlsym_all output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("%s", out)
}

// TestSoname links a program against the build's library, as a CUDA
// program is linked against libcuda.so, and reads what the linker recorded:
// the program must need libcuda.so.1, the name the driver is installed
// under, not libgpufabric.so.
func TestSoname(t *testing.T) {
	requireBuild(t)
	lib, _ := filepath.Abs(libDir)
	prog := cc(t, "needs_libcuda.c", "-L"+lib, "-lcuda")
	f, err := elf.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	needed, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(needed, "libcuda.so.1") || slices.Contains(needed, "libgpufabric.so") {
		t.Errorf("a program linked with -lcuda needs %v; want libcuda.so.1", needed)
	}
	so, err := elf.Open(filepath.Join(libDir, "libgpufabric.so"))
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	if sonames, err := so.DynString(elf.DT_SONAME); err != nil || !slices.Equal(sonames, []string{"libcuda.so.1"}) {
		t.Errorf("libgpufabric.so SONAME = %v, %v; want [libcuda.so.1]", sonames, err)
	}
}

// TestConfNVML runs the NVML conformance program under `gpufabric run`
// against a host-backend server, over TCP and over shared memory.
func TestConfNVML(t *testing.T) {
	requireBuild(t, "conf_nvml")
	srv := sharedServer(t)
	for _, tr := range []string{"tcp", "shm"} {
		t.Run(tr, func(t *testing.T) {
			r := run(t, srv.Addr, []string{"--transport", tr, "-m", "256MiB"}, example("conf_nvml"), "268435456")
			if r.status != 0 || !strings.Contains(r.out, "conf_nvml: 15 checks passed") {
				t.Fatalf("conf_nvml over %s exited %d:\n%s", tr, r.status, r.out)
			}
			for _, w := range []string{"NVML 12.570.00.00", "PCI id 000010de", "nvmlDeviceGetBoardPartNumber is not supported", "NVML 12.570.00.00"} {
				if !strings.Contains(r.out, w) {
					t.Errorf("conf_nvml over %s: output lacks %q:\n%s", tr, w, r.out)
				}
			}
		})
	}
}

// TestGoNVML runs go-nvml's own bindings (a Go program that binds NVML the
// way Go monitoring agents do) under `gpufabric run`: they open
// libnvidia-ml.so.1 with dlopen and must find the interposer's answers.
func TestGoNVML(t *testing.T) {
	requireBuild(t)
	if testing.Short() {
		t.Skip("-short: builds a cgo program")
	}
	prog := filepath.Join(t.TempDir(), "gonvml")
	if b, err := exec.Command("go", "build", "-o", prog, "./testdata/gonvml").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/gonvml: %v\n%s", err, b)
	}
	srv := sharedServer(t)
	r := run(t, srv.Addr, []string{"--transport", "tcp", "-m", "256MiB"}, prog)
	if r.status != 0 {
		t.Fatalf("gonvml exited %d:\n%s", r.status, r.out)
	}
	for _, w := range []string{"driver 570.00.00 Success", "memory 268435456 0 Success", "processes 1 Success",
		"board part number Not Supported", "gonvml: ok"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("gonvml output lacks %q:\n%s", w, r.out)
		}
	}
}
