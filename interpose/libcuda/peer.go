//go:build linux

package main

/*
#include "gf.h"
*/
import "C"

import (
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
)

// Peers. Devices of one server can copy to each other on it: cuMemcpyPeer
// (and a unified cuMemcpy between two devices) is served by the server in
// the stream's order. Devices of two servers (a run across servers) copy
// through this process (interpose.Stream.CopyPeer): cuDeviceCanAccessPeer
// says yes to both. Peer access is recorded as the
// driver records it, so enabling twice and disabling what was never
// enabled fail as they do there; what it would grant, kernels that read
// another device's memory directly, the server does not do: they fail
// with CUDA_ERROR_ILLEGAL_ADDRESS (host backend) or as the driver fails
// (cuda backend, where the server enables no peer access).

// CUresults of peer access.
const (
	errPeerAlreadyEnabled = 704 // CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED
	errPeerNotEnabled     = 705 // CUDA_ERROR_PEER_ACCESS_NOT_ENABLED
	errPeerUnsupported    = 217 // CUDA_ERROR_PEER_ACCESS_UNSUPPORTED
)

var peers struct {
	mu      sync.Mutex
	enabled map[[2]int]bool // (device of the current context, peer device)
}

//export gfgo_canAccessPeer
func gfgo_canAccessPeer(can *C.int, dev, peer C.int) C.CUresult {
	if can == nil {
		return res(api.ErrInvalidValue)
	}
	if _, r := device(dev); r != api.Success {
		return res(api.ErrInvalidDevice)
	}
	if _, r := device(peer); r != api.Success {
		return res(api.ErrInvalidDevice)
	}
	*can = 0
	if dev != peer {
		*can = 1
	}
	return 0
}

//export gfgo_peerAccess
func gfgo_peerAccess(dev, peer C.int, flags C.uint, enable C.int) C.CUresult {
	if dev < 0 || peer < 0 {
		return res(api.ErrInvalidContext)
	}
	if _, r := device(dev); r != api.Success {
		return res(r)
	}
	if _, r := device(peer); r != api.Success {
		return res(api.ErrInvalidContext)
	}
	if dev == peer {
		return errPeerUnsupported
	}
	if flags != 0 {
		return res(api.ErrInvalidValue)
	}
	key := [2]int{int(dev), int(peer)}
	peers.mu.Lock()
	defer peers.mu.Unlock()
	if peers.enabled == nil {
		peers.enabled = map[[2]int]bool{}
	}
	switch {
	case enable != 0 && peers.enabled[key]:
		return errPeerAlreadyEnabled
	case enable == 0 && !peers.enabled[key]:
		return errPeerNotEnabled
	}
	peers.enabled[key] = enable != 0
	return 0
}

//export gfgo_memcpyPeer
func gfgo_memcpyPeer(dev C.int, dst C.CUdeviceptr, dstDev C.int, src C.CUdeviceptr, srcDev C.int, n C.size_t, sh C.uintptr_t, async C.int) C.CUresult {
	if live.Load() == nil {
		return res(api.ErrNotInitialized)
	}
	if n == 0 {
		return 0
	}
	dd, r := device(dstDev)
	if r != api.Success {
		return res(api.ErrInvalidContext)
	}
	sd, r := device(srcDev)
	if r != api.Success {
		return res(api.ErrInvalidContext)
	}
	// The copy runs on the stream given, or on the source's default stream.
	st, r := callStream(sd, sh, dev, async)
	if r != api.Success {
		return res(r)
	}
	return ret(st.CopyPeer(interpose.DevicePtr(dst), dd, interpose.DevicePtr(src), sd, uint64(n), async == 0))
}
