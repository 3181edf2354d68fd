package cuda

// Host↔device copies go through pinned staging buffers: the driver can DMA
// only from page-locked memory, and a Go slice is not. A copy holds one or
// two buffers and walks its bytes a chunk (one buffer) at a time. With two
// buffers the host-side copy of chunk k+1 into (or out of) one buffer runs
// while the DMA engine moves chunk k through the other, so a large copy
// costs about max(memcpy, DMA) instead of their sum.
//
// The pipelines are written against stager so that their ordering, which
// is the whole difficulty, is tested without a GPU (pipeline_test.go).

// stager is what a staged copy needs from the device: its staging buffers
// and a stream that runs copies in order.
type stager interface {
	// nbuf is how many staging buffers the copy holds (1 or 2); buf(i) is
	// buffer i, all of one length.
	nbuf() int
	buf(i int) []byte
	// htod queues a copy of buf(i)[:n] to dst; dtoh queues a copy of the
	// n bytes at src into buf(i)[:n].
	htod(i int, dst uint64, n int) error
	dtoh(i int, src uint64, n int) error
	// mark records, after the copies queued so far, the point that must be
	// reached before buf(i) is touched again.
	mark(i int) error
	// wait blocks until buf(i)'s mark (if any) has been reached.
	wait(i int) error
}

// stageHtoD copies src to dst through st's buffers. It returns once the
// last chunk is queued: src is no longer needed then, but the DMA may still
// be running (each buffer's mark says when it is done).
func stageHtoD(st stager, dst uint64, src []byte) error {
	nb := st.nbuf()
	for i, off := 0, 0; off < len(src); i++ {
		k := i % nb
		if err := st.wait(k); err != nil {
			return err
		}
		n := copy(st.buf(k), src[off:])
		if err := st.htod(k, dst+uint64(off), n); err != nil {
			return err
		}
		if err := st.mark(k); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// stageDtoH copies n bytes at src to sink through st's buffers: chunk k is
// queued into buffer k%nbuf, and sink sees it, in order, once its DMA has
// finished; the buffer is then refilled with chunk k+nbuf. A sink error
// stops the copy and is returned. A zero-byte copy calls sink once with no
// bytes, so a caller waiting for the copy's pieces still hears of it.
func stageDtoH(st stager, src, n uint64, sink func(off uint64, b []byte) error) error {
	if n == 0 {
		return sink(0, nil)
	}
	nb := st.nbuf()
	size := uint64(len(st.buf(0)))
	type piece struct {
		off uint64
		n   int // 0: nothing queued in this buffer
	}
	pieces := make([]piece, nb)
	var next uint64 // offset of the next chunk to queue
	queue := func(k int) error {
		pieces[k] = piece{}
		if next >= n {
			return nil
		}
		// The buffer may still be the source of an earlier copy's DMA.
		if err := st.wait(k); err != nil {
			return err
		}
		m := int(min(size, n-next))
		if err := st.dtoh(k, src+next, m); err != nil {
			return err
		}
		if err := st.mark(k); err != nil {
			return err
		}
		pieces[k] = piece{next, m}
		next += uint64(m)
		return nil
	}
	for k := range nb {
		if err := queue(k); err != nil {
			return err
		}
	}
	for i := 0; ; i++ {
		k := i % nb
		p := pieces[k]
		if p.n == 0 {
			return nil
		}
		if err := st.wait(k); err != nil {
			return err
		}
		if err := sink(p.off, st.buf(k)[:p.n]); err != nil {
			return err
		}
		if err := queue(k); err != nil {
			return err
		}
	}
}
