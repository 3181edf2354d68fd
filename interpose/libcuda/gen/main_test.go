package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGenerated fails when the committed generated files are not what the
// lists and the C sources produce now.
func TestGenerated(t *testing.T) {
	files, err := generate("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		old, err := os.ReadFile(filepath.Join("..", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(old, f.data) {
			t.Errorf("%s is out of date: run go generate ./interpose/libcuda", f.name)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct{ name, base, ver, pt string }{
		{"cuMemAlloc", "cuMemAlloc", "", ""},
		{"cuMemAlloc_v2", "cuMemAlloc", "_v2", ""},
		{"cuMemcpyHtoD_v2_ptds", "cuMemcpyHtoD", "_v2", "_ptds"},
		{"cuLaunchKernel_ptsz", "cuLaunchKernel", "", "_ptsz"},
		{"cuStreamGetCaptureInfo_v3_ptsz", "cuStreamGetCaptureInfo", "_v3", "_ptsz"},
	} {
		b, v, p := split(tc.name)
		if b != tc.base || v != tc.ver || p != tc.pt {
			t.Errorf("split(%s) = %q %q %q", tc.name, b, v, p)
		}
	}
}

func TestNVMLHeaderNames(t *testing.T) {
	header := []byte(`
nvmlReturn_t DECLDIR nvmlInit_v2(void);
const DECLDIR char* nvmlErrorString(nvmlReturn_t result);
nvmlReturn_t  DECLDIR nvmlDevicePowerSmoothingSetState(nvmlDevice_t device,
        nvmlPowerSmoothingState_t *state);
#define DECLDIR __declspec(dllexport)
    #define nvmlGetBlacklistDeviceCount                 nvmlInit_v2
#define nvmlBlacklistDeviceInfo_t nvmlExcludedDeviceInfo_t
#define nvmlInit_v2 nvmlInit
#ifdef NVML_NO_UNVERSIONED_FUNC_DEFS
nvmlReturn_t DECLDIR nvmlInit(void);
#endif
nvmlReturn_t DECLDIR nvmlInit_v2(void);
`)
	got := nvmlHeaderNames(header)
	want := []string{"nvmlDevicePowerSmoothingSetState", "nvmlErrorString", "nvmlGetBlacklistDeviceCount", "nvmlInit", "nvmlInit_v2"}
	if !slices.Equal(got, want) {
		t.Errorf("nvmlHeaderNames = %v, want %v", got, want)
	}
}
