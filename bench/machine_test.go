package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestMachineFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	x86 := write("x86", "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
	arm := write("arm", "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n\nHardware\t: Example SoC\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n")
	for path, want := range map[string]string{x86: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", arm: "Example SoC", filepath.Join(dir, "missing"): ""} {
		if got := cpuModel(path); got != want {
			t.Errorf("cpuModel(%s) = %q, want %q", filepath.Base(path), got, want)
		}
	}
	mem := write("meminfo", "MemTotal:       16318480 kB\nMemFree:         1000000 kB\n")
	if got := memTotal(mem); got != 16318480<<10 {
		t.Errorf("memTotal = %d", got)
	}
	for _, bad := range []string{write("bad1", "MemTotal:\n"), write("bad2", "MemTotal: lots kB\n"), filepath.Join(dir, "missing")} {
		if got := memTotal(bad); got != 0 {
			t.Errorf("memTotal(%s) = %d, want 0", filepath.Base(bad), got)
		}
	}
}

func TestDescribeMachine(t *testing.T) {
	m := DescribeMachine()
	if m.Cores != runtime.NumCPU() || m.GOMAXPROCS != runtime.GOMAXPROCS(0) || m.GoVersion != runtime.Version() || m.OS != runtime.GOOS {
		t.Errorf("DescribeMachine() = %+v", m)
	}
	if runtime.GOOS == "linux" && (m.CPU == "" && runtime.GOARCH == "amd64" || m.MemoryBytes == 0 || m.Kernel == "") {
		t.Errorf("on Linux, DescribeMachine() = %+v", m)
	}
}
