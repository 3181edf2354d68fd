package engine

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// outbox is who writes a session's replies, and the rule that keeps a
// client that stops reading from stalling anyone but itself.
//
// A reply is written by the goroutine that has it (the reader, the shard,
// a stream's worker, a callback) only when that can be done without
// waiting: the connection's TrySend, with nothing queued ahead of it.
// Otherwise a small reply is copied into the outbox and the session's
// writer goroutine sends it, waiting as long as it must. A reply with a
// large payload (a device-to-host copy) is never copied: its goroutine,
// which is the session's reader or one of the session's own stream
// workers, never the shard, waits its turn and writes it. Every write that
// waits is timed; a session whose write has waited past the slow-consumer
// deadline, or whose outbox has grown past maxOutboxBytes, is cut off (see
// Server.watch), which unblocks the write and ends the session.
type outbox struct {
	conn transport.Conn
	// inline is false where the connection's TrySend cannot write at once
	// and only hands the frame to a writer (TLS): a goroutine that may wait
	// then writes its replies itself (sendMayWait).
	inline bool

	mu      sync.Mutex
	cond    sync.Cond // signalled when the writer role is given up
	queue   []outFrame
	bytes   int
	writing bool      // a goroutine holds the writer role
	since   time.Time // when the current write, or the oldest queued frame, began waiting
	err     error     // sticky: the outbox is closed
	kick    chan struct{}
}

// outFrame is a copied reply waiting for the writer.
type outFrame struct {
	body, payload []byte
	queued        time.Time
}

// maxOutboxBytes bounds the replies one session may have waiting to be
// written. Only small replies are ever queued, so a well-behaved client
// never comes near it; one that stops reading reaches it or the deadline.
const maxOutboxBytes = 64 << 20

// maxQueuedPayload is the largest reply payload copied into the outbox;
// larger ones are written by their own goroutine.
const maxQueuedPayload = 64 << 10

// errSlowConsumer ends a session that does not read its replies.
var errSlowConsumer = errors.New("slow consumer: the client does not read its replies")

func newOutbox(c transport.Conn) *outbox {
	o := &outbox{conn: c, inline: !c.Info().Secure, kick: make(chan struct{}, 1)}
	o.cond.L = &o.mu
	go o.writeLoop()
	return o
}

// send writes a reply or queues it, never waiting when payload is small.
// body and payload may be reused once it returns.
func (o *outbox) send(body, payload []byte) error {
	if len(payload) > maxQueuedPayload {
		return o.sendWaiting(func() error { return transport.SendNow(o.conn, body, payload) })
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if !o.writing && len(o.queue) == 0 {
		err := transport.TrySend(o.conn, body, payload)
		if !errors.Is(err, transport.ErrWouldBlock) {
			return err
		}
	}
	if o.bytes+len(body)+len(payload) > maxOutboxBytes {
		o.err = fmt.Errorf("%w: %d bytes of replies waiting", errSlowConsumer, o.bytes)
		o.cond.Broadcast()
		return o.err
	}
	now := time.Now()
	if len(o.queue) == 0 && !o.writing {
		o.since = now
	}
	o.queue = append(o.queue, outFrame{
		body:    append([]byte(nil), body...),
		payload: append([]byte(nil), payload...),
		queued:  now,
	})
	o.bytes += len(body) + len(payload)
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// sendMayWait is send for a goroutine that may wait on the client (the
// session's reader): with nothing queued ahead and no write in flight it
// writes the reply itself as the writer, waiting if it must; otherwise it
// queues it as send does.
func (o *outbox) sendMayWait(body, payload []byte) error {
	if o.inline || len(payload) > maxQueuedPayload {
		return o.send(body, payload)
	}
	o.mu.Lock()
	busy := o.err != nil || o.writing || len(o.queue) > 0
	o.mu.Unlock()
	if busy {
		return o.send(body, payload)
	}
	return o.sendWaiting(func() error { return transport.SendNow(o.conn, body, payload) })
}

// sendWaiting takes the writer role, waiting for it, and runs write, which
// may wait on the connection. Only goroutines of the session itself (its
// reader, its streams' workers) may call it.
func (o *outbox) sendWaiting(write func() error) error {
	o.mu.Lock()
	for o.writing && o.err == nil {
		o.cond.Wait()
	}
	if o.err != nil {
		o.mu.Unlock()
		return o.err
	}
	o.writing = true
	if len(o.queue) == 0 {
		o.since = time.Now()
	}
	o.mu.Unlock()
	err := write()
	o.mu.Lock()
	o.writing = false
	if len(o.queue) > 0 {
		// Replies queued while we wrote: the writer's now.
		o.since = o.queue[0].queued
		select {
		case o.kick <- struct{}{}:
		default:
		}
	}
	o.cond.Broadcast()
	o.mu.Unlock()
	return err
}

// writeLoop is the session's writer: it sends what send queued.
func (o *outbox) writeLoop() {
	for range o.kick {
		o.mu.Lock()
		for o.writing && o.err == nil {
			o.cond.Wait()
		}
		if o.err != nil {
			o.mu.Unlock()
			return
		}
		if len(o.queue) == 0 {
			o.mu.Unlock()
			continue
		}
		o.writing = true
		o.since = o.queue[0].queued
		for len(o.queue) > 0 && o.err == nil {
			f := o.queue[0]
			o.queue[0] = outFrame{}
			o.queue = o.queue[1:]
			o.mu.Unlock()
			err := o.conn.Send(f.body, f.payload)
			o.mu.Lock()
			o.bytes -= len(f.body) + len(f.payload)
			if err != nil && o.err == nil {
				o.err = err
			}
			if len(o.queue) > 0 {
				o.since = o.queue[0].queued
			}
		}
		o.queue = nil
		o.writing = false
		o.cond.Broadcast()
		o.mu.Unlock()
	}
}

// waiting reports how long the outbox has had a write waiting on the
// client: zero when it has none.
func (o *outbox) waiting(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.writing && len(o.queue) == 0 {
		return 0
	}
	return now.Sub(o.since)
}

// close drops what is queued and stops the writer; waiting writers return.
func (o *outbox) close(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.queue, o.bytes = nil, 0
	o.cond.Broadcast()
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
}
