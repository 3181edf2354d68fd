//go:build linux && cgo

package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// nvmlServer answers a session's Hello, Attach and DeviceGet, and each
// NVMLQuery with a view whose SessionUsed counts the queries so far.
func nvmlServer(t *testing.T, queries *atomic.Uint64) string {
	t.Helper()
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			body, n, err := c.Recv()
			if err != nil || c.ReadPayload(make([]byte, n)) != nil {
				return
			}
			h, _, err := api.ReadHeader(body)
			if err != nil {
				return
			}
			var m api.Message
			switch h.Op {
			case api.OpHello:
				m = &api.HelloReply{Server: "nvml", Version: api.Version, Devices: 1}
			case api.OpAttach:
				m = &api.AttachReply{QuotaBytes: 1 << 20}
			case api.OpDeviceGet:
				m = &api.DeviceInfo{Name: "scripted", TotalMem: 1 << 20, DriverVersion: 12080, Attrs: make([]int32, api.AttrCount)}
			case api.OpNVMLQuery:
				m = &api.NVMLDevice{Source: api.NVMLSourceEmulated, Quota: 1 << 20, SessionUsed: queries.Add(1), DeviceFree: 1 << 30}
			}
			if transport.SendNow(c, api.AppendReply(nil, h.Op, h.Seq, 0, nil, m), nil) != nil {
				return
			}
		}
	}()
	return l.Addr()
}

// TestSnapshotCache: readings share a view until it is nvmlMaxAge old;
// memory and process reads (fresh) always ask the server.
func TestSnapshotCache(t *testing.T) {
	var queries atomic.Uint64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Dial(ctx, nvmlServer(t, &queries), interpose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dev, err := s.Attach(0, interpose.Share{Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	old := nvmlMaxAge
	defer func() { nvmlMaxAge = old }()
	nvmlMaxAge = time.Hour
	for i, step := range []struct {
		fresh bool
		want  uint64 // the view's SessionUsed: which query answered
	}{
		{false, 1}, // nothing cached: asks
		{false, 1}, // a reading: the cached view
		{true, 2},  // memory: asks
		{false, 2}, // a reading: the view memory fetched
	} {
		v, r := snapshot(dev, step.fresh)
		if r != nvmlSuccess || v.SessionUsed != step.want {
			t.Errorf("step %d (fresh %v): view of query %d (%d); want query %d", i, step.fresh, v.SessionUsed, r, step.want)
		}
	}
	nvmlMaxAge = 0
	if v, _ := snapshot(dev, false); v.SessionUsed != 3 {
		t.Errorf("with no age allowed a reading used query %d, want a new one (3)", v.SessionUsed)
	}
}

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
