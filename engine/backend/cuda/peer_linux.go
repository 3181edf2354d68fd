//go:build cgo

package cuda

/*
#include "cuda_shim.h"
*/
import "C"

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var _ backend.PeerCopier = (*stream)(nil)

// CopyPeer is cuMemcpyPeerAsync on the stream: the driver copies between
// the devices' primary contexts, over NVLink or PCIe as the machine has.
func (s *stream) CopyPeer(dst backend.DevicePtr, dstDev backend.Device, src backend.DevicePtr, srcDev backend.Device, n uint64) error {
	dd, ok1 := dstDev.(*Device)
	sd, ok2 := srcDev.(*Device)
	if !ok1 || !ok2 {
		return api.Errorf(api.ErrInvalidValue, "peer copy with a device of another backend")
	}
	return s.run(func() error {
		r := C.gf_memcpy_peer(C.gf_handle(s.d.ctx), C.uint64_t(dst), C.gf_handle(dd.ctx), C.uint64_t(src), C.gf_handle(sd.ctx), C.size_t(n), C.gf_handle(s.h))
		if r == C.GF_MISSING {
			return api.Errorf(api.ErrNotSupported, "cuMemcpyPeerAsync: the driver lacks it")
		}
		return check(res(r), "cuMemcpyPeerAsync(%#x, %#x, %d bytes)", dst, src, n)
	})
}
