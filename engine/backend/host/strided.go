package host

import (
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// Pitched slices as one stream operation each: a loop over the rows, where
// an operation per row would cost the queue's overhead per row
// (BenchmarkCopy2D in engine measures the difference).

var (
	_ backend.StridedStream     = (*stream)(nil)
	_ backend.StridedHostStream = (*stream)(nil)
)

// rows is the arena behind a slice of rows of width bytes, pitch apart.
func (d *Device) rows(ptr backend.DevicePtr, pitch, width, n uint64) ([]byte, error) {
	if n == 0 || width == 0 {
		return nil, nil
	}
	if n > 1 && pitch < width {
		return nil, api.Errorf(api.ErrInvalidValue, "pitch %d below the width %d", pitch, width)
	}
	span := (n-1)*pitch + width
	if (n-1) != 0 && span/(n-1) < pitch {
		return nil, api.Errorf(api.ErrInvalidValue, "slice of %d rows of pitch %d overflows", n, pitch)
	}
	return d.bytes(ptr, span)
}

func (s *stream) CopyHtoD2D(dst backend.DevicePtr, pitch uint64, src []byte, width uint64, done func()) error {
	if width == 0 || uint64(len(src))%width != 0 {
		return api.Errorf(api.ErrInvalidValue, "%d packed bytes are not rows of %d", len(src), width)
	}
	n := uint64(len(src)) / width
	b, err := s.dev.rows(dst, pitch, width, n)
	if err != nil {
		return err
	}
	return s.push(op{
		run: func() error {
			for i := range n {
				copy(b[i*pitch:i*pitch+width], src[i*width:])
			}
			done()
			return nil
		},
		drop: done,
	}, false)
}

func (s *stream) CopyDtoH2D(src backend.DevicePtr, pitch, width, n uint64, sink func(off uint64, b []byte) error) error {
	b, err := s.dev.rows(src, pitch, width, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		for i := range n {
			if err := sink(i*width, b[i*pitch:i*pitch+width]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *stream) CopyDtoD2D(dst backend.DevicePtr, dstPitch uint64, src backend.DevicePtr, srcPitch uint64, width, n uint64) error {
	to, err := s.dev.rows(dst, dstPitch, width, n)
	if err != nil {
		return err
	}
	from, err := s.dev.rows(src, srcPitch, width, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		for i := range n {
			copy(to[i*dstPitch:i*dstPitch+width], from[i*srcPitch:i*srcPitch+width])
		}
		return nil
	})
}

func (s *stream) Memset2D(dst backend.DevicePtr, pitch uint64, value uint32, elemSize int, count, n uint64) error {
	switch elemSize {
	case 1, 2, 4:
	default:
		return api.Errorf(api.ErrInvalidValue, "memset element size %d", elemSize)
	}
	if dst%uint64(elemSize) != 0 || pitch%uint64(elemSize) != 0 {
		return api.Errorf(api.ErrInvalidValue, "memset of %d-byte elements at %#x, pitch %d: unaligned", elemSize, dst, pitch)
	}
	width := count * uint64(elemSize)
	if width/uint64(elemSize) != count {
		return api.Errorf(api.ErrInvalidValue, "memset of %d elements overflows", count)
	}
	b, err := s.dev.rows(dst, pitch, width, n)
	if err != nil {
		return err
	}
	return s.enqueue(func() error {
		for i := range n {
			fill(b[i*pitch:i*pitch+width], value, elemSize)
		}
		return nil
	})
}
