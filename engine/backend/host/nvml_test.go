package host

import (
	"strings"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

func TestNVMLEmulated(t *testing.T) {
	d, err := New(Config{Index: 2, MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v, err := d.NVML()
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != api.NVMLSourceEmulated {
		t.Errorf("source %q, want %q", v.Source, api.NVMLSourceEmulated)
	}
	if v.DriverVersion != "570.00.00" || v.NVMLVersion != "12.570.00.00" {
		t.Errorf("versions %q, %q; want the CUDA 12.8 branch, 570.00.00 and 12.570.00.00", v.DriverVersion, v.NVMLVersion)
	}
	if v.MinorNumber != 2 || v.PCIDeviceID&0xffff != 0x10de || !strings.HasPrefix(v.Serial, "emulated-") {
		t.Errorf("minor %d, PCI id %#x, serial %q", v.MinorNumber, v.PCIDeviceID, v.Serial)
	}
	if v.BAR1Total != 64<<20 || v.BAR1Used != 0 {
		t.Errorf("BAR1 %d used %d, want the device's 64 MiB, none used", v.BAR1Total, v.BAR1Used)
	}
	if _, err := d.Alloc(1 << 20); err != nil {
		t.Fatal(err)
	}
	if v, _ = d.NVML(); v.BAR1Used < 1<<20 {
		t.Errorf("BAR1 used %d after a 1 MiB allocation", v.BAR1Used)
	}
	if v.Supported&api.NVMLHasFan != 0 {
		t.Errorf("the emulation reports a fan")
	}
}

func TestNVMLDriverVersion(t *testing.T) {
	for cuda, want := range map[int]string{12000: "525.00.00", 12080: "570.00.00", 13000: "580.00.00", 99999: "570.00.00"} {
		if got := nvmlDriverVersion(cuda); got != want {
			t.Errorf("nvmlDriverVersion(%d) = %q, want %q", cuda, got, want)
		}
	}
}
