//go:build cgo

package cuda

import (
	"sync"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Host memory the engine shares with a client (its pinned regions) is
// registered with the driver, so that a copy between it and the device is
// one DMA straight from or into it, with no staging buffer: the driver's
// DMA engines read only page-locked memory, and from any other the driver
// itself stages through a buffer of its own.
//
// A registration is the process's, for every context (PORTABLE), while the
// engine asks per device: the first device registers, later ones count,
// and the last to let go unregisters.

var (
	_ backend.HostRegistrar    = (*Device)(nil)
	_ backend.RegisteredCopier = (*stream)(nil)
)

// hostRegs counts the devices holding each registered range, by its first
// byte.
var hostRegs = struct {
	mu sync.Mutex
	n  map[*byte]int
}{n: map[*byte]int{}}

// RegisterHost registers b with the driver (cuMemHostRegister). A memlock
// limit or a driver without it fails here, and the engine then copies
// through the staged path.
func (d *Device) RegisterHost(b []byte) error {
	if len(b) == 0 {
		return api.Errorf(api.ErrInvalidValue, "register 0 bytes of host memory")
	}
	hostRegs.mu.Lock()
	defer hostRegs.mu.Unlock()
	key := &b[0]
	if hostRegs.n[key] == 0 {
		if err := check(hostRegister(d.ctx, b), "cuMemHostRegister(%d bytes)", len(b)); err != nil {
			return err
		}
	}
	hostRegs.n[key]++
	return nil
}

// UnregisterHost undoes RegisterHost.
func (d *Device) UnregisterHost(b []byte) error {
	if len(b) == 0 {
		return api.Errorf(api.ErrInvalidValue, "unregister 0 bytes of host memory")
	}
	hostRegs.mu.Lock()
	defer hostRegs.mu.Unlock()
	key := &b[0]
	switch hostRegs.n[key] {
	case 0:
		return api.Errorf(api.ErrHostMemoryNotRegistered, "host memory at %p is not registered", key)
	case 1:
		delete(hostRegs.n, key)
		return check(hostUnregister(d.ctx, b), "cuMemHostUnregister(%d bytes)", len(b))
	}
	hostRegs.n[key]--
	return nil
}

// CopyHtoDRegistered queues one DMA from src, registered, to dst.
func (s *stream) CopyHtoDRegistered(dst backend.DevicePtr, src []byte) error {
	return s.run(func() error {
		return check(memcpyHtoDHost(s.d.ctx, dst, src, s.h), "cuMemcpyHtoDAsync(%#x, %d bytes from registered memory)", dst, len(src))
	})
}

// CopyDtoHRegistered queues one DMA from src into dst, registered.
func (s *stream) CopyDtoHRegistered(dst []byte, src backend.DevicePtr) error {
	return s.run(func() error {
		return check(memcpyDtoHHost(s.d.ctx, dst, src, s.h), "cuMemcpyDtoHAsync(%#x, %d bytes into registered memory)", src, len(dst))
	})
}
