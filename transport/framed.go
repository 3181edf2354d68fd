package transport

import (
	"bufio"
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
	kick    chan struct{}

	// Owned by whoever holds the writer role.
	spareQueue []byte
	spareSegs  []segment
	bufs       net.Buffers

	br     *bufio.Reader
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
		br:   bufio.NewReaderSize(c, 256<<10),
	}
	fc.cond.L = &fc.mu
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
	if len(body) > c.opts.MaxBody {
		return 0, false, &FrameError{What: "body", Size: len(body), Limit: c.opts.MaxBody}
	}
	// The header carries the payload's length as a u32: a longer payload
	// would announce a wrong length and desynchronise the stream.
	if uint64(len(payload)) > maxFrameLen {
		limit := uint64(maxFrameLen) // not a constant: int cannot hold it on 32-bit hosts
		return 0, false, &FrameError{What: "payload", Size: len(payload), Limit: int(limit)}
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
	return c.filling, large, nil
}

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

// writeLoop drains the queue whenever a Send kicks it and no other write is
// in flight.
func (c *FramedConn) writeLoop() {
	for range c.kick {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		if c.writing || len(c.segs) == 0 {
			c.mu.Unlock()
			continue
		}
		c.writing = true
		c.mu.Unlock()
		c.drain()
	}
}

// drain writes batches until the queue is empty, then gives up the writer
// role. The caller has taken it (set c.writing).
func (c *FramedConn) drain() {
	for {
		c.mu.Lock()
		if len(c.segs) == 0 || c.err != nil {
			c.writing = false
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		queue, segs := c.queue, c.segs
		c.queue, c.segs = c.spareQueue[:0], c.spareSegs[:0]
		c.queued = 0
		c.filling++
		c.cond.Broadcast() // senders blocked on MaxQueued may go on
		c.mu.Unlock()

		bufs := c.bufs[:0]
		for _, s := range segs {
			if s.ext != nil {
				bufs = append(bufs, s.ext)
			} else {
				bufs = append(bufs, queue[s.off:s.end])
			}
		}
		c.bufs = bufs[:0]
		_, err := bufs.WriteTo(c.rw)
		clear(segs) // drop references to callers' payloads
		clear(c.bufs[:cap(c.bufs)])

		c.mu.Lock()
		c.written++
		if err != nil && c.err == nil {
			c.err = err
		}
		c.spareQueue, c.spareSegs = queue, segs
		failed := c.err != nil
		c.cond.Broadcast()
		c.mu.Unlock()
		if failed {
			c.rw.Close()
		}
	}
}

// Recv reads the next frame's body; see Conn.
func (c *FramedConn) Recv() ([]byte, int, error) {
	if c.remain > 0 {
		if _, err := c.br.Discard(c.remain); err != nil {
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
	if cap(c.body) < bodyLen {
		c.body = make([]byte, bodyLen, max(bodyLen, 4096))
	}
	c.body = c.body[:bodyLen]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return nil, 0, c.readErr(noEOF(err))
	}
	c.remain = payloadLen
	return c.body, payloadLen, nil
}

// ReadPayload reads the current frame's payload; see Conn.
func (c *FramedConn) ReadPayload(dst []byte) error {
	if len(dst) != c.remain {
		return errors.New("transport: ReadPayload length does not match the frame's payload")
	}
	c.remain = 0
	if _, err := io.ReadFull(c.br, dst); err != nil {
		return c.readErr(noEOF(err))
	}
	return nil
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
