package host

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var _ backend.PeerCopier = (*stream)(nil)

// CopyPeer copies between the arenas of two emulated devices in the
// stream's order: both are host memory of this process.
func (s *stream) CopyPeer(dst backend.DevicePtr, dstDev backend.Device, src backend.DevicePtr, srcDev backend.Device, n uint64) error {
	dd, ok1 := dstDev.(*Device)
	sd, ok2 := srcDev.(*Device)
	if !ok1 || !ok2 {
		return api.Errorf(api.ErrInvalidValue, "peer copy with a device of another backend")
	}
	to, err := dd.bytes(dst, n)
	if err != nil {
		return err
	}
	from, err := sd.bytes(src, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		copy(to, from)
		return nil
	})
}
