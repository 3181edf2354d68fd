package engine

import (
	"sync/atomic"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// The pitched and 2D/3D memory calls (cuMemcpy2D/3D, cuMemsetD2D*). Each is
// checked whole on the shard — every byte of the box against one of the
// session's allocations, a device-to-device box against itself — and then
// queued in order on the stream: as one operation per slice where the
// stream can do pitched slices (backend.StridedStream, StridedHostStream),
// else as one per row, with the operations every backend has.

// box is one operand of a strided call: Height rows of Width bytes, Pitch
// apart, in Depth slices Rows rows apart.
type box struct {
	api.Pitched
	width, height, depth uint64
}

// slice is the address of the first row of slice z.
func (b box) slice(z uint64) uint64 { return b.Ptr + z*b.Rows*b.Pitch }

// rows is the number of rows the box holds.
func (b box) rows() uint64 { return b.height * b.depth }

// offset is the byte offset of row i (counting slice after slice) from Ptr.
func (b box) offset(i uint64) uint64 {
	z, y := i/b.height, i%b.height
	return z*b.Rows*b.Pitch + y*b.Pitch
}

// extent checks the box's geometry and returns the bytes from its first
// byte to just past its last.
func (b box) extent(what string) (uint64, error) {
	if b.height > 1 && b.Pitch < b.width {
		return 0, api.Errorf(api.ErrInvalidValue, "%s pitch %d is less than the width %d", what, b.Pitch, b.width)
	}
	if b.depth > 1 && b.Rows < b.height {
		return 0, api.Errorf(api.ErrInvalidValue, "%s height %d is less than the copy's %d rows", what, b.Rows, b.height)
	}
	last, ok := mulAdd(b.depth-1, b.Rows, 0)
	if ok {
		last, ok = mulAdd(last, b.Pitch, 0)
	}
	if ok {
		last, ok = mulAdd(b.height-1, b.Pitch, last)
	}
	if ok {
		last, ok = mulAdd(1, b.width, last)
	}
	if !ok || b.Ptr+last < b.Ptr {
		return 0, api.Errorf(api.ErrInvalidValue, "%s box %d×%d×%d at %#x, pitch %d, overflows", what, b.width, b.height, b.depth, b.Ptr, b.Pitch)
	}
	return last, nil
}

// mulAdd is a*b+c, and false if that overflows.
func mulAdd(a, b, c uint64) (uint64, bool) {
	if a != 0 && b > (^uint64(0)-c)/a {
		return 0, false
	}
	return a*b + c, true
}

// checkBox checks a device operand against the session's allocations on d:
// the box must lie inside one of them.
func checkBox(d *sessionDevice, what string, b box) error {
	n, err := b.extent(what)
	if err != nil {
		return err
	}
	return inRange(d, what, b.Ptr, n)
}

// boxesOverlap reports whether any row of a meets a row of b. CUDA leaves
// overlapping 2D and 3D copies undefined; row by row, ours would depend on
// the order of the rows, so they are refused. Rows of a valid box come in
// increasing address order and do not overlap each other, so one merge
// walk over both decides.
func boxesOverlap(a, b box) bool {
	ea, _ := a.extent("")
	eb, _ := b.extent("")
	if a.Ptr+ea <= b.Ptr || b.Ptr+eb <= a.Ptr {
		return false
	}
	i, j := uint64(0), uint64(0)
	for i < a.rows() && j < b.rows() {
		sa, sb := a.Ptr+a.offset(i), b.Ptr+b.offset(j)
		switch {
		case sa+a.width <= sb:
			i++
		case sb+b.width <= sa:
			j++
		default:
			return true
		}
	}
	return false
}

// boxCost weighs a strided call in the fair queue: its bytes, as any copy,
// and a unit per 64 rows, which each cost a stream operation.
func boxCost(bytes, rows uint64) int { return costOf(int(min(bytes, 1<<40))) + int(rows/64) }

// packedSize is the bytes of a box's rows laid end to end, or false when
// the count passes what one call may carry.
func packedSize(width, height, depth uint64) (uint64, bool) {
	rows, ok := mulAdd(height, depth, 0)
	if !ok || rows > api.MaxBoxRows {
		return 0, false
	}
	n, ok := mulAdd(rows, width, 0)
	return n, ok
}

func (s *session) memcpy3D(h api.Header, m *api.Memcpy3D, pl payload) error {
	if m.Kind != api.Copy3DHtoD && pl.n > 0 {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "a %v that is not host-to-device carries no payload", h.Op))
		return nil
	}
	n, ok := packedSize(m.Width, m.Height, m.Depth)
	switch {
	case !ok:
		s.fail(h, api.Errorf(api.ErrInvalidValue, "copy of %d×%d×%d: more than %d rows in one call", m.Width, m.Height, m.Depth, api.MaxBoxRows))
		return nil
	case m.Kind == api.Copy3DHtoD:
		if uint64(pl.n) != n {
			s.fail(h, api.Errorf(api.ErrInvalidValue, "payload of %d bytes for a box of %d", pl.n, n))
			return nil
		}
		return s.copyBoxHtoD(h, m, pl)
	case n == 0:
		if m.Kind == api.Copy3DDtoH {
			h.Flags &^= api.FlagAsync
		}
		s.reply0(h)
		return nil
	case m.Kind == api.Copy3DDtoH:
		s.copyBoxDtoH(h, m, n)
	case m.Kind == api.Copy3DDtoD:
		s.copyBoxDtoD(h, m, n)
	default:
		s.fail(h, api.Errorf(api.ErrInvalidValue, "copy direction %d", m.Kind))
	}
	return nil
}

func dstBox(m *api.Memcpy3D) box { return box{m.Dst, m.Width, m.Height, m.Depth} }
func srcBox(m *api.Memcpy3D) box { return box{m.Src, m.Width, m.Height, m.Depth} }

func (s *session) copyBoxDtoD(h api.Header, m *api.Memcpy3D, n uint64) {
	d, err := s.deviceOf(m.Dst.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	dst, src := dstBox(m), srcBox(m)
	s.onStreamCost(h, m.Stream, boxCost(n, dst.rows()), func(st *streamObj) error {
		if err := sameDevice(st, d); err != nil {
			return err
		}
		if err := checkBox(d, "destination", dst); err != nil {
			return err
		}
		if err := checkBox(d, "source", src); err != nil {
			return err
		}
		if boxesOverlap(dst, src) {
			return api.Errorf(api.ErrInvalidValue, "source and destination rows overlap")
		}
		if ss, ok := st.bs.(backend.StridedStream); ok {
			for z := range dst.depth {
				if err := ss.CopyDtoD2D(dst.slice(z), dst.Pitch, src.slice(z), src.Pitch, m.Width, m.Height); err != nil {
					return err
				}
			}
			return nil
		}
		for i := range dst.rows() {
			if err := st.bs.CopyDtoD(dst.Ptr+dst.offset(i), src.Ptr+src.offset(i), m.Width); err != nil {
				return err
			}
		}
		return nil
	})
}

// readStaged reads a payload into a staging buffer under the session's
// staging budget, so that a client cannot make the server buffer without
// limit; release gives both back. An error means the connection must close.
func (s *session) readStaged(pl payload) (buf []byte, release func(), err error) {
	weight := min(int64(pl.n), s.srv.cfg.MaxStaging)
	if err := s.stage(weight); err != nil {
		return nil, nil, err
	}
	buf = getStaging(pl.n)
	release = func() {
		putStaging(buf)
		s.unstage(weight)
	}
	if err := pl.read(buf); err != nil {
		release()
		return nil, nil, err
	}
	return buf, release, nil
}

// copyBoxHtoD reads the packed rows into a staging buffer under the
// session's staging budget, as memcpyHtoD does, and queues a copy per row;
// the buffer goes back when the stream has taken the last of them.
func (s *session) copyBoxHtoD(h api.Header, m *api.Memcpy3D, pl payload) error {
	n := pl.n
	buf, release, err := s.readStaged(pl)
	if err != nil {
		return err
	}
	if n == 0 {
		release()
		s.reply0(h)
		return nil
	}
	d, derr := s.deviceOf(m.Dst.Ptr)
	if derr != nil {
		release()
		s.fail(h, derr)
		return nil
	}
	dst := dstBox(m)
	s.onStreamCost(h, m.Stream, boxCost(uint64(n), dst.rows()), func(st *streamObj) error {
		err := sameDevice(st, d)
		if err == nil {
			err = checkBox(d, "destination", dst)
		}
		if err != nil {
			release()
			return err
		}
		// One reference per row the stream holds, and one for this loop.
		var refs atomic.Int64
		refs.Store(1)
		done := func() {
			if refs.Add(-1) == 0 {
				release()
			}
		}
		defer done()
		if ss, ok := st.bs.(backend.StridedHostStream); ok {
			per := m.Width * m.Height
			for z := range dst.depth {
				refs.Add(1)
				if err := ss.CopyHtoD2D(dst.slice(z), dst.Pitch, buf[z*per:(z+1)*per], m.Width, done); err != nil {
					done()
					return err
				}
			}
			return nil
		}
		for i := range dst.rows() {
			refs.Add(1)
			row := buf[i*m.Width : (i+1)*m.Width]
			if err := st.bs.CopyHtoD(dst.Ptr+dst.offset(i), row, done); err != nil {
				done()
				return err
			}
		}
		return nil
	})
	return nil
}

// copyBoxDtoH gathers the rows into one staging buffer and answers with it
// once the stream has run them all; like memcpyDtoH it always answers.
func (s *session) copyBoxDtoH(h api.Header, m *api.Memcpy3D, n uint64) {
	h.Flags &^= api.FlagAsync
	if n > maxCopy {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "copy of %d bytes in one call; the limit is %d", n, maxCopy))
		return
	}
	d, err := s.deviceOf(m.Src.Ptr)
	if err != nil {
		s.fail(h, err)
		return
	}
	src := srcBox(m)
	s.withStream(h, m.Stream, func(st *streamObj) error {
		if err := sameDevice(st, d); err != nil {
			return err
		}
		if err := checkBox(d, "source", src); err != nil {
			return err
		}
		staged := getStaging(int(n))
		ss, strided := st.bs.(backend.StridedHostStream)
		pieces, per := src.rows(), m.Width
		if strided {
			pieces, per = src.depth, m.Width*m.Height
		}
		for i := range pieces {
			at := staged[i*per : (i+1)*per]
			sink := func(off uint64, b []byte) error {
				copy(at[off:], b)
				return nil
			}
			var err error
			if strided {
				err = ss.CopyDtoH2D(src.slice(i), src.Pitch, m.Width, m.Height, sink)
			} else {
				err = st.bs.CopyDtoH(src.Ptr+src.offset(i), m.Width, sink)
			}
			if err != nil {
				// Rows already queued still write into staged: it is
				// given back once they have run.
				if nerr := st.bs.Notify(func(error) { putStaging(staged) }); nerr != nil {
					putStaging(staged)
				}
				return err
			}
		}
		// The stream reaches the Notify after the last row: the rows are
		// in staged, or the error that stopped them is the answer.
		return st.bs.Notify(func(err error) {
			if err != nil {
				s.reply(h, err, nil, nil)
			} else {
				s.reply(h, nil, nil, staged)
			}
			putStaging(staged)
		})
	})
}

func (s *session) memset2D(h api.Header, m *api.Memset2D) {
	switch m.ElemSize {
	case 1, 2, 4:
	default:
		s.fail(h, api.Errorf(api.ErrInvalidValue, "memset element size %d", m.ElemSize))
		return
	}
	width, ok := mulAdd(m.Width, uint64(m.ElemSize), 0)
	if !ok || m.Height > api.MaxBoxRows {
		s.fail(h, api.Errorf(api.ErrInvalidValue, "memset of %d×%d elements: too large for one call", m.Width, m.Height))
		return
	}
	if width == 0 || m.Height == 0 {
		s.reply0(h)
		return
	}
	dst := box{api.Pitched{Ptr: m.Dst, Pitch: m.Pitch}, width, m.Height, 1}
	s.onStreamCost(h, m.Stream, boxCost(width*m.Height, m.Height), func(st *streamObj) error {
		if err := checkBox(st.dev, "destination", dst); err != nil {
			return err
		}
		if ss, ok := st.bs.(backend.StridedStream); ok {
			return ss.Memset2D(dst.Ptr, dst.Pitch, m.Value, int(m.ElemSize), m.Width, m.Height)
		}
		for i := range dst.rows() {
			if err := st.bs.Memset(dst.Ptr+dst.offset(i), m.Value, int(m.ElemSize), m.Width); err != nil {
				return err
			}
		}
		return nil
	})
}
