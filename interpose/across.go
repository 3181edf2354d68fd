package interpose

import (
	"errors"
	"fmt"
	"sync"
)

// Devices of different servers. A program may hold devices of several
// servers, one session each; no server can reach another's memory, so a
// copy between them passes through the client: a device-to-host copy from
// the source's server into a client buffer, then a host-to-device copy
// from that buffer to the destination's server. The copy is cut into
// pieces of acrossChunk bytes, two buffers deep, so that the read of one
// piece overlaps the write of the one before: the bytes cross each link
// once, and both links are busy at once. The buffers are kept per
// session; over shared memory they are shared with the source's server,
// which writes each piece straight into them.

// acrossChunk is the size of a piece of a copy between servers: large
// enough that a piece's two round trips are small beside its transfer,
// small enough that the read and the write overlap for most of a copy.
const acrossChunk = 4 << 20

// ErrAddressOverlap is returned for devices of different servers whose
// device addresses may coincide: an address would not say which server
// holds it.
var ErrAddressOverlap = errors.New("device address ranges of two servers overlap")

// AddressRange is the range of device addresses the device hands out,
// [low, high); both 0 when its server cannot say (a real GPU's driver
// chooses its virtual addresses).
func (d *Device) AddressRange() (low, high uint64) { return d.info.AddrLow, d.info.AddrHigh }

// Session is the session the device belongs to.
func (d *Device) Session() *Session { return d.s }

// CheckAddressRanges refuses devices of different sessions whose address
// ranges meet. Devices whose range is unknown pass: the caller must then
// check each allocation (an address handed out twice is refused there).
func CheckAddressRanges(devs []*Device) error {
	for i, a := range devs {
		alo, ahi := a.AddressRange()
		for j, b := range devs[:i] {
			blo, bhi := b.AddressRange()
			if a.s == b.s || ahi == 0 || bhi == 0 {
				continue
			}
			if alo < bhi && blo < ahi {
				return fmt.Errorf("%w: device %d (%#x..%#x) and device %d (%#x..%#x): start their servers with distinct --address-slot values",
					ErrAddressOverlap, j, blo, bhi, i, alo, ahi)
			}
		}
	}
	return nil
}

// staging keeps, per source session, the client buffers of copies across
// servers. For a session over shared memory they are host memory shared
// with its server (AllocHost), into which the server's device-to-host copy
// writes in place, saving a copy of every piece; otherwise ordinary
// memory. They live as long as the session.
var staging struct {
	mu   sync.Mutex
	free map[*Session][]*HostMem
}

// stagingKeep is how many buffers a session keeps between copies: the two
// a copy uses, and two for a copy running at once on another thread.
const stagingKeep = 4

// takeStaging returns a buffer of acrossChunk bytes for copies out of s.
func takeStaging(s *Session) (*HostMem, error) {
	staging.mu.Lock()
	if l := staging.free[s]; len(l) > 0 {
		h := l[len(l)-1]
		staging.free[s] = l[:len(l)-1]
		staging.mu.Unlock()
		return h, nil
	}
	first := staging.free == nil || staging.free[s] == nil
	if staging.free == nil {
		staging.free = map[*Session][]*HostMem{}
	}
	if first {
		staging.free[s] = []*HostMem{}
		go func() {
			<-s.Done()
			staging.mu.Lock()
			l := staging.free[s]
			delete(staging.free, s)
			staging.mu.Unlock()
			for _, h := range l {
				h.Free()
			}
		}()
	}
	staging.mu.Unlock()
	return s.AllocHost(acrossChunk)
}

// giveStaging returns a buffer takeStaging gave.
func giveStaging(s *Session, h *HostMem) {
	staging.mu.Lock()
	if l, ok := staging.free[s]; ok && len(l) < stagingKeep && s.Err() == nil {
		staging.free[s] = append(l, h)
		staging.mu.Unlock()
		return
	}
	staging.mu.Unlock()
	h.Free()
}

// copyAcross copies n bytes from src, read on srcSt, to dst, written on
// dstSt, streams of devices of different sessions. The read waits for the
// work queued on srcSt before it, the write for the work queued on dstSt;
// it returns when the last byte is written, so work queued after it on
// either stream sees the copy done.
func copyAcross(dst DevicePtr, dstSt *Stream, src DevicePtr, srcSt *Stream, n uint64) error {
	s := srcSt.d.s
	type piece struct {
		h   *HostMem
		off uint64
	}
	free := make(chan *HostMem, 2)
	for range min(2, (n+acrossChunk-1)/acrossChunk) {
		h, err := takeStaging(s)
		if err != nil {
			close(free)
			for h := range free {
				giveStaging(s, h)
			}
			return err
		}
		free <- h
	}
	defer func() {
		close(free)
		for h := range free {
			giveStaging(s, h)
		}
	}()
	full := make(chan piece, 1)
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		for off := uint64(0); off < n; off += acrossChunk {
			var h *HostMem
			select {
			case h = <-free:
			case <-stop:
				return
			}
			if err := srcSt.copyDtoH(h.Bytes()[:min(acrossChunk, n-off)], src+DevicePtr(off), true); err != nil {
				free <- h
				readErr <- err
				return
			}
			select {
			case full <- piece{h, off}:
			case <-stop:
				free <- h
				return
			}
		}
	}()
	var writeErr error
	for p := range full {
		if writeErr == nil {
			if writeErr = dstSt.copyHtoD(dst+DevicePtr(p.off), p.h.Bytes()[:min(acrossChunk, n-p.off)], true); writeErr != nil {
				close(stop)
			}
		}
		free <- p.h
	}
	if writeErr != nil {
		return writeErr
	}
	select {
	case err := <-readErr:
		return err
	default:
		return nil
	}
}
