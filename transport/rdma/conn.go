package rdma

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// Name is the transport's name in Info and in selection.
const Name = "rdma"

// Config tunes a connection. The zero value means the defaults.
type Config struct {
	transport.Options
	// RecvDepth is the receive buffers posted per QP: the peer's credits.
	RecvDepth int
	// SlotSize is one receive buffer; a message is at most this long.
	SlotSize int
	// Rendezvous is the largest payload sent through receive buffers;
	// larger ones are RDMA-written.
	Rendezvous int
	// StagingSlots and StagingSlotSize size the staging a listener's
	// connections offer the peer to write payloads into, registered once
	// per connection. A dialer offers none: payloads to it come by
	// request-to-send, written into the buffer its reader names.
	StagingSlots    int
	StagingSlotSize int
	// RegCacheBytes bounds the memory the registration cache keeps
	// registered.
	RegCacheBytes int
	// Spin is how long the completion poller spins before it sleeps on the
	// completion channel.
	Spin time.Duration
	// Logger gets the fallbacks worth knowing (registration failures).
	Logger *slog.Logger
	// PeerGID, when set, chooses the GID to reach each peer from (by the
	// address of its control connection), instead of the one the device
	// was opened with: a listener serving peers on several networks
	// (GIDForPeer).
	PeerGID func(peer netip.Addr) (GID, error)
}

// Defaults. A slot of 16 KiB holds any call body and small payloads in one
// SEND; 64 of them keep a pipeline of asynchronous calls going without
// waiting for credits. Staging of 8 x 1 MiB keeps 8 writes in flight, more
// than the bandwidth-delay product of 100 Gb/s at 10 us (125 KB).
const (
	DefaultRecvDepth       = 64
	DefaultSlotSize        = 16 << 10
	DefaultRendezvous      = 16 << 10
	DefaultStagingSlots    = 8
	DefaultStagingSlotSize = 1 << 20
	DefaultRegCacheBytes   = 1 << 30
	DefaultSpin            = 5 * time.Microsecond
)

func (c Config) withDefaults() Config {
	if c.RecvDepth <= 0 {
		c.RecvDepth = DefaultRecvDepth
	}
	if c.SlotSize <= 0 {
		c.SlotSize = DefaultSlotSize
	}
	if c.Rendezvous <= 0 {
		c.Rendezvous = DefaultRendezvous
	}
	if c.StagingSlotSize <= 0 {
		c.StagingSlotSize = DefaultStagingSlotSize
	}
	if c.RegCacheBytes <= 0 {
		c.RegCacheBytes = DefaultRegCacheBytes
	}
	if c.Spin <= 0 {
		c.Spin = DefaultSpin
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBody <= 0 {
		c.MaxBody = transport.DefaultMaxBody
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = transport.DefaultMaxPayload
	}
	return c
}

var (
	// ErrCredits is the failure of a connection whose peer sent more than
	// its credits allowed.
	ErrCredits = errors.New("rdma: peer sent beyond its credits")
	// ErrProtocol is the failure of a connection whose peer broke the
	// message protocol (an unknown kind, a staged piece outside staging).
	ErrProtocol = errors.New("rdma: protocol violation by peer")
	// ErrPeerGone is the failure of a connection whose peer went away in
	// the middle of a frame.
	ErrPeerGone = errors.New("rdma: peer went away")
)

// wrWrite marks the work request IDs of RDMA WRITEs; SENDs and receives
// use their slot numbers.
const wrWrite = 1 << 63

// Stats counts what a connection did, to tell how many times each payload
// byte was copied by the CPU.
type Stats struct {
	PayloadBytesSent, PayloadBytesReceived int64
	// CopiedBytes are payload bytes copied by this side's CPU: into send
	// buffers or bounce memory, out of receive buffers or staging.
	CopiedBytes  int64
	WrittenBytes int64 // payload bytes this side RDMA-wrote
	Fallbacks    int   // payloads copied because memory would not register
	Cache        CacheStats
}

// Conn is a transport.Conn over one RC queue pair. Frames travel as
// SENDs into the peer's pre-posted receive buffers, under credits; larger
// payloads are RDMA-written into the peer's staging or, when it has none,
// into the buffer its reader names. One goroutine polls the completion
// queue; the control TCP connection that set the QP up stays open so that
// a peer that vanishes is noticed.
type Conn struct {
	cfg  Config
	dev  Device
	dom  Domain // the connection's own protection domain
	qp   QP
	ctl  net.Conn
	info transport.Info

	recvMR, sendMR MR
	stagingMR      MR // ours, for the peer to write into; nil when none
	bounceMR       MR // our copies of payloads that would not register
	cache          *RegCache
	owned          []MR   // the buffers above, to free at Close
	ownDev         Device // closed at Close when the connection opened it
	maxInline      int
	peer           peerInfo

	// Lock order: frameMu, then pollMu, then mu. frameMu is held by a
	// sender for a whole frame (and across waits for credits and a
	// clear-to-send, which release mu); pollMu by whoever polls the queue,
	// while handle takes mu; mu guards the rest and is never held across a
	// wait but in cv.Wait.
	frameMu sync.Mutex // one frame's messages at a time
	pollMu  sync.Mutex // see poll

	mu          sync.Mutex
	cv          sync.Cond
	err         error // sticky: the first failure, or ErrClosed
	credits     int   // SENDs the peer can take
	granted     int64 // receive buffers ever granted to the peer
	received    int64
	pending     int // buffers posted again and not yet granted
	peerLow     bool
	freeSlots   []int
	ctlq        []header
	inbox       []inMsg
	writes      int64 // RDMA WRITEs posted
	writesDone  int64
	stagingFree int    // peer staging slots we may write
	stagingNext uint64 // next peer staging slot to write
	cts         *header
	peerClosed  bool // the peer closed while we were up: c.err says so
	// Registration fallbacks are logged once per connection and way.
	loggedSendFallback, loggedRecvFallback bool
	stats                                  Stats

	// The reader's state (Recv and ReadPayload, one goroutine).
	body       []byte
	mode       byte
	remain     int
	cur        inMsg // a received message whose data is being read
	curData    []byte
	stagingExp uint64 // our next staging slot the peer must name
	wcDone     chan struct{}
	closeOnce  sync.Once
}

var (
	_ transport.Conn      = (*Conn)(nil)
	_ transport.TrySender = (*Conn)(nil)
)

type inMsg struct {
	slot int
	n    int
}

type peerInfo struct {
	stagingAddr     uint64
	stagingRKey     uint32
	stagingSlots    int
	stagingSlotSize int
}

// Info describes the connection.
func (c *Conn) Info() transport.Info { return c.info }

// PeerClosed reports, without reading, whether the peer has gone or the
// connection has failed: for a server that stopped reading a client to
// push back on it, so that what the client queued is not run for nobody.
func (c *Conn) PeerClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// Stats returns what the connection has done so far.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Cache = c.cache.Stats()
	return s
}

// Pin keeps b registered, for payloads sent from it or read into it
// without a registration each time: for long-lived memory, such as an
// application's pinned host buffers. Forget must be called before b is
// freed.
func (c *Conn) Pin(b []byte) error { return c.cache.Pin(b, AccessRemoteWrite) }

// Forget drops b's registration, if b was pinned: call it before b is
// freed.
func (c *Conn) Forget(b []byte) { c.cache.Drop(b) }

// failLocked records the connection's first failure and wakes everyone.
func (c *Conn) failLocked(err error) {
	if c.err == nil {
		c.err = err
		if err != transport.ErrClosed {
			c.cfg.Logger.Warn("rdma: connection failed", "remote", c.info.Remote, "err", err)
			// The peer learns from the control connection closing; its QP
			// may never hear from ours again.
			c.ctl.Close()
		}
	}
	c.cv.Broadcast()
}

func (c *Conn) fail(err error) {
	c.mu.Lock()
	c.failLocked(err)
	c.mu.Unlock()
}

// progress polls the completion queue, spinning briefly before it sleeps
// on the completion channel: a call's reply usually comes within
// microseconds, and a sleep costs a wakeup of about as much.
func (c *Conn) progress() {
	defer close(c.wcDone)
	wc := make([]Completion, 32)
	for {
		n, ok := c.poll(wc)
		if !ok {
			return
		}
		if n > 0 {
			continue
		}
		for start := time.Now(); n == 0 && ok && time.Since(start) < c.cfg.Spin; {
			// Yield between polls: the goroutine that will read the
			// message, or write the reply, may need this CPU.
			runtime.Gosched()
			n, ok = c.poll(wc)
		}
		if !ok {
			return
		}
		if n > 0 {
			continue
		}
		if err := c.qp.Arm(); err != nil {
			return
		}
		if n, ok = c.poll(wc); !ok {
			return
		}
		if n > 0 {
			continue
		}
		if err := c.qp.Wait(); err != nil {
			return
		}
	}
}

// poll takes and handles the completions there are; false when the
// connection is done. pollMu makes a poll and its handling one step, so
// that watch, draining the queue when the peer goes, knows that what
// arrived before is in the inbox.
func (c *Conn) poll(wc []Completion) (int, bool) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	n, err := c.qp.Poll(wc)
	if err != nil {
		c.fail(fmt.Errorf("rdma: poll: %w", err))
		return 0, false
	}
	if n == 0 {
		return 0, true
	}
	return n, c.handle(wc[:n])
}

// handle applies completions; false when the connection is done.
func (c *Conn) handle(wcs []Completion) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.cv.Broadcast()
	for _, wc := range wcs {
		if wc.Status != StatusSuccess {
			if c.err == nil {
				c.failLocked(c.wcError(wc))
			}
			return false
		}
		switch wc.Op {
		case OpSend:
			c.freeSlots = append(c.freeSlots, int(wc.ID))
		case OpWrite:
			c.writesDone++
		case OpRecv:
			if err := c.receivedLocked(int(wc.ID), wc.Len); err != nil {
				c.failLocked(err)
				return false
			}
		}
	}
	c.flushLocked()
	return true
}

func (c *Conn) wcError(wc Completion) error {
	err := &WCError{Op: wc.Op, Status: wc.Status}
	switch wc.Status {
	case StatusRNRRetryExceeded:
		return fmt.Errorf("rdma: peer %s posted no receive for our SEND (credits broken): %w", c.info.Remote, err)
	case StatusRemoteAccess:
		return fmt.Errorf("rdma: peer %s refused our RDMA WRITE (bad rkey or range): %w", c.info.Remote, err)
	case StatusRetryExceeded:
		return fmt.Errorf("rdma: peer %s stopped answering: %w: %w", c.info.Remote, ErrPeerGone, err)
	case StatusFlushed:
		return fmt.Errorf("rdma: queue pair to %s failed (a remote access error or the peer's fault): %w", c.info.Remote, err)
	}
	return fmt.Errorf("rdma: connection to %s: %w", c.info.Remote, err)
}

// receivedLocked takes a message that landed in receive slot slot.
func (c *Conn) receivedLocked(slot, n int) error {
	c.received++
	if c.received > c.granted {
		return fmt.Errorf("%w: message %d, %d granted", ErrCredits, c.received, c.granted)
	}
	h, ok := parseHeader(c.slot(slot, n))
	if !ok {
		return fmt.Errorf("%w: message of %d bytes", ErrProtocol, n)
	}
	c.credits += int(h.grants)
	if c.credits > c.peerDepth() {
		return fmt.Errorf("%w: %d credits granted, more than the %d buffers the peer posted", ErrProtocol, c.credits, c.peerDepth())
	}
	if h.flags&flagLow != 0 {
		c.peerLow = true
	}
	switch h.kind {
	case kindFrame, kindFrag, kindStaged, kindDone:
		c.inbox = append(c.inbox, inMsg{slot, n})
		return nil
	case kindGrant:
	case kindRelease:
		c.stagingFree += int(h.a)
		if c.stagingFree > c.peer.stagingSlots {
			return fmt.Errorf("%w: %d staging slots released, %d exist", ErrProtocol, c.stagingFree, c.peer.stagingSlots)
		}
	case kindCTS:
		if c.cts != nil {
			return fmt.Errorf("%w: a clear-to-send nobody asked for", ErrProtocol)
		}
		cts := h
		c.cts = &cts
	default:
		return fmt.Errorf("%w: message kind %d", ErrProtocol, h.kind)
	}
	return c.repostLocked(slot)
}

func (c *Conn) peerDepth() int { return c.cfg.RecvDepth }

func (c *Conn) slot(i, n int) []byte {
	off := i * c.cfg.SlotSize
	return c.recvMR.Bytes()[off : off+n]
}

// repostLocked posts receive slot i again, to be granted to the peer.
func (c *Conn) repostLocked(i int) error {
	err := c.qp.PostRecv(RecvWR{ID: uint64(i), Local: SGE{MR: c.recvMR, Off: i * c.cfg.SlotSize, Len: c.cfg.SlotSize}})
	if err != nil {
		return fmt.Errorf("rdma: post receive: %w", err)
	}
	c.pending++
	return nil
}

// flushLocked sends queued control messages, then a grant when the peer
// needs one. Neither waits: what cannot go now goes when credits come.
//
// Credits are kept so that two peers cannot both run out: only a grant
// may take the last credit, and a grant is sent only with at least two
// buffers to give, so the peer, whatever it sent meanwhile, can answer.
func (c *Conn) flushLocked() {
	for c.err == nil && len(c.ctlq) > 0 && c.credits >= 2 && len(c.freeSlots) > 0 {
		h := c.ctlq[0]
		c.ctlq = c.ctlq[1:]
		if err := c.postLocked(h, nil, nil); err != nil {
			c.failLocked(err)
			return
		}
	}
	if c.err == nil && c.pending >= 2 && (c.pending >= c.cfg.RecvDepth/4 || c.peerLow) &&
		c.credits >= 1 && len(c.freeSlots) > 0 {
		if err := c.postLocked(header{kind: kindGrant}, nil, nil); err != nil {
			c.failLocked(err)
		}
	}
}

// postLocked SENDs one message from a free send slot, with our grants;
// the caller has checked there is a slot and a credit.
func (c *Conn) postLocked(h header, data, more []byte) error {
	i := c.freeSlots[len(c.freeSlots)-1]
	c.freeSlots = c.freeSlots[:len(c.freeSlots)-1]
	c.credits--
	h.grants = uint16(c.pending)
	c.granted += int64(c.pending)
	if c.pending > 0 {
		c.peerLow = false
	}
	c.pending = 0
	if c.credits < 2 {
		h.flags |= flagLow
	}
	off := i * c.cfg.SlotSize
	n := hdrSize + len(data) + len(more)
	buf := c.sendMR.Bytes()[off : off+n]
	h.put(buf)
	copy(buf[hdrSize+copy(buf[hdrSize:], data):], more)
	err := c.qp.PostSend(SendWR{ID: uint64(i), Op: OpSend, Local: SGE{MR: c.sendMR, Off: off, Len: n}, Inline: n <= c.maxInline})
	if err != nil {
		return fmt.Errorf("rdma: post send: %w", err)
	}
	return nil
}

// queueCtlLocked sends a control message now or when credits allow.
func (c *Conn) queueCtlLocked(h header) {
	c.ctlq = append(c.ctlq, h)
	c.flushLocked()
}

// sendMsg SENDs one frame message of data and then more, copied into a
// send buffer, waiting for a credit and a buffer. Control messages go
// first.
func (c *Conn) sendMsg(h header, data, more []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendMsgLocked(h, data, more)
}

func (c *Conn) sendMsgLocked(h header, data, more []byte) error {
	for c.err == nil && (len(c.ctlq) > 0 || c.credits < 2 || len(c.freeSlots) == 0) {
		c.cv.Wait()
	}
	if c.err != nil {
		return c.err
	}
	if err := c.postLocked(h, data, more); err != nil {
		c.failLocked(err)
		return err
	}
	return nil
}

// Send sends one frame; see transport.Conn.
func (c *Conn) Send(body, payload []byte) error {
	if err := c.checkSizes(body, payload); err != nil {
		return err
	}
	c.frameMu.Lock()
	defer c.frameMu.Unlock()
	return c.sendFrame(body, payload)
}

// SendNow is Send: every Send is written from the caller.
func (c *Conn) SendNow(body, payload []byte) error { return c.Send(body, payload) }

func (c *Conn) checkSizes(body, payload []byte) error {
	if len(body) > c.cfg.MaxBody {
		return &transport.FrameError{What: "body", Size: len(body), Limit: c.cfg.MaxBody}
	}
	if len(payload) > c.cfg.MaxPayload {
		return &transport.FrameError{What: "payload", Size: len(payload), Limit: c.cfg.MaxPayload}
	}
	return nil
}

// room is the data one message carries.
func (c *Conn) room() int { return c.cfg.SlotSize - hdrSize }

func (c *Conn) payloadMode(payload []byte) byte {
	switch {
	case len(payload) <= c.cfg.Rendezvous:
		return modeEager
	case c.peer.stagingSlots > 0:
		return modeStaged
	}
	return modeRTS
}

// eagerMessages is how many messages a frame sent eagerly takes.
func (c *Conn) eagerMessages(body, payload []byte) int {
	return max(1, (len(body)+len(payload)+c.room()-1)/c.room())
}

func (c *Conn) sendFrame(body, payload []byte) error {
	mode := c.payloadMode(payload)
	first := header{kind: kindFrame, flags: mode, a: uint32(len(body)), b: uint64(len(payload))}
	eager := payload
	if mode != modeEager {
		eager = nil
	}
	if err := c.stream(first, body, eager); err != nil {
		return err
	}
	switch mode {
	case modeStaged:
		return c.sendStaged(payload)
	case modeRTS:
		return c.sendRTS(payload)
	}
	return nil
}

// stream sends body and then eager as the data of first and of as many
// fragments as they need.
func (c *Conn) stream(first header, body, eager []byte) error {
	return c.pieces(first, body, eager, func(h header, data, more []byte) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stats.CopiedBytes += int64(len(more)) // payload bytes into the send buffer
		return c.sendMsgLocked(h, data, more)
	})
}

// pieces cuts body and then eager into messages, the first with header
// first and the rest fragments, and hands each to send: the frame's bytes,
// then the payload's.
func (c *Conn) pieces(first header, body, eager []byte, send func(h header, data, more []byte) error) error {
	h := first
	for sent := false; !sent || len(body)+len(eager) > 0; sent = true {
		k := min(len(body), c.room())
		b := body[:k]
		body = body[k:]
		k = min(len(eager), c.room()-len(b))
		if err := send(h, b, eager[:k]); err != nil {
			return err
		}
		eager = eager[k:]
		h = header{kind: kindFrag}
	}
	return nil
}

func (c *Conn) countCopy(n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.stats.CopiedBytes += int64(n)
	c.mu.Unlock()
}

// source names payload p for an RDMA WRITE: registered in place when it
// can be, with release to call once the writes are done; else nil, and
// the caller copies through the bounce buffer.
func (c *Conn) source(p []byte) (*SGE, func()) {
	sge, release, err := c.cache.Get(p, 0)
	if err != nil {
		c.mu.Lock()
		c.stats.Fallbacks++
		first := !c.loggedSendFallback
		c.loggedSendFallback = true
		c.mu.Unlock()
		if first { // once per connection: it will not get better
			c.cfg.Logger.Info("rdma: payload memory would not register; copying through staging",
				"remote", c.info.Remote, "bytes", len(p), "err", err)
		}
		return nil, func() {}
	}
	return &sge, release
}

// write RDMA-WRITEs p to remote, from its registration or through the
// bounce buffer, in pieces of at most piece bytes; it returns the count
// of writes posted so far, for waitWrites.
func (c *Conn) write(p []byte, src *SGE, remote Remote, piece int) (int64, error) {
	var last int64
	for off := 0; off < len(p); off += piece {
		n := min(piece, len(p)-off)
		var local SGE
		if src != nil {
			local = SGE{MR: src.MR, Off: src.Off + off, Len: n}
		} else {
			// The bounce buffer is reused: every write from it must be out.
			c.mu.Lock()
			posted := c.writes
			c.mu.Unlock()
			if err := c.waitWrites(posted); err != nil {
				return 0, err
			}
			copy(c.bounceMR.Bytes(), p[off:off+n])
			c.countCopy(n)
			local = SGE{MR: c.bounceMR, Len: n}
		}
		c.mu.Lock()
		// Sends take at most RecvDepth entries of the send queue (one per
		// send slot); writes keep to as many, so the queue never overflows.
		for c.err == nil && c.writes-c.writesDone >= int64(c.cfg.RecvDepth) {
			c.cv.Wait()
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return 0, err
		}
		c.writes++
		last = c.writes
		c.stats.WrittenBytes += int64(n)
		err := c.qp.PostSend(SendWR{ID: wrWrite | uint64(c.writes), Op: OpWrite, Local: local,
			Remote: Remote{Addr: remote.Addr + uint64(off), RKey: remote.RKey}})
		if err != nil {
			c.failLocked(fmt.Errorf("rdma: post write: %w", err))
			c.mu.Unlock()
			return 0, c.err
		}
		c.mu.Unlock()
	}
	return last, nil
}

// waitWrites waits until the writes up to number n have completed.
func (c *Conn) waitWrites(n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && c.writesDone < n {
		c.cv.Wait()
	}
	return c.err
}

// sendStaged writes payload into the peer's staging a slot at a time and
// announces each slot with a small SEND; RC delivers the SEND after the
// WRITE before it, so the peer finds the bytes in place.
func (c *Conn) sendStaged(payload []byte) error {
	src, release := c.source(payload)
	// On failure too: the connection's QP is in error or gone by then, so
	// nothing is reading the memory any more.
	defer release()
	ps := c.peer.stagingSlotSize
	var last int64
	for off := 0; off < len(payload); off += ps {
		n := min(ps, len(payload)-off)
		c.mu.Lock()
		for c.err == nil && c.stagingFree == 0 {
			c.cv.Wait()
		}
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		c.stagingFree--
		slot := c.stagingNext % uint64(c.peer.stagingSlots)
		c.stagingNext++
		c.stats.PayloadBytesSent += int64(n)
		c.mu.Unlock()
		var piece *SGE
		if src != nil {
			piece = &SGE{MR: src.MR, Off: src.Off + off, Len: n}
		}
		at := slot * uint64(ps)
		w, err := c.write(payload[off:off+n], piece, Remote{Addr: c.peer.stagingAddr + at, RKey: c.peer.stagingRKey}, n)
		if err != nil {
			return err
		}
		last = w
		if err := c.sendMsg(header{kind: kindStaged, a: uint32(n), b: at}, nil, nil); err != nil {
			return err
		}
	}
	return c.waitWrites(last)
}

// sendRTS waits for the peer's reader to say where the payload goes, and
// writes it there.
func (c *Conn) sendRTS(payload []byte) error {
	c.mu.Lock()
	for c.err == nil && c.cts == nil {
		c.cv.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	cts := *c.cts
	c.cts = nil
	c.stats.PayloadBytesSent += int64(len(payload))
	c.mu.Unlock()
	switch cts.flags &^ flagLow {
	case ctsDiscard:
		return nil
	case ctsFragments:
		return c.streamPayload(payload)
	case ctsWrite:
	default:
		c.fail(fmt.Errorf("%w: clear-to-send answer %d", ErrProtocol, cts.flags&^flagLow))
		return c.err
	}
	src, release := c.source(payload)
	defer release()
	last, err := c.write(payload, src, Remote{Addr: cts.b, RKey: cts.a}, c.cfg.StagingSlotSize)
	if err != nil {
		return err
	}
	if err := c.sendMsg(header{kind: kindDone}, nil, nil); err != nil {
		return err
	}
	return c.waitWrites(last)
}

// streamPayload sends payload as fragments.
func (c *Conn) streamPayload(p []byte) error {
	for len(p) > 0 {
		k := min(len(p), c.room())
		if err := c.sendMsg(header{kind: kindFrag}, p[:k], nil); err != nil {
			return err
		}
		c.countCopy(k)
		p = p[k:]
	}
	return nil
}

// TrySend sends a frame that fits in receive buffers, when credits and
// send slots are there now; see transport.TrySender.
func (c *Conn) TrySend(body, payload []byte) error {
	if err := c.checkSizes(body, payload); err != nil {
		return err
	}
	if c.payloadMode(payload) != modeEager {
		return transport.ErrWouldBlock
	}
	if !c.frameMu.TryLock() {
		return transport.ErrWouldBlock
	}
	defer c.frameMu.Unlock()
	n := c.eagerMessages(body, payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if len(c.ctlq) > 0 || c.credits < n+1 || len(c.freeSlots) < n {
		return transport.ErrWouldBlock
	}
	// All the frame's messages are posted under one hold of c.mu, so the
	// credits and slots checked are there for each.
	return c.pieces(header{kind: kindFrame, a: uint32(len(body)), b: uint64(len(payload))}, body, payload,
		func(h header, data, more []byte) error {
			if err := c.postLocked(h, data, more); err != nil {
				c.failLocked(err)
				return err
			}
			c.stats.CopiedBytes += int64(len(more))
			return nil
		})
}

// next waits for the next frame message. Messages that arrived before a
// failure are delivered first; a clean close by the peer between frames
// reads as io.EOF.
func (c *Conn) next(midFrame bool) (inMsg, header, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.inbox) == 0 && c.err == nil {
		c.cv.Wait()
	}
	if len(c.inbox) == 0 {
		switch {
		case !c.peerClosed:
			return inMsg{}, header{}, c.err
		case midFrame:
			return inMsg{}, header{}, fmt.Errorf("%w in the middle of a frame: %w", c.err, io.ErrUnexpectedEOF)
		}
		return inMsg{}, header{}, io.EOF
	}
	m := c.inbox[0]
	c.inbox = c.inbox[1:]
	h, _ := parseHeader(c.slot(m.slot, m.n))
	return m, h, nil
}

// release gives a consumed receive slot back.
func (c *Conn) release(m inMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peerClosed {
		return nil // what the peer sent before it went is still read
	}
	if c.err != nil {
		return c.err
	}
	if err := c.repostLocked(m.slot); err != nil {
		c.failLocked(err)
		return err
	}
	c.flushLocked()
	return nil
}

// violation fails the connection for a peer's protocol error.
func (c *Conn) violation(format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
	c.fail(err)
	return err
}

// Recv returns the next frame; see transport.Conn.
func (c *Conn) Recv() ([]byte, int, error) {
	if c.remain > 0 || c.curData != nil {
		if err := c.skip(); err != nil {
			return nil, 0, err
		}
	}
	m, h, err := c.next(false)
	if err != nil {
		return nil, 0, err
	}
	if h.kind != kindFrame {
		return nil, 0, c.violation("message kind %d where a frame begins", h.kind)
	}
	bodyLen, payloadLen, mode := int(h.a), h.b, h.flags&modeMask
	if bodyLen > c.cfg.MaxBody {
		c.fail(&transport.FrameError{What: "body", Size: bodyLen, Limit: c.cfg.MaxBody})
		return nil, 0, c.err
	}
	if payloadLen > uint64(c.cfg.MaxPayload) {
		c.fail(&transport.FrameError{What: "payload", Size: int(min(payloadLen, 1<<62)), Limit: c.cfg.MaxPayload})
		return nil, 0, c.err
	}
	if mode == modeStaged && c.stagingMR == nil || mode > modeRTS {
		return nil, 0, c.violation("payload mode %d", mode)
	}
	c.body = c.body[:0]
	data := c.slot(m.slot, m.n)[hdrSize:]
	for {
		k := min(len(data), bodyLen-len(c.body))
		c.body = append(c.body, data[:k]...)
		data = data[k:]
		if len(c.body) == bodyLen {
			break
		}
		if err := c.release(m); err != nil {
			return nil, 0, err
		}
		if m, h, err = c.next(true); err != nil {
			return nil, 0, err
		}
		if h.kind != kindFrag {
			return nil, 0, c.violation("message kind %d inside a frame's body", h.kind)
		}
		data = c.slot(m.slot, m.n)[hdrSize:]
	}
	c.mode, c.remain = mode, int(payloadLen)
	if len(data) > 0 && (mode != modeEager || len(data) > c.remain) {
		return nil, 0, c.violation("%d bytes past the frame's end", len(data))
	}
	if len(data) > 0 {
		c.cur, c.curData = m, data
	} else if err := c.release(m); err != nil {
		return nil, 0, err
	}
	return c.body, c.remain, nil
}

// ReadPayload reads the current frame's payload into dst; see
// transport.Conn.
func (c *Conn) ReadPayload(dst []byte) error {
	if len(dst) != c.remain {
		return errors.New("rdma: ReadPayload length does not match the frame's payload")
	}
	c.remain = 0
	switch c.mode {
	case modeStaged:
		return c.readStaged(dst)
	case modeRTS:
		return c.readRTS(dst)
	}
	return c.readFragments(dst)
}

// readFragments copies the payload out of receive buffers.
func (c *Conn) readFragments(dst []byte) error {
	got := 0
	for got < len(dst) {
		if c.curData == nil {
			m, h, err := c.next(true)
			if err != nil {
				return err
			}
			if h.kind != kindFrag {
				return c.violation("message kind %d inside a payload", h.kind)
			}
			c.cur, c.curData = m, c.slot(m.slot, m.n)[hdrSize:]
		}
		if len(c.curData) > len(dst)-got {
			return c.violation("%d bytes past the payload's end", len(c.curData)-(len(dst)-got))
		}
		got += copy(dst[got:], c.curData)
		c.curData = nil
		if err := c.release(c.cur); err != nil {
			return err
		}
	}
	c.countReceived(len(dst), len(dst))
	return nil
}

func (c *Conn) countReceived(payload, copied int) {
	c.mu.Lock()
	c.stats.PayloadBytesReceived += int64(payload)
	c.stats.CopiedBytes += int64(copied)
	c.mu.Unlock()
}

// readStaged copies the payload out of our staging, slot by slot, and
// gives each slot back as soon as it is empty.
func (c *Conn) readStaged(dst []byte) error {
	if err := c.stagedPieces(len(dst), func(at int, piece []byte) { copy(dst[at:], piece) }); err != nil {
		return err
	}
	c.countReceived(len(dst), len(dst))
	return nil
}

// stagedPieces takes the staged pieces of a total-byte payload in order,
// hands each to take (nil: the payload is discarded) and gives its slot
// back at once.
func (c *Conn) stagedPieces(total int, take func(at int, piece []byte)) error {
	size := c.cfg.StagingSlotSize
	for got := 0; got < total; {
		m, h, err := c.next(true)
		if err != nil {
			return err
		}
		if h.kind != kindStaged {
			return c.violation("message kind %d inside a staged payload", h.kind)
		}
		want := (c.stagingExp % uint64(c.cfg.StagingSlots)) * uint64(size)
		n := int(h.a)
		if h.b != want || n <= 0 || n > size || n > total-got {
			return c.violation("staged piece of %d bytes at offset %d; expected offset %d, at most %d bytes",
				n, h.b, want, min(size, total-got))
		}
		c.stagingExp++
		if take != nil {
			take(got, c.stagingMR.Bytes()[want:want+uint64(n)])
		}
		got += n
		if err := c.release(m); err != nil {
			return err
		}
		c.mu.Lock()
		c.queueCtlLocked(header{kind: kindRelease, a: 1})
		c.mu.Unlock()
	}
	return nil
}

// readRTS tells the sender where to write the payload, dst itself when it
// registers, and waits until it is written.
func (c *Conn) readRTS(dst []byte) error {
	sge, release, err := c.cache.Get(dst, AccessRemoteWrite)
	cts := header{kind: kindCTS, flags: ctsWrite}
	if err != nil {
		c.mu.Lock()
		c.stats.Fallbacks++
		first := !c.loggedRecvFallback
		c.loggedRecvFallback = true
		c.mu.Unlock()
		if first { // once per connection: it will not get better
			c.cfg.Logger.Info("rdma: receive buffer would not register; payloads come through receive buffers",
				"remote", c.info.Remote, "bytes", len(dst), "err", err)
		}
		cts.flags = ctsFragments
	} else {
		// Once the payload is in, the peer's rkey for dst dies with the
		// registration, unless dst is pinned.
		defer release()
		cts.a, cts.b = sge.MR.RKey(), sge.MR.Addr()+uint64(sge.Off)
	}
	c.mu.Lock()
	c.queueCtlLocked(cts)
	c.mu.Unlock()
	if cts.flags == ctsFragments {
		return c.readFragments(dst)
	}
	m, h, err := c.next(true)
	if err != nil {
		return err
	}
	if h.kind != kindDone {
		return c.violation("message kind %d where a written payload's end was due", h.kind)
	}
	c.countReceived(len(dst), 0)
	return c.release(m)
}

// skip discards the rest of a frame Recv returned and nobody read.
func (c *Conn) skip() error {
	n := c.remain
	c.remain = 0
	switch c.mode {
	case modeRTS:
		c.mu.Lock()
		c.queueCtlLocked(header{kind: kindCTS, flags: ctsDiscard})
		c.mu.Unlock()
		return nil
	case modeStaged:
		return c.stagedPieces(n, nil)
	}
	if c.curData != nil {
		n -= len(c.curData)
		c.curData = nil
		if err := c.release(c.cur); err != nil {
			return err
		}
	}
	for n > 0 {
		m, h, err := c.next(true)
		if err != nil {
			return err
		}
		if h.kind != kindFrag || m.n-hdrSize > n {
			return c.violation("message kind %d of %d bytes inside a payload", h.kind, m.n)
		}
		n -= m.n - hdrSize
		if err := c.release(m); err != nil {
			return err
		}
	}
	return nil
}

// watch notices the peer going: its end of the control connection closes.
func (c *Conn) watch() {
	var b [1]byte
	c.ctl.Read(b[:])
	// What the peer sent before it went has completed here already (it
	// waits for its sends' completions before closing); take it first.
	c.drain()
	c.mu.Lock()
	if c.err == nil {
		// Sends fail from now on; Recv delivers what arrived first.
		c.peerClosed = true
		c.err = fmt.Errorf("%w: %s closed the connection", ErrPeerGone, c.info.Remote)
	}
	c.cv.Broadcast()
	c.mu.Unlock()
}

// drain handles completions already in the queue.
func (c *Conn) drain() {
	wc := make([]Completion, 32)
	for {
		if n, ok := c.poll(wc); n == 0 || !ok {
			return
		}
	}
}

// closeGrace bounds how long Close waits for sends to complete.
const closeGrace = time.Second

// Close closes the connection: sends already posted are given a moment to
// complete, so a frame whose Send returned reaches a peer that is there,
// then the QP and the control connection go.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		timedOut := false
		t := time.AfterFunc(closeGrace, func() {
			c.mu.Lock()
			timedOut = true
			c.cv.Broadcast()
			c.mu.Unlock()
		})
		c.mu.Lock()
		for c.err == nil && len(c.freeSlots) < c.cfg.RecvDepth && !timedOut {
			c.cv.Wait()
		}
		c.failLocked(transport.ErrClosed)
		t.Stop()
		c.mu.Unlock()
		c.ctl.Close()
		c.qp.Close()
		<-c.wcDone
		c.cache.Close()
		c.freeBuffers()
		c.dom.Close()
		if c.ownDev != nil {
			c.ownDev.Close()
		}
	})
	return nil
}
