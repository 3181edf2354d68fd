package main

import "testing"

func TestResolveProc(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		flags   uint64
		driver  int
		want    string // symbol, or "" with wantIdx
		wantIdx int
	}{
		{"cuMemAlloc", 12080, 0, 12080, "cuMemAlloc_v2", 0},
		{"cuMemAlloc", 3020, 0, 0, "cuMemAlloc_v2", 0},
		{"cuMemAlloc", 3010, 0, 0, "cuMemAlloc", 0},
		{"cuInit", 12000, 0, 0, "cuInit", 0},
		{"cuCtxCreate", 11030, 0, 0, "cuCtxCreate_v2", 0},
		{"cuCtxCreate", 11040, 0, 0, "cuCtxCreate_v3", 0},
		{"cuCtxCreate", 12050, 0, 12080, "cuCtxCreate_v4", 0},
		{"cuStreamGetCaptureInfo", 11020, 0, 0, "cuStreamGetCaptureInfo", 0},
		{"cuStreamGetCaptureInfo", 11030, 0, 0, "cuStreamGetCaptureInfo_v2", 0},
		{"cuStreamGetCaptureInfo", 12030, 0, 0, "cuStreamGetCaptureInfo_v3", 0},
		{"cuStreamGetCaptureInfo", 12030, procFlagPerThreadStream, 0, "cuStreamGetCaptureInfo_v3_ptsz", 0},
		{"cuMemcpyHtoD", 12000, procFlagPerThreadStream, 0, "cuMemcpyHtoD_v2_ptds", 0},
		{"cuMemcpyHtoD", 12000, procFlagLegacyStream, 0, "cuMemcpyHtoD_v2", 0},
		{"cuMemcpyHtoD", 12000, 0, 0, "cuMemcpyHtoD_v2", 0},
		{"cuLaunchKernel", 12000, procFlagPerThreadStream, 0, "cuLaunchKernel_ptsz", 0},
		{"cuMemcpy", 12000, procFlagPerThreadStream, 0, "cuMemcpy_ptds", 0},
		{"cuCtxSynchronize", 12080, 0, 12080, "cuCtxSynchronize", 0},
		{"cuCtxSynchronize", 13000, 0, 13000, "cuCtxSynchronize_v2", 0},
		{"cuCtxGetDevice", 12090, 0, 0, "cuCtxGetDevice", 0},
		{"cuGetProcAddress", 12000, 0, 0, "cuGetProcAddress_v2", 0},
		{"cuGetProcAddress", 11030, 0, 0, "cuGetProcAddress", 0},
		{"cuGraphInstantiate", 11000, 0, 0, "cuGraphInstantiate_v2", 0},
		{"cuGraphInstantiate", 12000, 0, 0, "cuGraphInstantiateWithFlags", 0},
		{"cuDevicePrimaryCtxRelease", 12000, 0, 0, "cuDevicePrimaryCtxRelease_v2", 0},
		{"cuEventDestroy", 12000, 0, 0, "cuEventDestroy_v2", 0},
		{"cuTexRefSetAddress2D", 4000, 0, 0, "cuTexRefSetAddress2D_v2", 0},
		{"cuTexRefSetAddress2D", 12000, 0, 0, "cuTexRefSetAddress2D_v3", 0},
		{"", 0, 0, 0, "", procNotFound},
		{"cuMemAlloc_v2", 12000, 0, 0, "", procNotFound},
		{"cuNoSuchThing", 12000, 0, 0, "", procNotFound},
		{"cuMemAlloc", 12090, 0, 12080, "", procTooNew},
	} {
		got := resolveProc(tc.name, tc.version, tc.flags, tc.driver)
		if tc.want == "" {
			if got != tc.wantIdx {
				t.Errorf("resolveProc(%q, %d, %d) = %d, want %d", tc.name, tc.version, tc.flags, got, tc.wantIdx)
			}
			continue
		}
		if got < 0 || symbolNames[got] != tc.want {
			name := "?"
			if got >= 0 {
				name = symbolNames[got]
			}
			t.Errorf("resolveProc(%q, %d, %d) = %d (%s), want %s", tc.name, tc.version, tc.flags, got, name, tc.want)
		}
	}
}

// Every exported name is reachable: a plain name by itself, a versioned one
// through its base at its version, a per-thread twin through the flag.
func TestEverySymbolResolves(t *testing.T) {
	reached := map[int]bool{}
	for base, variants := range procTable {
		for _, v := range variants {
			for _, flags := range []uint64{0, procFlagPerThreadStream} {
				if got := resolveProc(base, v.version, flags, 0); got >= 0 {
					reached[got] = true
				}
			}
		}
	}
	for i, n := range symbolNames {
		if !reached[i] {
			t.Errorf("%s cannot be reached through cuGetProcAddress", n)
		}
	}
}
