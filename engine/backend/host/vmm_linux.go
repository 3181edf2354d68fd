package host

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/gpufabric/gpufabric/engine/api"
	"golang.org/x/sys/unix"
)

const vmmSupported = true

// physical is physical memory: a memfd, which reads as zeros when made and
// lives while it is open or mapped.
type physical struct {
	fd   int
	size uint64
}

func newPhysical(size uint64) (*physical, error) {
	fd, err := unix.MemfdCreate("gpufabric-physical", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, api.Errorf(api.ErrOutOfMemory, "physical memory: memfd: %v", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, api.Errorf(api.ErrOutOfMemory, "physical memory of %d bytes: %v", size, err)
	}
	return &physical{fd: fd, size: size}, nil
}

// Release closes the memfd: mappings keep its pages until they go.
func (p *physical) Release() error {
	if p.fd < 0 {
		return api.Errorf(api.ErrInvalidHandle, "physical memory released twice")
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}

// mapAt maps the memfd, from offset, over b, a page-aligned range of the
// arena.
//
// This and unmapFixed are the package's uses of unsafe besides
// view_unsafe.go: mmap with MAP_FIXED needs the address of b, which stays
// valid because the arena (an mmap of our own, never moved by Go) outlives
// every mapping in it; MAP_FIXED replaces exactly len(b) bytes of the
// arena and nothing else.
func (p *physical) mapAt(b []byte, offset uint64) error {
	if len(b) == 0 {
		return nil
	}
	_, err := unix.MmapPtr(p.fd, int64(offset), unsafe.Pointer(&b[0]), uintptr(len(b)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
	runtime.KeepAlive(b)
	if err != nil {
		return fmt.Errorf("host: map physical memory: %w", err)
	}
	return nil
}

// unmapFixed puts fresh private anonymous memory over b, as the arena has
// where nothing is mapped: it reads as zeros and costs nothing until touched.
func unmapFixed(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&b[0]), uintptr(len(b)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED)
	runtime.KeepAlive(b)
	if err != nil {
		return fmt.Errorf("host: unmap: %w", err)
	}
	return nil
}
