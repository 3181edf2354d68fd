package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
)

// frameHeaderSize is the length prefix of a framed frame: the body's length
// and the payload's, both u32 little-endian.
const frameHeaderSize = 8

// maxFrameLen is the largest length the u32 header fields can carry.
const maxFrameLen = 1<<32 - 1

// FramedConn frames a reliable byte stream (TCP, a Unix socket). Frames are
// [u32 body length][u32 payload length][body][payload].
//
// Sends are queued and written by one writer goroutine that drains the whole
// queue in one gathered write (writev) each time round, so a burst of
// asynchronous calls costs one system call, not one each, and a lone call
// goes out at once.
type FramedConn struct {
	rw   net.Conn
	info Info
	opts Options

	mu      sync.Mutex
	cond    sync.Cond // broadcast after each write, on close, and when the queue shrinks
	queue   []byte    // copied frames waiting to be written
	segs    []segment // what to write, in order: ranges of queue and callers' payloads
	queued  int       // bytes in segs
	filling uint64    // id of the batch being queued
	written uint64    // batches written: every batch with id < written is out
	err     error     // first write error or ErrClosed; sticky
	writing bool      // a goroutine holds the writer role
	handoff bool      // a TrySend left a batch (resume) for the writer goroutine to finish
	resume  batch
	kick    chan struct{}

	// Owned by whoever holds the writer role.
	spareQueue []byte
	spareSegs  []segment
	bufs       net.Buffers
	iov        [][]byte // tryWrite's view of bufs, bounded to what one writev takes

	zc *zeroCopier // MSG_ZEROCOPY for large payloads; nil: plain writes

	br     *growReader
	hdr    [frameHeaderSize]byte
	body   []byte
	remain int // unread payload bytes of the current frame
}

// segment is a range of the queue or, when ext is not nil, a caller's payload.
type segment struct {
	off, end int
	ext      []byte
}

var _ Conn = (*FramedConn)(nil)

// NewFramedConn frames c and starts its writer. The FramedConn owns c.
func NewFramedConn(c net.Conn, info Info, opts Options) *FramedConn {
	fc := &FramedConn{
		rw:   c,
		info: info,
		opts: opts.withDefaults(),
		kick: make(chan struct{}, 1),
		br:   &growReader{r: c},
	}
	fc.cond.L = &fc.mu
	fc.zc = newZeroCopier(c, fc.opts.ZeroCopy)
	go fc.writeLoop()
	return fc
}

// Info describes the connection.
func (c *FramedConn) Info() Info { return c.info }

// Send queues a frame; see Conn. The writer goroutine writes it.
func (c *FramedConn) Send(body, payload []byte) error {
	batch, large, err := c.enqueue(body, payload)
	if err != nil {
		return err
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	if large {
		return c.waitWritten(batch)
	}
	return nil
}

// SendNow queues a frame that someone will wait on and writes it before
// returning: from the caller's goroutine when no write is in flight (no
// hand-off to the writer, which costs a wake-up on another CPU), else by the
// write in flight, which drains the queue before it finishes.
func (c *FramedConn) SendNow(body, payload []byte) error {
	batch, _, err := c.enqueue(body, payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.writing {
		c.mu.Unlock()
		return c.waitWritten(batch)
	}
	c.writing = true
	c.mu.Unlock()
	c.drain()
	return c.waitWritten(batch)
}

var _ Urgent = (*FramedConn)(nil)

// enqueue adds a frame to the queue and returns the id of the batch it is in.
func (c *FramedConn) enqueue(body, payload []byte) (batch uint64, large bool, err error) {
	if err := c.checkSizes(body, payload); err != nil {
		return 0, false, err
	}
	large = len(payload) > c.opts.EagerLimit
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && c.queued >= c.opts.MaxQueued {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, false, c.err
	}
	c.appendFrame(body, payload, large)
	return c.filling, large, nil
}

func (c *FramedConn) checkSizes(body, payload []byte) error {
	if len(body) > c.opts.MaxBody {
		return &FrameError{What: "body", Size: len(body), Limit: c.opts.MaxBody}
	}
	// The header carries the payload's length as a u32: a longer payload
	// would announce a wrong length and desynchronise the stream.
	if uint64(len(payload)) > maxFrameLen {
		limit := uint64(maxFrameLen) // not a constant: int cannot hold it on 32-bit hosts
		return &FrameError{What: "payload", Size: len(payload), Limit: int(limit)}
	}
	return nil
}

// appendFrame queues a frame, its payload copied unless large. c.mu is held.
func (c *FramedConn) appendFrame(body, payload []byte, large bool) {
	start := len(c.queue)
	c.queue = binary.LittleEndian.AppendUint32(c.queue, uint32(len(body)))
	c.queue = binary.LittleEndian.AppendUint32(c.queue, uint32(len(payload)))
	c.queue = append(c.queue, body...)
	if !large {
		c.queue = append(c.queue, payload...)
	}
	if n := len(c.segs); n > 0 && c.segs[n-1].ext == nil && c.segs[n-1].end == start {
		c.segs[n-1].end = len(c.queue)
	} else {
		c.segs = append(c.segs, segment{off: start, end: len(c.queue)})
	}
	if large {
		c.segs = append(c.segs, segment{ext: payload})
	}
	c.queued += frameHeaderSize + len(body) + len(payload)
}

// TrySend queues a frame if it fits under MaxQueued now, copying its
// payload whatever its size, and returns ErrWouldBlock otherwise; see
// TrySender. A frame larger than MaxQueued never fits.
//
// When no write is in flight, the caller makes one non-blocking write of
// the queue itself (tryWrite), as SendNow does but without ever waiting in
// the socket: what the socket does not take at once is left to the writer
// goroutine, which resumes where that write stopped.
func (c *FramedConn) TrySend(body, payload []byte) error {
	if err := c.checkSizes(body, payload); err != nil {
		return err
	}
	size := frameHeaderSize + len(body) + len(payload)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	if c.queued+size > c.opts.MaxQueued {
		c.mu.Unlock()
		return ErrWouldBlock
	}
	c.appendFrame(body, payload, false)
	if c.writing {
		// The write in flight drains the queue before it gives up the role.
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	c.mu.Unlock()
	c.tryWrite()
	return nil
}

var _ TrySender = (*FramedConn)(nil)

// waitWritten waits until batch has been written, or the connection failed.
// An error alone is not enough to return: once a writer has taken the batch
// (filling > batch) it may still be reading a caller's payload in a write
// that Close has not yet aborted, so wait for that write to end too
// (written > batch). A batch not yet taken never will be after an error.
func (c *FramedConn) waitWritten(batch uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.written <= batch && (c.err == nil || c.filling > batch) {
		c.cond.Wait()
	}
	if c.written > batch {
		return nil
	}
	return c.err
}

// batch is what one write takes from the queue: the queue and segments it
// took over, and the buffers left to write (backed by c.bufs).
type batch struct {
	queue []byte
	segs  []segment
	bufs  net.Buffers
}

// writeLoop drains the queue whenever a Send kicks it and no other write is
// in flight, and finishes the batches TrySend hands it.
func (c *FramedConn) writeLoop() {
	for range c.kick {
		c.mu.Lock()
		resume, b := c.handoff, c.resume
		c.handoff, c.resume = false, batch{}
		if !resume {
			// A handoff is only made while c.err is nil, and its kick follows,
			// so once failed with none pending, none will come.
			if c.err != nil {
				c.mu.Unlock()
				return
			}
			if c.writing || len(c.segs) == 0 {
				c.mu.Unlock()
				continue
			}
			c.writing = true
		}
		failed := c.err != nil
		c.mu.Unlock()
		if resume && b.segs != nil {
			// The role came with the handoff. Write what the non-blocking
			// write left, unless the connection has failed since.
			var err error
			if !failed && len(b.bufs) > 0 {
				err = c.write(b.bufs)
			}
			c.finish(b, err)
		}
		c.drain()
		// Close's kick may have been the one dropped for the kick this
		// round consumed: look again rather than wait for another.
		c.mu.Lock()
		stop := c.err != nil && !c.handoff
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// drain writes batches until the queue is empty, then gives up the writer
// role. The caller has taken it (set c.writing).
func (c *FramedConn) drain() {
	for {
		b, ok := c.take()
		if !ok {
			return
		}
		c.finish(b, c.write(b.bufs))
	}
}

// write writes a batch, through the zero-copy sender when there is one.
func (c *FramedConn) write(bufs net.Buffers) error {
	if c.zc != nil {
		return c.zc.write(c.rw, bufs)
	}
	_, err := bufs.WriteTo(c.rw)
	return err
}

// ZeroCopyStats returns the connection's MSG_ZEROCOPY counts, nil when it
// does not use it.
func (c *FramedConn) ZeroCopyStats() *ZeroCopyStats {
	if c.zc == nil {
		return nil
	}
	return &c.zc.stats
}

// take takes the queue as the next batch to write; with nothing to write,
// or after a failure, it gives up the writer role and reports false.
func (c *FramedConn) take() (batch, bool) {
	c.mu.Lock()
	if len(c.segs) == 0 || c.err != nil {
		c.writing = false
		c.cond.Broadcast()
		c.mu.Unlock()
		return batch{}, false
	}
	b := batch{queue: c.queue, segs: c.segs}
	c.queue, c.segs = c.spareQueue[:0], c.spareSegs[:0]
	c.queued = 0
	c.filling++
	c.cond.Broadcast() // senders blocked on MaxQueued may go on
	c.mu.Unlock()

	bufs := c.bufs[:0]
	for _, s := range b.segs {
		if s.ext != nil {
			bufs = append(bufs, s.ext)
		} else {
			bufs = append(bufs, b.queue[s.off:s.end])
		}
	}
	c.bufs = bufs[:0]
	b.bufs = bufs
	return b, true
}

// finish records a batch as written (or failed with err) and recycles it.
func (c *FramedConn) finish(b batch, err error) {
	clear(b.segs) // drop references to callers' payloads
	clear(c.bufs[:cap(c.bufs)])

	c.mu.Lock()
	c.written++
	if err != nil && c.err == nil {
		c.err = err
	}
	c.spareQueue, c.spareSegs = b.queue, b.segs
	failed := c.err != nil
	c.cond.Broadcast()
	c.mu.Unlock()
	if failed {
		c.rw.Close()
	}
}

// tryWrite writes the queue with one non-blocking write and, unless that
// wrote everything and nothing more has queued, hands the rest and the
// writer role to the writer goroutine. The caller has taken the role.
func (c *FramedConn) tryWrite() {
	b, ok := c.take()
	if !ok {
		return
	}
	// At most maxTryWrite bytes: the queue may hold others' large payloads,
	// and copying megabytes into the socket is the writer's job, not that
	// of a caller who must not be held up.
	c.iov = c.iov[:0]
	for budget, i := maxTryWrite, 0; budget > 0 && i < len(b.bufs) && i < maxIOV; i++ {
		buf := b.bufs[i]
		if len(buf) > budget {
			buf = buf[:budget]
		}
		c.iov = append(c.iov, buf)
		budget -= len(buf)
	}
	n := writeNonblock(c.rw, c.iov)
	clear(c.iov)
	advance(&b.bufs, n)
	if len(b.bufs) == 0 {
		c.finish(b, nil)
		c.mu.Lock()
		if len(c.segs) == 0 || c.err != nil {
			c.writing = false
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		b = batch{} // more queued meanwhile: the writer goroutine takes it
	}
	c.mu.Lock()
	if c.err != nil {
		// Closed or failed: nobody will write the rest.
		c.mu.Unlock()
		if b.segs != nil {
			c.finish(b, nil)
		}
		c.mu.Lock()
		c.writing = false
		c.cond.Broadcast()
		c.mu.Unlock()
		return
	}
	c.handoff, c.resume = true, b
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a kick is pending; the writer will see the handoff
	}
}

const (
	// maxIOV bounds the buffers one writev takes (Linux's IOV_MAX).
	maxIOV = 1024
	// maxTryWrite bounds the bytes a TrySend caller writes itself.
	maxTryWrite = 256 << 10
)

// advance drops the first n bytes from bufs.
func advance(bufs *net.Buffers, n int) {
	for n > 0 && len(*bufs) > 0 {
		b := (*bufs)[0]
		if n < len(b) {
			(*bufs)[0] = b[n:]
			return
		}
		n -= len(b)
		*bufs = (*bufs)[1:]
	}
	for len(*bufs) > 0 && len((*bufs)[0]) == 0 {
		*bufs = (*bufs)[1:]
	}
}

// Recv reads the next frame's body; see Conn.
//
// A peer costs only the memory it has sent: the body buffer grows as its
// bytes arrive, at most doubling what has arrived, not to the length the
// header announces, and the read buffer starts small (see growReader).
func (c *FramedConn) Recv() ([]byte, int, error) {
	if c.remain > 0 {
		if err := c.br.discard(c.remain); err != nil {
			// The stream ended inside a payload: not a clean end.
			return nil, 0, c.readErr(noEOF(err))
		}
		c.remain = 0
	}
	if _, err := io.ReadFull(c.br, c.hdr[:]); err != nil {
		return nil, 0, c.readErr(err)
	}
	bodyLen := int(binary.LittleEndian.Uint32(c.hdr[0:]))
	payloadLen := int(binary.LittleEndian.Uint32(c.hdr[4:]))
	if bodyLen > c.opts.MaxBody {
		c.Close()
		return nil, 0, &FrameError{What: "body", Size: bodyLen, Limit: c.opts.MaxBody}
	}
	if payloadLen > c.opts.MaxPayload {
		c.Close()
		return nil, 0, &FrameError{What: "payload", Size: payloadLen, Limit: c.opts.MaxPayload}
	}
	if err := c.readBody(bodyLen); err != nil {
		return nil, 0, c.readErr(noEOF(err))
	}
	c.remain = payloadLen
	return c.body, payloadLen, nil
}

// minBody is the body buffer's first capacity: most bodies fit.
const minBody = 4 << 10

// readBody reads n bytes into c.body, growing it only as bytes arrive.
func (c *FramedConn) readBody(n int) error {
	if cap(c.body) >= n {
		c.body = c.body[:n]
		_, err := io.ReadFull(c.br, c.body)
		return err
	}
	c.body = c.body[:0]
	for len(c.body) < n {
		if len(c.body) == cap(c.body) {
			grown := make([]byte, len(c.body), min(n, max(minBody, 2*cap(c.body))))
			copy(grown, c.body)
			c.body = grown
		}
		k, err := c.br.Read(c.body[len(c.body):cap(c.body)])
		c.body = c.body[:len(c.body)+k]
		if err != nil && len(c.body) < n {
			return err
		}
	}
	return nil
}

// ReadPayload reads the current frame's payload; see Conn.
func (c *FramedConn) ReadPayload(dst []byte) error {
	if len(dst) != c.remain {
		return errors.New("transport: ReadPayload length does not match the frame's payload")
	}
	c.remain = 0
	if err := c.br.readFull(dst); err != nil {
		return c.readErr(noEOF(err))
	}
	return nil
}

// growReader buffers reads from r, starting with a small buffer that
// doubles, up to maxReadBuf, each time a read fills it: an idle connection
// holds 4 KiB, not the 256 KiB a burst of small frames wants. A read at
// least as large as the buffer, into an empty buffer, goes straight from
// r into the caller's memory, so large payloads are not copied twice.
type growReader struct {
	r      io.Reader
	buf    []byte
	rd, wr int
}

const (
	minReadBuf = 4 << 10
	maxReadBuf = 256 << 10
)

func (g *growReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if g.rd == g.wr {
		g.rd, g.wr = 0, 0
		if len(p) >= max(len(g.buf), minReadBuf) {
			return g.r.Read(p)
		}
		if g.buf == nil {
			g.buf = make([]byte, minReadBuf)
		}
		n, err := g.r.Read(g.buf)
		if n == 0 {
			return 0, err
		}
		g.wr = n
		if n == len(g.buf) && len(g.buf) < maxReadBuf {
			// Full: more is likely waiting. Read more at a time from now on.
			grown := make([]byte, 2*len(g.buf))
			copy(grown, g.buf[:n])
			g.buf = grown
		}
	}
	n := copy(p, g.buf[g.rd:g.wr])
	g.rd += n
	return n, nil
}

// readFull fills p, as io.ReadFull does: first with what is buffered,
// then, when at least minReadBuf bytes are still missing, straight from r.
// Through Read, the last part of a large payload (less than the buffer)
// was read into the buffer and copied out, and the read ran on into the
// next frame: up to two buffers' worth (512 KiB) of every large payload
// was copied twice instead of one, the read-ahead of its header.
func (g *growReader) readFull(p []byte) error {
	n := copy(p, g.buf[g.rd:g.wr])
	g.rd += n
	if len(p)-n < minReadBuf {
		_, err := io.ReadFull(g, p[n:])
		return zeroRead(n, err)
	}
	_, err := io.ReadFull(g.r, p[n:])
	return zeroRead(n, err)
}

// zeroRead turns the io.EOF of a read that found nothing after n bytes of
// a whole into io.ErrUnexpectedEOF when n is not zero, as io.ReadFull
// reports a stream that ends part way.
func zeroRead(n int, err error) error {
	if n > 0 && err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// discard skips n bytes.
func (g *growReader) discard(n int) error {
	k := min(n, g.wr-g.rd)
	g.rd += k
	n -= k
	if n == 0 {
		return nil
	}
	_, err := io.CopyN(io.Discard, g.r, int64(n))
	return err
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readErr reports ErrClosed for reads that failed because we closed.
func (c *FramedConn) readErr(err error) error {
	c.mu.Lock()
	closed := c.err == ErrClosed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return err
}

// Close closes the connection. Frames still queued are dropped.
func (c *FramedConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return c.rw.Close()
}
