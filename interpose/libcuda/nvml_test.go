//go:build linux && cgo

package main

import (
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

// The C side reads the supported groups with its own bit names; they must
// be api's.
func TestNVMLBitsMatchAPI(t *testing.T) {
	for i, b := range nvmlBits() {
		if b[0] != b[1] || b[1] != 1<<i {
			t.Errorf("pair %d: C bit %#x, api bit %#x; want both %#x", i, b[0], b[1], uint64(1)<<i)
		}
	}
}

func TestShareMemory(t *testing.T) {
	for _, tc := range []struct {
		v                 api.NVMLDevice
		total, used, free uint64
	}{
		{api.NVMLDevice{Quota: 100, SessionUsed: 30, DeviceFree: 1000}, 100, 30, 70},
		// Another tenant filled the device: free is what the device has.
		{api.NVMLDevice{Quota: 100, SessionUsed: 30, DeviceFree: 10}, 100, 30, 10},
		{api.NVMLDevice{Quota: 100, SessionUsed: 130, DeviceFree: 10}, 100, 100, 0},
	} {
		total, used, free := shareMemory(tc.v)
		if total != tc.total || used != tc.used || free != tc.free {
			t.Errorf("shareMemory(%+v) = %d %d %d, want %d %d %d", tc.v, total, used, free, tc.total, tc.used, tc.free)
		}
	}
}
