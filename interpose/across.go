package interpose

import (
	"errors"
	"fmt"
)

// Devices of different servers. A program may hold devices of several
// servers, one session each; no server can reach another's memory, so a
// copy between them passes through the client: a device-to-host copy from
// the source's server into a client buffer, then a host-to-device copy
// from that buffer to the destination's server. The copy is cut into
// pieces of acrossChunk bytes, two buffers deep, so that the read of one
// piece overlaps the write of the one before: the bytes cross each link
// once, and both links are busy at once.

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

// copyAcross copies n bytes from src, read on srcSt, to dst, written on
// dstSt, streams of devices of different sessions. The read waits for the
// work queued on srcSt before it, the write for the work queued on dstSt;
// it returns when the last byte is written, so work queued after it on
// either stream sees the copy done.
func copyAcross(dst DevicePtr, dstSt *Stream, src DevicePtr, srcSt *Stream, n uint64) error {
	if n <= acrossChunk {
		buf := make([]byte, n)
		if err := srcSt.copyDtoH(buf, src, true); err != nil {
			return err
		}
		return dstSt.copyHtoD(dst, buf, true)
	}
	type piece struct {
		buf []byte
		off uint64
	}
	free := make(chan []byte, 2)
	for range 2 {
		free <- make([]byte, acrossChunk)
	}
	full := make(chan piece, 1)
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		for off := uint64(0); off < n; off += acrossChunk {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			buf = buf[:min(acrossChunk, n-off)]
			if err := srcSt.copyDtoH(buf, src+DevicePtr(off), true); err != nil {
				readErr <- err
				return
			}
			select {
			case full <- piece{buf, off}:
			case <-stop:
				return
			}
		}
	}()
	var writeErr error
	for p := range full {
		if writeErr == nil {
			if writeErr = dstSt.copyHtoD(dst+DevicePtr(p.off), p.buf, true); writeErr != nil {
				close(stop)
			}
		}
		free <- p.buf[:cap(p.buf)]
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
