//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// Conn is one shared-memory connection. See package transport for the
// contract: Send may be called from many goroutines at once, Recv and
// ReadPayload from one.
type Conn struct {
	// What both directions read: set up once, or written once at the end.
	info      transport.Info
	opts      Options
	geo       geometry
	eager     uint64 // largest payload sent inline in its frame record
	maxRecord uint64 // largest record; a quarter of the ring, so one always fits
	chunkMax  uint64 // largest slab chunk: a quarter of the slab, so the consumer copies out while the producer copies in

	sock      *net.UnixConn // liveness, and host regions' files (hostmem_linux.go)
	reg       *region
	watchDone chan struct{}
	shareMu   sync.Mutex // orders ShareRegion's records
	files     heldFiles  // host regions' files the peer passed

	closed    atomic.Bool // Close was called or the connection failed
	peerGone  atomic.Bool // the peer's end of the socket closed
	closeOnce sync.Once

	// The producer's and the consumer's state are written on every frame,
	// often by goroutines on different cores (a server replies from its
	// shards while its reader receives): each group keeps to its own cache
	// lines, away from the other and from what both read.
	_ linePad

	// Producer state: the direction we write.
	sendMu   sync.Mutex
	tx       channel
	head     uint64 // ring bytes written
	slabHead uint64 // slab bytes allocated
	// The consumer's counters as last read: free space is computed from
	// these and they are reloaded only when it seems short, so a producer
	// ahead of its consumer does not pull the consumer's cache line over
	// on every frame.
	tailSeen, slabTailSeen uint64
	seq                    uint32        // next record's sequence number, from 1
	sendSleeps             atomic.Uint64 // times the producer slept on the futex
	_                      linePad

	// Consumer state: the direction we read. Recv and ReadPayload take no
	// lock: they run on one goroutine at a time (the transport.Conn
	// contract), and Close leaves the region readable (see Close).
	rx            channel
	tail          uint64 // ring bytes consumed
	tailShown     uint64 // ring bytes consumed as last published to the producer
	lazyTail      uint64 // how far tail may run ahead of tailShown
	slabTail      uint64 // slab bytes freed (and published)
	rseq          uint32 // sequence number the next record must carry, from 1
	body          []byte
	inFrame       bool          // a frame's stream is not fully consumed
	streamLeft    uint64        // unconsumed bytes of the frame's body+payload stream
	inPos         uint64        // ring offset of the next inline byte
	inLeft        uint64        // inline bytes not yet consumed
	recEnd        uint64        // tail after the frame record
	chunkOwed     uint64        // stream bytes not yet announced by a chunk record
	chunkPos      uint64        // slab offset of the current chunk's next byte
	chunkLeft     uint64        // bytes of the current chunk not yet consumed
	chunkSize     uint64        // the current chunk's length, freed when it is done
	chunkEnd      uint64        // tail after the current chunk's record
	recvSleeps    atomic.Uint64 // times the consumer slept on the futex
	pollAfterWake bool          // a wake-up with nothing to read is a Soon: poll (client side only)
	due           atomic.Int64  // when the next record is expected, on the package clock; 0: no hint (see ExpectIn)
	dueSleeps     atomic.Uint64 // times the consumer slept toward a due time
	soonPolls     atomic.Uint64 // times the consumer polled after a wake-up with nothing to read (Soon)
	dueMisses     atomic.Uint64 // times the record came after the due time's poll window
}

// linePad keeps what precedes and what follows it off a shared cache line.
type linePad [64]byte

var _ transport.Conn = (*Conn)(nil)

// channel is one direction of the region, as seen by either side.
type channel struct {
	data                   []byte // the ring
	slab                   []byte
	tail, slabTail         *atomic.Uint64
	dataSeq, dataWaiters   *atomic.Uint32
	spaceSeq, spaceWaiters *atomic.Uint32
	_                      struct{}
}

func newChannel(r *region, g geometry, dir int) channel {
	ctl := offControl + dir*controlSize
	ro, so := g.ringOff(dir), g.slabOff(dir)
	return channel{
		data:         r.mem[ro : ro+g.ring : ro+g.ring],
		slab:         r.mem[so : so+g.slab : so+g.slab],
		tail:         r.u64(ctl + ctlTail),
		slabTail:     r.u64(ctl + ctlSlabTail),
		dataSeq:      r.u32(ctl + ctlDataSeq),
		dataWaiters:  r.u32(ctl + ctlDataWaiters),
		spaceSeq:     r.u32(ctl + ctlSpaceSeq),
		spaceWaiters: r.u32(ctl + ctlSpaceWaiters),
	}
}

// newConn starts a connection over a mapped region. The Conn owns sock and reg.
func newConn(sock *net.UnixConn, reg *region, g geometry, server bool, opts Options, info transport.Info) *Conn {
	opts = opts.withDefaults()
	c := &Conn{
		info:      info,
		opts:      opts,
		geo:       g,
		maxRecord: g.ring / 4,
		chunkMax:  min(g.slab/4, maxChunkLen),
		sock:      sock,
		reg:       reg,
		watchDone: make(chan struct{}),
		seq:       1,
		rseq:      1,
	}
	c.eager = min(uint64(opts.EagerLimit), c.maxRecord/2)
	// Only the server announces records (Soon): a client cannot make the
	// server's reader poll by waking it.
	c.pollAfterWake = !server
	c.lazyTail = min(g.ring/8, 16<<10)
	txDir, rxDir := dirCall, dirReply
	if server {
		txDir, rxDir = dirReply, dirCall
	}
	c.tx = newChannel(reg, g, txDir)
	c.rx = newChannel(reg, g, rxDir)
	// A backstop for a Conn dropped without Close after its peer went away
	// (while the peer lives, the watcher keeps the Conn reachable).
	runtime.AddCleanup(c, func(r *region) { r.unmap() }, reg)
	go c.watch()
	return c
}

// Info describes the connection.
func (c *Conn) Info() transport.Info { return c.info }

// errPeerGone is returned by Send once the peer has closed or died.
var errPeerGone = fmt.Errorf("shm: peer closed the connection: %w", transport.ErrClosed)

// watch waits on the socket, which after the handshake carries only host
// regions' files (see ShareRegion): it returns when the peer closes or
// dies (or we close), and wakes our waiters.
func (c *Conn) watch() {
	defer close(c.watchDone)
	c.readSocket()
	c.closeHeld()
	c.peerGone.Store(true)
	c.wakeLocal()
}

// wakeLocal wakes whatever of ours sleeps on the region: the receiver on
// the incoming data word, a sender on the outgoing space word. Both check
// closed and peerGone when they wake.
func (c *Conn) wakeLocal() {
	c.rx.dataSeq.Add(1)
	futexWake(c.rx.dataSeq)
	c.tx.spaceSeq.Add(1)
	futexWake(c.tx.spaceSeq)
}

// shutdown marks the connection closed, tells the peer (its watcher sees the
// socket close) and wakes our own waiters. It takes no lock, so a failing
// Send or Recv may call it.
func (c *Conn) shutdown() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.sock.Close()
		c.wakeLocal()
	})
}

// corrupt fails the connection with an error matching ErrCorrupt; on a
// connection already closed, where a receive may be reading the zeros a
// retired region leaves, with transport.ErrClosed.
func (c *Conn) corrupt(format string, args ...any) error {
	if c.closed.Load() {
		return transport.ErrClosed
	}
	c.shutdown()
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// Close closes the connection: blocked calls return transport.ErrClosed,
// the peer's return io.EOF or an error matching transport.ErrClosed. Close
// frees the region's memory; call it after a failure too.
//
// A receive may be running: receives take no lock, so Close retires the
// region (see region.retire) rather than unmap it. A receive that reads
// the zeros left in its place finds closed set, as Close set it first,
// and fails with transport.ErrClosed; one about to sleep finds its futex
// word moved on by shutdown's wake.
func (c *Conn) Close() error {
	c.shutdown()
	<-c.watchDone
	c.sendMu.Lock()
	c.reg.retire()
	c.tx = channel{}
	c.sendMu.Unlock()
	return nil
}

// wake wakes the side sleeping on seq if it said it sleeps; the common
// case, nobody sleeping, costs one load and no system call.
func wake(waiters, seq *atomic.Uint32) {
	if waiters.Load() != 0 && waiters.Swap(0) != 0 {
		seq.Add(1)
		futexWake(seq)
	}
}

// await returns when ready reports true or fails, or when the connection
// is closed (transport.ErrClosed) or the peer gone (gone). It polls first,
// then sleeps on seq, having set waiters so that the other side wakes it.
// The flag is set before the last look at ready, and the other side
// publishes before it looks at the flag (both sequentially consistent):
// either we see its update or it sees the flag.
func (c *Conn) await(seq, waiters *atomic.Uint32, sleeps *atomic.Uint64, gone error, ready func() (bool, error)) error {
	if c.opts.Spin > 0 {
		if ok, err := c.spin(ready); ok || err != nil {
			return err
		}
	}
	for {
		waiters.Store(1)
		s := seq.Load()
		if ok, err := ready(); ok || err != nil {
			waiters.Store(0)
			return err
		}
		if c.closed.Load() {
			return transport.ErrClosed
		}
		if c.peerGone.Load() {
			// The peer's last stores preceded its socket's closing: one more look.
			if ok, err := ready(); ok || err != nil {
				return err
			}
			return gone
		}
		sleeps.Add(1)
		futexWait(seq, s)
		if c.pollAfterWake && seq == c.rx.dataSeq && seq.Load() != s {
			// Woken with nothing to read: the peer said a record is coming
			// soon (Soon). Poll for it rather than go back to sleep.
			c.soonPolls.Add(1)
			if ok, err := c.pollUntil(clock()+soonWindow, ready); ok || err != nil {
				return err
			}
		}
	}
}

// spin polls ready, yielding the processor every yieldEvery polls, until
// it has yielded c.opts.Spin times. It reports whether ready did, or the
// error that ended the wait. The budget is counted in yields, not time: on
// a busy machine each yield runs other goroutines, so the wait stretches
// while it costs little, and the waiter is still there, awake, when its
// answer comes; on an idle one it ends within 100-150 µs.
func (c *Conn) spin(ready func() (bool, error)) (bool, error) {
	for yields := 0; ; {
		for range yieldEvery {
			if ok, err := ready(); ok || err != nil {
				return ok, err
			}
		}
		if c.closed.Load() {
			return false, transport.ErrClosed
		}
		if yields++; yields > c.opts.Spin {
			return false, nil
		}
		runtime.Gosched()
	}
}

// ExpectIn tells the receiving side that the next record it waits for is
// due about d from now: the reply to a call whose duration the caller can
// predict, such as a large copy the server makes in place. A receive that
// must wait for it then sleeps, on a timed futex wait, until dueMargin
// before the due time, and polls from there, so that the record is seen
// as it lands instead of after a futex wake-up of a thread whose vCPU has
// gone idle (35-200 µs on a VM, measured). The poll is bounded: it ends
// max(dueMargin, d/8) after the due time, and the receive then sleeps as
// any other does, to be woken by the producer. A record that comes early
// wakes the sleeper as usual.
//
// The hint is for the next wait only, taken when that wait begins; one
// set while a receive is already waiting applies to the one after, and
// one for a record that needed no wait is left for the next wait, which
// it bounds the same way. It may be called from any goroutine.
func (c *Conn) ExpectIn(d time.Duration) {
	if d <= 0 {
		return
	}
	c.due.Store(int64(clock() + d))
}

// dueMargin is how long before a due time a receive stops sleeping and
// starts to poll: more than a timed wait overshoots on this kind of
// machine (the timer slack, 50 µs, and the wake-up of an idle vCPU, up to
// some 200 µs), so the poller is awake when the record lands.
const dueMargin = 300 * time.Microsecond

// clockBase anchors clock, the package's monotonic clock.
var clockBase = time.Now()

// clock is the time since clockBase, from the monotonic clock.
func clock() time.Duration { return time.Since(clockBase) }

// awaitDue waits for ready toward due (on clock): it sleeps until
// dueMargin before it, woken early by the producer if the record comes,
// then polls until max(dueMargin, an eighth of the wait) after it. It
// reports whether ready did, or the error that ended the wait; neither
// means the poll window passed, or the peer is gone, and the caller goes
// on to await, which handles both.
func (c *Conn) awaitDue(due time.Duration, ready func() (bool, error)) (bool, error) {
	now := clock()
	if due <= now {
		return false, nil
	}
	end := due + max(dueMargin, (due-now)/8)
	seq, waiters := c.rx.dataSeq, c.rx.dataWaiters
	for left := due - dueMargin - now; left > 0; left = due - dueMargin - clock() {
		waiters.Store(1)
		s := seq.Load()
		if ok, err := ready(); ok || err != nil {
			waiters.Store(0)
			return ok, err
		}
		if c.closed.Load() {
			return false, transport.ErrClosed
		}
		if c.peerGone.Load() {
			return false, nil
		}
		c.dueSleeps.Add(1)
		futexWaitFor(seq, s, left)
		if seq.Load() != s {
			// Woken with nothing to read: a Soon, the record is close.
			end = max(end, clock()+soonWindow)
			break
		}
	}
	// Polling from here: a producer that sees no waiter makes no system call.
	waiters.Store(0)
	ok, err := c.pollUntil(end, ready)
	if !ok && err == nil {
		c.dueMisses.Add(1)
	}
	return ok, err
}

// pollUntil polls ready until end (on clock), yielding every yieldEvery
// polls, to other goroutines and then to other threads of the machine
// (sched_yield). It reports whether ready did, or the error that ended
// the wait. The thread yields too because a poll that waits for a copy
// runs while that copy does: on two vCPUs with a third thread runnable, a
// poller that only yielded to goroutines pushed that thread onto the
// copy's vCPU, and pinned 64 MiB copies against a server in its own
// process fell from 0.92-0.97x one memcpy to 0.80-0.87x (2026-12-03,
// load 1.5-1.9).
func (c *Conn) pollUntil(end time.Duration, ready func() (bool, error)) (bool, error) {
	for {
		for range yieldEvery {
			if ok, err := ready(); ok || err != nil {
				return ok, err
			}
		}
		if c.closed.Load() {
			return false, transport.ErrClosed
		}
		if clock() > end {
			return false, nil
		}
		runtime.Gosched()
		osYield()
	}
}

// Soon wakes the peer's receive if it sleeps, so that it polls for the
// next record (for up to soonWindow) instead of sleeping until the record
// wakes it: for a sender that knows its next record is due in about the
// time a sleeping thread takes to wake (35-200 µs on a VM whose vCPU has
// gone idle), such as a server finishing a large copy whose reply follows.
// Only a server's Soon makes its peer poll: a client's receive polls
// after such a wake-up, a server's goes back to sleep, so that no client
// can make the server poll. It never waits: while another goroutine sends, whose
// record wakes the receive anyway, it does nothing.
func (c *Conn) Soon() {
	if !c.sendMu.TryLock() {
		return
	}
	defer c.sendMu.Unlock()
	if c.closed.Load() || c.tx.dataWaiters == nil {
		return
	}
	wake(c.tx.dataWaiters, c.tx.dataSeq)
}

// soonWindow bounds the poll after a Soon: longer than a sleeping thread
// takes to wake, so that the record lands while the receive polls even
// when the Soon came early.
const soonWindow = time.Millisecond

// yieldEvery is how many polls a waiter makes between yields (and looks at
// the clock). A yield takes the scheduler's lock, so yielding often slows
// every spinning goroutine; yielding never would starve a goroutine that
// shares the waiter's processor.
const yieldEvery = 256

// putHeader writes a record header but for its commit word.
func putHeader(rec []byte, length uint64, kind uint16, bodyLen, n uint64) {
	le := binary.LittleEndian
	le.PutUint32(rec[recOffLen:], uint32(length))
	le.PutUint16(rec[recOffKind:], kind)
	le.PutUint16(rec[recOffKind+2:], 0)
	le.PutUint32(rec[recOffBody:], uint32(bodyLen))
	le.PutUint64(rec[recOffN:], n)
}

// Send queues one frame; see transport.Conn. Every payload is copied
// before Send returns: a small one into the ring with the body, a large one
// into the slab, chunk by chunk as the consumer frees room.
func (c *Conn) Send(body, payload []byte) error {
	if len(body) > c.opts.MaxBody {
		return &transport.FrameError{What: "body", Size: len(body), Limit: c.opts.MaxBody}
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.closed.Load() {
		return transport.ErrClosed
	}
	if c.peerGone.Load() {
		return errPeerGone
	}
	return c.send(body, payload)
}

// inline is how much of a frame's body+payload stream rides in its frame
// record; the rest goes through the slab.
func (c *Conn) inline(nb, np uint64) uint64 {
	switch {
	case np <= c.eager && recHeader+nb+np <= c.maxRecord:
		return nb + np
	case recHeader+nb <= c.maxRecord:
		return nb
	}
	return 0
}

// send writes a frame, waiting for room as it goes. c.sendMu is held.
func (c *Conn) send(body, payload []byte) error {
	nb, np := uint64(len(body)), uint64(len(payload))
	inline := c.inline(nb, np)
	length := recHeader + inline
	pos, err := c.reserve(length)
	if err != nil {
		return err
	}
	rec := c.tx.data[pos : pos+length]
	putHeader(rec, length, kindFrame, nb, np)
	n := copy(rec[recHeader:], body[:min(nb, inline)])
	copy(rec[recHeader+n:], payload[:inline-uint64(n)])
	c.commit(pos, length)
	if inline == nb+np {
		return nil
	}
	if inline < nb {
		if err := c.stream(body[inline:]); err != nil {
			return err
		}
	}
	return c.stream(payload)
}

// TrySend sends a frame if the ring, and the slab for what does not fit
// in the ring, have room for all of it now, and otherwise returns
// transport.ErrWouldBlock having written nothing; see transport.TrySender.
// It returns ErrWouldBlock too while another Send holds the producer side
// (it may be waiting for room), and always for a frame that needs more
// than the slab holds. It never spins or sleeps.
func (c *Conn) TrySend(body, payload []byte) error {
	if len(body) > c.opts.MaxBody {
		return &transport.FrameError{What: "body", Size: len(body), Limit: c.opts.MaxBody}
	}
	if !c.sendMu.TryLock() {
		return transport.ErrWouldBlock
	}
	defer c.sendMu.Unlock()
	if c.closed.Load() {
		return transport.ErrClosed
	}
	if c.peerGone.Load() {
		return errPeerGone
	}
	ok, err := c.fits(uint64(len(body)), uint64(len(payload)))
	if err != nil {
		return err
	}
	if !ok {
		return transport.ErrWouldBlock
	}
	// The room is there and only we produce: send cannot wait.
	return c.send(body, payload)
}

var _ transport.TrySender = (*Conn)(nil)

// fits reports whether a frame of nb body and np payload bytes can be
// written now without waiting. It looks first with the consumer's tails
// as last seen, and reloads them only when that says no, as reserve does,
// so as not to pull the consumer's cache line over on every frame.
// c.sendMu is held.
func (c *Conn) fits(nb, np uint64) (bool, error) {
	if c.fitsWith(nb, np, c.tailSeen, c.slabTailSeen) {
		return true, nil
	}
	tail := c.tx.tail.Load()
	if c.head-tail > c.geo.ring {
		return false, c.corrupt("ring tail %d is not within %d bytes behind head %d", tail, c.geo.ring, c.head)
	}
	slabTail := c.tx.slabTail.Load()
	if c.slabHead-slabTail > c.geo.slab {
		return false, c.corrupt("slab tail %d is not within %d bytes behind slab head %d", slabTail, c.geo.slab, c.slabHead)
	}
	c.tailSeen, c.slabTailSeen = tail, slabTail
	return c.fitsWith(nb, np, tail, slabTail), nil
}

// fitsWith walks the records send would write for the frame (the frame
// record, then a chunk record per slab chunk, each with the padding
// reserve would add before it), checking each as reserve and allocSlab
// would against the consumer's tails tail and slabTail.
func (c *Conn) fitsWith(nb, np, tail, slabTail uint64) bool {
	ring, slab := c.geo.ring, c.geo.slab
	in := c.inline(nb, np)
	// send streams what of the body is not inline, then the payload, each
	// in chunks of its own.
	var streams [2]uint64
	if in < nb+np {
		streams = [2]uint64{nb - min(in, nb), np}
	}
	if streams[0]+streams[1] > slab-(c.slabHead-slabTail) {
		return false
	}
	head := c.head
	record := func(n uint64) bool {
		pos := head & (ring - 1)
		var pad uint64
		if ring-pos < alignRec(n) {
			pad = ring - pos
		}
		if ring-(head-tail) < alignRec(n)+recAlign+pad {
			return false
		}
		head += pad + alignRec(n)
		return true
	}
	if !record(recHeader + in) {
		return false
	}
	slabHead := c.slabHead
	for _, left := range streams {
		for left > 0 {
			n := min(left, c.chunkMax, slab-slabHead%slab)
			if !record(recChunk) {
				return false
			}
			slabHead += n
			left -= n
		}
	}
	return true
}

// SendNow is Send: a shared-memory Send has published its frame when it
// returns, with no writer to hand it to.
func (c *Conn) SendNow(body, payload []byte) error { return c.Send(body, payload) }

var _ transport.Urgent = (*Conn)(nil)

// commit hands the consumer the record of length bytes written at ring
// offset pos, and wakes the consumer if it sleeps. The slot after the
// record, where the consumer polls next, is free space (reserve saw to
// it), which the consumer cleared before handing it back.
func (c *Conn) commit(pos, length uint64) {
	c.head += alignRec(length)
	commitWord(c.tx.data[pos:]).Store(c.seq)
	c.seq = nextSeq(c.seq)
	wake(c.tx.dataWaiters, c.tx.dataSeq)
}

// stream copies p into the slab in chunks, each announced by a chunk record.
func (c *Conn) stream(p []byte) error {
	for len(p) > 0 {
		if c.closed.Load() {
			return transport.ErrClosed
		}
		off, n, err := c.allocSlab(uint64(len(p)))
		if err != nil {
			return err
		}
		copy(c.tx.slab[off:off+n], p[:n])
		pos, err := c.reserve(recChunk)
		if err != nil {
			return err
		}
		rec := c.tx.data[pos : pos+recChunk]
		putHeader(rec, recChunk, kindChunk, 0, n)
		binary.LittleEndian.PutUint64(rec[recOffSlab:], off)
		c.slabHead += n
		c.commit(pos, recChunk)
		p = p[n:]
	}
	return nil
}

// reserve waits for room for a record of n bytes (n <= maxRecord) and
// the first line of the slot after it, and returns its ring offset,
// padding to the ring's end first when the record would not fit before it.
func (c *Conn) reserve(n uint64) (uint64, error) {
	size := c.geo.ring
	need := alignRec(n) + recAlign
	pos := c.head & (size - 1)
	var pad uint64
	if size-pos < alignRec(n) {
		pad = size - pos
	}
	if size-(c.head-c.tailSeen) < need+pad {
		err := c.await(c.tx.spaceSeq, c.tx.spaceWaiters, &c.sendSleeps, errPeerGone, func() (bool, error) {
			tail := c.tx.tail.Load()
			used := c.head - tail
			if used > size {
				return false, c.corrupt("ring tail %d is not within %d bytes behind head %d", tail, size, c.head)
			}
			c.tailSeen = tail
			return size-used >= need+pad, nil
		})
		if err != nil {
			return 0, err
		}
	}
	if pad > 0 {
		putHeader(c.tx.data[pos:pos+pad], pad, kindPad, 0, 0)
		c.commit(pos, pad)
		pos = 0
	}
	return pos, nil
}

// allocSlab waits for a contiguous slab range for up to want bytes and
// returns its offset and length.
func (c *Conn) allocSlab(want uint64) (off, n uint64, err error) {
	size := c.geo.slab
	off = c.slabHead % size
	n = min(want, c.chunkMax, size-off)
	if size-(c.slabHead-c.slabTailSeen) >= n {
		return off, n, nil
	}
	err = c.await(c.tx.spaceSeq, c.tx.spaceWaiters, &c.sendSleeps, errPeerGone, func() (bool, error) {
		tail := c.tx.slabTail.Load()
		used := c.slabHead - tail
		if used > size {
			return false, c.corrupt("slab tail %d is not within %d bytes behind slab head %d", tail, size, c.slabHead)
		}
		c.slabTailSeen = tail
		return size-used >= n, nil
	})
	return off, n, err
}

// record is a parsed record header.
type record struct {
	length  uint64
	kind    uint16
	seq     uint32
	bodyLen uint64
	n       uint64
}

// release consumes the ring up to end and frees slabFree bytes of the slab.
// Ring space is handed back lazily, in batches of up to lazyTail bytes or
// when the ring runs empty and the consumer has time (see showTail), so
// that a small frame costs the consumer no store to a line the producer
// reads; slab space, which comes in large chunks, is handed back at once.
func (c *Conn) release(end, slabFree uint64) {
	c.tail = end
	if slabFree > 0 {
		c.slabTail += slabFree
		c.rx.slabTail.Store(c.slabTail)
		c.showTail()
		return
	}
	if end-c.tailShown >= c.lazyTail {
		c.showTail()
	}
}

// showTail hands the ring space consumed back to the producer, and wakes
// the producer if it waits for room. It first clears the commit word of
// every slot in that space, so that wherever a later record starts, the
// word a consumer polls there holds 0 until the record is committed.
//
// The producer can always fit a record once its consumer has caught up: at
// most lazyTail bytes, an eighth of the ring or less, are held back, and a
// record with its padding and the slot after it takes at most half.
func (c *Conn) showTail() {
	mask := c.geo.ring - 1
	for p := c.tailShown; p != c.tail; p += recAlign {
		clearWord(c.rx.data[p&mask:])
	}
	c.tailShown = c.tail
	c.rx.tail.Store(c.tail)
	wake(c.rx.spaceWaiters, c.rx.spaceSeq)
}

// nextRecord waits for the next frame or chunk record, skipping padding,
// and returns its header (copied out of the ring, checked) and ring offset.
// It returns io.EOF when the peer has gone and left nothing more.
func (c *Conn) nextRecord() (record, uint64, error) {
	size := c.geo.ring
	for {
		pos := c.tail & (size - 1)
		word := commitWord(c.rx.data[pos:])
		ready := func() (bool, error) {
			switch seq := word.Load(); seq {
			case c.rseq:
				return true, nil
			case 0:
				return false, nil
			default:
				return false, c.corrupt("record sequence number %d at ring offset %d, want %d", seq, pos, c.rseq)
			}
		}
		ok, err := ready()
		if !ok && err == nil {
			if c.tailShown != c.tail {
				c.showTail() // the ring is empty: hand back its space while we wait
			}
			if due := c.due.Swap(0); due != 0 {
				ok, err = c.awaitDue(time.Duration(due), ready)
			}
			if !ok && err == nil {
				err = c.await(c.rx.dataSeq, c.rx.dataWaiters, &c.recvSleeps, io.EOF, ready)
			}
		}
		if err != nil {
			return record{}, 0, err
		}
		var b [recHeader]byte
		copy(b[:], c.rx.data[pos:pos+recHeader])
		le := binary.LittleEndian
		r := record{
			length:  uint64(le.Uint32(b[recOffLen:])),
			kind:    le.Uint16(b[recOffKind:]),
			seq:     le.Uint32(b[recOffSeq:]),
			bodyLen: uint64(le.Uint32(b[recOffBody:])),
			n:       le.Uint64(b[recOffN:]),
		}
		contig := size - pos
		switch {
		case r.seq != c.rseq:
			return record{}, 0, c.corrupt("record sequence number changed to %d under the reader", r.seq)
		case r.length < recHeader || r.length > contig:
			return record{}, 0, c.corrupt("record length %d at ring offset %d is outside [%d, %d]", r.length, pos, recHeader, contig)
		}
		c.rseq = nextSeq(c.rseq)
		if r.kind == kindPad {
			if r.length != contig {
				return record{}, 0, c.corrupt("pad record of %d bytes, the ring's end is %d bytes away", r.length, contig)
			}
			c.release(c.tail+contig, 0)
			continue
		}
		return r, pos, nil
	}
}

// Recv returns the next frame's body and payload length; see
// transport.Conn. The body is a copy, valid until the next Recv.
func (c *Conn) Recv() ([]byte, int, error) {
	if c.closed.Load() {
		return nil, 0, transport.ErrClosed
	}
	if c.inFrame {
		// The previous frame's payload was not read: discard it.
		if err := c.take(nil, c.streamLeft); err != nil {
			return nil, 0, err
		}
		c.inFrame = false
	}
	r, pos, err := c.nextRecord()
	if err != nil {
		return nil, 0, err
	}
	if r.kind != kindFrame {
		return nil, 0, c.corrupt("record of kind %d where a frame should start", r.kind)
	}
	if r.bodyLen > uint64(c.opts.MaxBody) {
		c.shutdown()
		return nil, 0, &transport.FrameError{What: "body", Size: int(r.bodyLen), Limit: c.opts.MaxBody}
	}
	if r.n > uint64(c.opts.MaxPayload) {
		c.shutdown()
		return nil, 0, &transport.FrameError{What: "payload", Size: int(min(r.n, 1<<62)), Limit: c.opts.MaxPayload}
	}
	inline := r.length - recHeader
	total := r.bodyLen + r.n
	if inline > total {
		return nil, 0, c.corrupt("frame record carries %d inline bytes, more than its %d-byte body and payload", inline, total)
	}
	c.inFrame = true
	c.streamLeft = total
	c.inPos, c.inLeft = pos+recHeader, inline
	c.recEnd = c.tail + alignRec(r.length)
	c.chunkOwed = total - inline
	c.chunkLeft = 0
	if inline == 0 {
		c.release(c.recEnd, 0)
	}
	if uint64(cap(c.body)) < r.bodyLen {
		c.body = make([]byte, r.bodyLen, max(r.bodyLen, 4096))
	}
	c.body = c.body[:r.bodyLen]
	if err := c.take(c.body, r.bodyLen); err != nil {
		return nil, 0, err
	}
	if c.streamLeft == 0 {
		c.inFrame = false
	}
	if c.closed.Load() {
		return nil, 0, transport.ErrClosed // the body may be a retired region's zeros
	}
	return c.body, int(r.n), nil
}

// ReadPayload copies the current frame's payload into dst; see transport.Conn.
func (c *Conn) ReadPayload(dst []byte) error {
	if c.closed.Load() {
		return transport.ErrClosed
	}
	var left uint64
	if c.inFrame {
		left = c.streamLeft
	}
	if uint64(len(dst)) != left {
		return fmt.Errorf("shm: ReadPayload of %d bytes, the frame's payload has %d", len(dst), left)
	}
	if left == 0 {
		return nil
	}
	if err := c.take(dst, left); err != nil {
		return err
	}
	c.inFrame = false
	if c.closed.Load() {
		return transport.ErrClosed // dst may hold a retired region's zeros
	}
	return nil
}

// take consumes n bytes of the current frame's stream, copying them into
// dst unless dst is nil: inline bytes first, then chunks, releasing each
// record and chunk as soon as it is consumed.
func (c *Conn) take(dst []byte, n uint64) error {
	for n > 0 {
		if c.inLeft > 0 {
			k := min(n, c.inLeft)
			if dst != nil {
				dst = dst[copy(dst[:k], c.rx.data[c.inPos:c.inPos+k]):]
			}
			c.inPos += k
			c.inLeft -= k
			c.streamLeft -= k
			n -= k
			if c.inLeft == 0 {
				c.release(c.recEnd, 0)
			}
			continue
		}
		if c.chunkLeft == 0 {
			if err := c.nextChunk(); err != nil {
				return err
			}
		}
		k := min(n, c.chunkLeft)
		if dst != nil {
			dst = dst[copy(dst[:k], c.rx.slab[c.chunkPos:c.chunkPos+k]):]
		}
		c.chunkPos += k
		c.chunkLeft -= k
		c.streamLeft -= k
		n -= k
		if c.chunkLeft == 0 {
			c.release(c.chunkEnd, c.chunkSize)
		}
	}
	return nil
}

// nextChunk waits for the current frame's next chunk record and checks it
// against the slab: chunks are allocated in order, so its offset must be
// where the last one ended.
func (c *Conn) nextChunk() error {
	r, pos, err := c.nextRecord()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if r.kind != kindChunk || r.length != recChunk {
		return c.corrupt("record of kind %d and %d bytes where a chunk should be", r.kind, r.length)
	}
	off := binary.LittleEndian.Uint64(c.rx.data[pos+recOffSlab:])
	want := c.slabTail % c.geo.slab
	switch {
	case r.n == 0 || r.n > c.chunkOwed:
		return c.corrupt("chunk of %d bytes, the frame has %d bytes to come in chunks", r.n, c.chunkOwed)
	case off != want:
		return c.corrupt("chunk at slab offset %d, want %d", off, want)
	case r.n > c.geo.slab-off:
		return c.corrupt("chunk of %d bytes at slab offset %d runs past the %d-byte slab", r.n, off, c.geo.slab)
	}
	c.chunkOwed -= r.n
	c.chunkPos, c.chunkLeft, c.chunkSize = off, r.n, r.n
	c.chunkEnd = c.tail + alignRec(recChunk)
	return nil
}
