package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/transport"
)

// session is one client connection and everything it holds.
type session struct {
	srv     *Server
	id      uint64
	conn    transport.Conn
	out     *outbox // writes the session's replies: see outbox
	peer    string  // who the connection caps count it as
	log     *slog.Logger
	started time.Time
	staging *semaphore.Weighted
	staged  atomic.Int64 // bytes of staging held: payloads being read or copied
	clocks  stageClocks  // where sampled calls' time goes: see stages.go

	// helloDone is set once the connection has said who it is (Hello, or
	// JoinBulk): the handshake deadline then no longer applies, and calls
	// other than Hello are served.
	helloDone atomic.Bool
	// ctx is cancelled by cut, with cutErr set first: the session is over,
	// and every wait of its reader ends.
	ctx     context.Context
	cancel  context.CancelFunc
	cutOnce sync.Once
	cutErr  error

	// ops counts the device operations the session has queued on its
	// streams and not yet seen finish (see markEvery); with the tasks its
	// devices have on their shards (sessionDevice.outstanding) it is the
	// work in flight that MaxInflight bounds. Shards write it, the reader
	// reads it now and then (gateEvery): it has a cache line of its own.
	// progress wakes a reader waiting for it to fall.
	_        [64]byte
	ops      atomic.Int64
	_        [56]byte
	progress chan struct{}
	unGated  int // frames read since the reader last looked at the gate

	// The reader's alone.
	dec       *api.Decoder     // of requests; a line of its own, away from mu
	launchMsg api.LaunchKernel // every launch is decoded into it: see decode

	mu         sync.Mutex
	devices    []*sessionDevice
	streams    map[api.Handle]*streamObj
	events     map[api.Handle]*eventObj
	modules    map[api.Handle]*moduleObj
	functions  map[api.Handle]*functionObj
	exec       execState   // graphs and held streams: see calls_exec.go
	vmm        vmmState    // reservations, physical memory, mappings: calls_vmm.go
	peered     atomic.Bool // the session has copied between devices: calls_peer.go
	latched    api.Latch   // first asynchronous failure not yet reported
	client     string      // who the client said it is
	credential string      // the Hello's token, for Config.Authorize
	selection  string
	complaints int

	// The bulk lane, once a second connection of the client has joined
	// (JoinBulk with bulkKey). The reader alone reads it; replies whose
	// payloads go there are written by the outbox's writer (replyBulk), so
	// that they travel in the order of the replies that announce them.
	bulkKey string
	bulk    transport.Conn
	ended   bool // end has begun: no bulk lane may join

	pinned pinnedTable // client host regions mapped here: calls_pinned.go
}

// sessionDevice is a session's hold on one device.
type sessionDevice struct {
	session uint64
	ordinal uint32
	shard   *shard
	quota   uint64
	quantum int
	allocs  allocTable
	// outstanding counts the session's tasks on the shard not yet run.
	outstanding atomic.Int64
	// freeing counts frees taken out of the table whose device frees wait
	// for the session's queued work.
	freeing atomic.Int64
	// grant is the key of the Authorize grant that backs the device, and
	// unGrant its release (nil without one).
	grant   string
	unGrant func()
}

// submit queues fn on the device's shard, in order with the session's
// other tasks there.
func (d *sessionDevice) submit(fn func()) { d.submitRunner(funcWork(fn)) }

// submitRunner is submit for work that need not be a closure.
func (d *sessionDevice) submitRunner(r runner) { d.submitCost(r, 1) }

// submitCost is submitRunner for work that weighs cost units in the
// shard's fair queue (see costOf).
func (d *sessionDevice) submitCost(r runner, cost int) {
	d.outstanding.Add(1)
	d.shard.submit(d.session, d.quantum, task{work: r, done: &d.outstanding, cost: cost})
}

// Objects are registered by the reader when the client names them, and
// filled in by the shard when the device has made them; err records a
// failed creation, which every later use reports.
type streamObj struct {
	dev *sessionDevice
	bs  backend.Stream
	err error
	// unmarked counts operations queued on bs since its last mark (see
	// markEvery). The shard alone touches it.
	unmarked int64
}

type eventObj struct {
	dev *sessionDevice
	be  backend.Event
	err error
}

type moduleObj struct {
	dev     *sessionDevice
	bm      backend.Module
	err     error
	globals map[string]allocation
	charged uint64 // the share its globals take, uncharged at unload
}

type functionObj struct {
	mod    *moduleObj
	bf     backend.Function
	err    error
	params []api.Param
}

func newSession(srv *Server, id uint64, c transport.Conn) *session {
	info := c.Info()
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		clocks:    stageClocks{server: &srv.stages},
		ctx:       ctx,
		cancel:    cancel,
		srv:       srv,
		id:        id,
		conn:      c,
		out:       newOutbox(c),
		progress:  make(chan struct{}, 1),
		log:       srv.log.With("session", id, "remote", info.Remote, "transport", info.Transport),
		started:   time.Now(),
		dec:       api.NewDecoder(nil),
		staging:   semaphore.NewWeighted(srv.cfg.MaxStaging),
		streams:   map[api.Handle]*streamObj{},
		events:    map[api.Handle]*eventObj{},
		modules:   map[api.Handle]*moduleObj{},
		functions: map[api.Handle]*functionObj{},
	}
}

// maxComplaints bounds how many client errors one session logs, so a client
// looping on a bad call cannot flood the server's log.
const maxComplaints = 20

func (s *session) complain(op api.Op, err error) {
	s.mu.Lock()
	s.complaints++
	n := s.complaints
	s.mu.Unlock()
	switch {
	case n < maxComplaints:
		s.log.Info("call failed", "op", op.String(), "err", err)
	case n == maxComplaints:
		s.log.Info("call failed; further failures of this session are not logged", "op", op.String(), "err", err)
	}
}

// serve reads and dispatches requests until the connection ends, then frees
// everything the session held.
func (s *session) serve() {
	s.log.Debug("connection accepted")
	deadline := time.AfterFunc(s.srv.cfg.HandshakeTimeout, func() {
		if !s.helloDone.Load() {
			s.cut(errHandshakeTimeout)
		}
	})
	reason := s.read()
	deadline.Stop()
	var bye goodbye
	switch {
	case errors.Is(reason, errJoined):
		s.out.close(errJoined) // the connection is another session's bulk lane now
		s.srv.forget(s)
		return
	case errors.As(reason, &bye):
		s.end(nil, &bye.h)
	default:
		s.end(reason, nil)
	}
}

var errHandshakeTimeout = errors.New("no Hello within the handshake deadline")

// goodbye ends the reader of a session whose client said Goodbye.
type goodbye struct{ h api.Header }

func (goodbye) Error() string { return "the client said goodbye" }

// cut ends the session from any goroutine: its connections close, its
// replies are dropped, and its reader, wherever it waits, returns.
func (s *session) cut(reason error) {
	s.cutOnce.Do(func() {
		s.cutErr = reason
		s.cancel()
		s.out.close(transport.ErrClosed)
		s.conn.Close()
		if bulk := s.bulkConn(); bulk != nil {
			bulk.Close()
		}
	})
}

// read runs the read loop; a panic there is a bug of ours that one
// client's input hit: it ends that session, not the server.
func (s *session) read() (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session reader panicked; the session ends", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	return s.readLoop()
}

func (s *session) readLoop() error {
	for {
		if s.unGated++; s.unGated >= gateEvery {
			s.unGated = 0
			if err := s.admit(); err != nil {
				return err
			}
		}
		body, payloadLen, err := s.conn.Recv()
		if err != nil {
			select {
			case <-s.ctx.Done():
				if s.cutErr != nil {
					return s.cutErr
				}
			default:
			}
			return err
		}
		h, fields, err := api.ReadHeader(body)
		if err != nil {
			return err // a frame too short for a header: framing is broken
		}
		if sampled(h) {
			s.clocks.read(h.Seq)
		}
		pl := payload{from: s.conn, n: payloadLen}
		if h.Flags&api.FlagBulkPayload != 0 {
			// Taken first, whatever becomes of the call, to keep the lanes in step.
			if pl, err = s.bulkPayload(h, payloadLen); errors.Is(err, errNoBulkLane) {
				s.fail(h, api.Errorf(api.ErrInvalidValue, "%v", err))
				continue
			} else if err != nil {
				return err
			}
		}
		m, err := s.decode(h, fields)
		if err != nil {
			// The frame is intact, only the call is bad: answer it and go on
			// (its payload, unread, is skipped by the next Recv).
			s.reply(h, api.Errorf(errorResult(err), "%v", err), nil, nil)
			continue
		}
		if !s.helloDone.Load() {
			switch m := m.(type) {
			case *api.Hello:
				if err := s.handleHello(h, m); err != nil {
					return err
				}
			case *api.JoinBulk:
				s.helloDone.Store(true)
				return s.srv.joinBulk(s, h, m)
			default:
				return errors.New("first call is not Hello")
			}
			continue
		}
		if _, ok := m.(*api.Goodbye); ok {
			return goodbye{h}
		}
		if err := s.dispatch(h, m, pl); err != nil {
			return err
		}
	}
}

// admit holds the reader back while the session has MaxInflight tasks and
// operations in flight: the client's sends then block on the transport's
// own flow control (a full socket buffer, a full ring), as a real driver
// blocks a launch when its push buffer is full, and nobody else notices.
func (s *session) admit() error {
	limit := int64(s.srv.cfg.MaxInflight)
	if s.inflight() < limit {
		return nil
	}
	s.flushMarks()
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	for s.inflight() >= limit {
		// Marks wake us as operations finish; the timer covers tasks,
		// which the shards run without telling.
		select {
		case <-s.progress:
		case <-t.C:
			t.Reset(time.Millisecond)
			// A client that left while held back would otherwise have
			// its backlog, still in the connection, run for nobody.
			if pc, ok := s.conn.(peerCloser); ok && pc.PeerClosed() {
				return io.EOF
			}
		case <-s.ctx.Done():
			return s.cutErr
		}
	}
	return nil
}

// gateEvery is how many frames the reader reads between looks at the work
// in flight: a look reads counters that shards and streams write, and
// every frame paying for those cache lines cost launches a fifth of their
// rate. A session may so pass MaxInflight by gateEvery-1 calls.
const gateEvery = 16

// inflight is the session's work in flight: its tasks on shards and its
// operations on streams.
func (s *session) inflight() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflightLocked()
}

// peerCloser is a connection that can tell, without reading, that its
// peer has closed it.
type peerCloser interface{ PeerClosed() bool }

// markEvery is how many operations a stream queues between marks: a
// Notify that subtracts them from the session's count in flight when they
// have finished. One mark per operation would double the cost of a
// launch; one per 32 costs a thirty-second of it, and a reader that finds
// the session full marks what is left (flushMarks).
const markEvery = 32

// queuing is called on the shard before an operation is queued on st:
// it counts the operation and, every markEvery, marks those before it.
// The mark goes before the new operation so that it never reports that
// operation's error, which a synchronous call reports itself.
func (s *session) queuing(st *streamObj) {
	if st.unmarked >= markEvery {
		s.mark(st)
	}
	st.unmarked++
	s.ops.Add(1)
}

// mark queues on st a Notify that counts its unmarked operations finished
// once they have. Errors it sees are the session's, latched, as for any
// asynchronous call. It runs on the shard.
func (s *session) mark(st *streamObj) {
	n := st.unmarked
	if n == 0 || st.bs == nil {
		return
	}
	st.unmarked = 0
	s.settle(st.bs, n)
}

// settle queues on bs a Notify that, once the work before it has run,
// latches its errors (they are the session's, as for any asynchronous
// call) and counts n operations of it finished.
func (s *session) settle(bs backend.Stream, n int64) {
	err := bs.Notify(func(err error) {
		s.latched.Set(err)
		s.ops.Add(-n)
		select {
		case s.progress <- struct{}{}:
		default:
		}
	})
	if err != nil { // a destroyed stream has nothing in flight
		s.ops.Add(-n)
	}
}

// flushMarks marks, on every shard, every stream with unmarked operations,
// so that a reader waiting for work to drain sees all of it finish.
func (s *session) flushMarks() {
	s.mu.Lock()
	devices := slices.Clone(s.devices)
	s.mu.Unlock()
	for _, d := range devices {
		d.submit(func() {
			s.mu.Lock()
			var streams []*streamObj
			for _, st := range s.streams {
				if st.dev == d && st.unmarked > 0 {
					streams = append(streams, st)
				}
			}
			s.mu.Unlock()
			for _, st := range streams {
				s.mark(st)
			}
		})
	}
}

// decode decodes request h. Launches, the calls applications make most and
// many per synchronous call, are all decoded into one message, as launch
// keeps nothing of it; every other call gets its own, which its work may
// keep.
func (s *session) decode(h api.Header, fields []byte) (api.Message, error) {
	if h.Op == api.OpLaunchKernel {
		return &s.launchMsg, s.dec.RequestInto(h, fields, &s.launchMsg)
	}
	return s.dec.Request(h, fields)
}

func errorResult(err error) api.Result {
	if errors.Is(err, api.ErrUnknownOp) {
		return api.ErrNotSupported
	}
	return api.ErrInvalidValue
}

func (s *session) handleHello(h api.Header, m *api.Hello) error {
	switch {
	case m.Magic != api.Magic:
		return errors.New("bad magic in Hello")
	case m.Version != api.Version:
		s.reply(h, api.Errorf(api.ErrNotSupported, "protocol version %d; server speaks %d", m.Version, api.Version), nil, nil)
		return errors.New("protocol version mismatch")
	case s.srv.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(m.Token), []byte(s.srv.cfg.Token)) != 1:
		s.reply(h, api.Errorf(api.ErrNotPermitted, "bad token"), nil, nil)
		return errors.New("bad token")
	}
	s.helloDone.Store(true)
	key := newBulkKey()
	s.mu.Lock() // status() and adoptBulk read these from other goroutines
	s.client = m.Client
	s.credential = m.Token
	s.bulkKey = key
	s.log = s.log.With("client", m.Client)
	s.mu.Unlock()
	s.log.Info("session opened")
	s.reply(h, nil, &api.HelloReply{
		Server: s.srv.cfg.Name, Version: api.Version, BootID: s.srv.bootID,
		Devices: uint32(len(s.srv.shards)), Session: s.id, Offers: s.srv.cfg.Offers,
		BulkKey: key,
	}, nil)
	return nil
}

// end frees, on each device, everything the session held: the work it
// queued and that has not started is dropped (streams that can cancel do),
// then, once what is running has stopped, its objects and memory are freed
// and its shares return to the devices. A session that said goodbye (bye)
// is answered after that, then its connection closes; any other ends with
// its connection closed first.
func (s *session) end(reason error, bye *api.Header) {
	if bye == nil {
		s.cut(reason)
	}
	s.mu.Lock()
	s.ended = true
	bulk := s.bulk
	s.mu.Unlock()
	s.releaseHolds()
	if bulk != nil {
		bulk.Close()
	}
	switch {
	case bye != nil:
		s.log.Info("session closing: the client said goodbye")
	case !s.helloDone.Load():
		// Unauthenticated peers come in floods; they must not flood the log.
		s.log.Debug("connection closed before Hello", "reason", reason)
	case reason == nil, errors.Is(reason, io.EOF), errors.Is(reason, transport.ErrClosed):
		s.log.Info("session closed")
	default:
		s.log.Warn("session ended", "reason", reason)
	}
	s.mu.Lock()
	devices := slices.Clone(s.devices)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, d := range devices {
		wg.Add(1)
		d.submit(func() { s.cancelStreams(d) })
		s.afterStreams(d, func() {
			d.submit(func() {
				s.unpinFrom(d)
				s.release(d)
				wg.Done()
			})
		})
	}
	wg.Wait()
	s.unmapPinned()
	s.srv.forget(s)
	if bye != nil {
		// Answered whatever the client does next; a client that does not
		// read it is cut off after the slow-consumer deadline.
		stop := time.AfterFunc(s.srv.cfg.SlowConsumer, func() { s.cut(errSlowConsumer) })
		s.out.sendWaiting(func() error { return transport.SendNow(s.conn, s.encodeReply(*bye, nil, nil), nil) })
		stop.Stop()
		s.cut(nil)
	}
}

// cancelStreams cancels every stream the session has on d. It runs on the
// shard, after every task the session queued there.
func (s *session) cancelStreams(d *sessionDevice) {
	for _, bs := range s.streamsOn(d) {
		if c, ok := bs.(backend.Canceler); ok {
			c.Cancel()
		}
	}
}

// streamsOn is the session's live streams on d.
func (s *session) streamsOn(d *sessionDevice) []backend.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	var streams []backend.Stream
	for _, st := range s.streams {
		if st.dev == d && st.bs != nil {
			streams = append(streams, st.bs)
		}
	}
	return streams
}

// release frees one device's share of the session. It runs on the shard.
func (s *session) release(d *sessionDevice) {
	s.mu.Lock()
	var streams []backend.Stream
	var events []backend.Event
	var modules []backend.Module
	for h, st := range s.streams {
		if st.dev == d {
			if st.bs != nil {
				streams = append(streams, st.bs)
			}
			delete(s.streams, h)
		}
	}
	for h, ev := range s.events {
		if ev.dev == d {
			if ev.be != nil {
				events = append(events, ev.be)
			}
			delete(s.events, h)
		}
	}
	for h, f := range s.functions {
		if f.mod.dev == d {
			delete(s.functions, h)
		}
	}
	for h, m := range s.modules {
		if m.dev == d {
			if m.bm != nil {
				modules = append(modules, m.bm)
			}
			delete(s.modules, h)
		}
	}
	s.mu.Unlock()
	for _, bs := range streams {
		bs.Destroy()
	}
	for _, be := range events {
		s.destroyEvent(be) // calls_ipc.go
	}
	for _, bm := range modules {
		bm.Unload()
	}
	s.releaseVirtual(d)
	var freed uint64
	for _, a := range d.allocs.all() {
		if a.global {
			continue // the module's unload freed it
		}
		d.allocs.remove(a.base)
		if err := s.freeDevice(d, a.base); err != nil { // calls_ipc.go
			s.log.Error("freeing a session's memory failed", "ptr", a.base, "err", err)
		}
		freed += a.size
	}
	d.shard.ledger.release(d.quota)
	if d.unGrant != nil {
		d.unGrant()
	}
	s.log.Info("device released", "device", d.shard.index, "freed_bytes", freed)
}

// afterStreamsFor is afterStreams for call h, whose stage clock it keeps:
// a sampled call gets a task that stamps its start, which the shard runs
// just before afterStreams' own, the session's tasks running in order.
func (s *session) afterStreamsFor(h api.Header, d *sessionDevice, fn func()) {
	if sampled(h) {
		s.clocks.submitted(h.Seq)
		d.submit(func() { s.clocks.started(h.Seq) })
	}
	s.afterStreams(d, fn)
}

// afterStreams calls fn once all work the session has queued on d's
// streams has finished: at once when there is none, else from the
// goroutine of the stream that finishes last. It never blocks the shard;
// an fn that must call the device submits to the shard itself.
func (s *session) afterStreams(d *sessionDevice, fn func()) {
	d.submit(func() {
		streams := s.streamsOn(d)
		left := atomic.Int64{}
		left.Store(int64(len(streams)) + 1) // +1 until every Notify is queued
		done := func() {
			if left.Add(-1) == 0 {
				fn()
			}
		}
		for _, bs := range streams {
			err := bs.Notify(func(err error) {
				s.latched.Set(err)
				done()
			})
			if err != nil { // a destroyed stream has nothing left to wait for
				done()
			}
		}
		done()
	})
}

// stage takes n bytes of the session's staging budget, waiting (on the
// reader, holding the session back) until its earlier payloads are copied.
func (s *session) stage(n int64) error {
	if err := s.staging.Acquire(s.ctx, n); err != nil {
		return err
	}
	s.staged.Add(n)
	return nil
}

// unstage gives back what stage took.
func (s *session) unstage(n int64) {
	s.staged.Add(-n)
	s.staging.Release(n)
}

// replyEncoders recycle the encoders of replies, with their buffers.
var replyEncoders = sync.Pool{New: func() any { return api.NewEncoder(make([]byte, 0, 256)) }}

// reply answers request h. A failed call's payload is not sent. The reply
// goes through the session's outbox, so it never waits on the client
// unless its payload is large; see outbox for who may send those.
func (s *session) reply(h api.Header, err error, m api.Message, payload []byte) {
	s.answer(h, err, m, payload, false)
}

// replyOnReader is reply for the session's reader, which may wait on its
// own client: when nothing is queued ahead, it writes the reply itself
// (transport.SendNow), sparing the calls it answers alone (Ping, an idle
// synchronisation) a hand-off to a writer where the transport has no
// write that cannot wait (TLS).
func (s *session) replyOnReader(h api.Header, err error, m api.Message, payload []byte) {
	s.answer(h, err, m, payload, true)
}

func (s *session) answer(h api.Header, err error, m api.Message, payload []byte, onReader bool) {
	if err != nil {
		s.complain(h.Op, err)
		payload = nil
	}
	if len(payload) > 0 && h.Flags&api.FlagBulkReply != 0 {
		if bulk := s.bulkConn(); bulk != nil {
			s.replyBulk(h, m, payload, bulk)
			return
		}
	}
	e := replyEncoders.Get().(*api.Encoder)
	e.Reset()
	e.Reply(h.Op, h.Seq, 0, err, m)
	// A send fails only when the session is going, and the reader sees
	// that, except for a client too slow to read, which is cut off here.
	send := s.out.send
	if onReader {
		send = s.out.sendMayWait
	}
	var ready int64
	if sampled(h) {
		ready = nanotime()
	}
	if err := send(e.Bytes(), payload); errors.Is(err, errSlowConsumer) {
		s.cut(err)
	}
	if ready != 0 {
		s.clocks.replied(h.Seq, ready, nanotime())
	}
	replyEncoders.Put(e)
}

// encodeReply encodes the reply to h into a fresh buffer.
func (s *session) encodeReply(h api.Header, err error, m api.Message) []byte {
	e := api.NewEncoder(nil)
	e.Reply(h.Op, h.Seq, 0, err, m)
	return e.Bytes()
}

// fail reports err for request h: in a reply, or latched if h wants none.
func (s *session) fail(h api.Header, err error) {
	if h.Flags&api.FlagAsync != 0 {
		s.complain(h.Op, err)
		s.latched.Set(err)
		return
	}
	s.reply(h, err, nil, nil)
}

// done finishes a call whose work was queued on st: a synchronous call is
// answered once that work has run.
func (s *session) done(h api.Header, st *streamObj, err error) {
	if err != nil {
		s.fail(h, err)
		return
	}
	if h.Flags&api.FlagAsync != 0 {
		return
	}
	if err := st.bs.Notify(func(err error) { s.reply(h, err, nil, nil) }); err != nil {
		s.reply(h, err, nil, nil)
	}
}

// syncReply answers a synchronising call: its own failure, or else the
// session's latched one.
func (s *session) syncReply(h api.Header, err error, m api.Message) {
	if err == nil {
		err = s.latched.Take()
	}
	s.reply(h, err, m, nil)
}

func (s *session) device(ordinal uint32) (*sessionDevice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(ordinal) >= len(s.devices) {
		return nil, api.Errorf(api.ErrInvalidDevice, "device ordinal %d; the session has %d", ordinal, len(s.devices))
	}
	return s.devices[ordinal], nil
}

// deviceOf finds the session device holding ptr.
func (s *session) deviceOf(ptr uint64) (*sessionDevice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if d.allocs.Contains(ptr, 1) {
			return d, nil
		}
	}
	return nil, api.Errorf(api.ErrInvalidValue, "%#x is not memory this session allocated", ptr)
}

func (s *session) stream(h api.Handle) (*streamObj, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[h]; st != nil {
		return st, nil
	}
	return nil, api.Errorf(api.ErrInvalidHandle, "stream %#x", h)
}

func (s *session) event(h api.Handle) (*eventObj, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev := s.events[h]; ev != nil {
		return ev, nil
	}
	return nil, api.Errorf(api.ErrInvalidHandle, "event %#x", h)
}

// maxFunctions bounds the function handles one session holds: a handle
// costs the server little, but not nothing.
const maxFunctions = 1 << 16

// register adds a client-chosen handle to table, refusing reserved handles,
// ones in use, and more than limit objects: past it, creation fails with
// CUDA_ERROR_OUT_OF_MEMORY, as the driver's does when it runs out of room.
func register[T any](s *session, table map[api.Handle]*T, h api.Handle, what string, obj *T, limit int) error {
	if h == 0 || h >= api.DefaultStreamBase {
		return api.Errorf(api.ErrInvalidHandle, "%s handle %#x is reserved", what, h)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if table[h] != nil {
		return api.Errorf(api.ErrInvalidHandle, "%s handle %#x is in use", what, h)
	}
	if len(table) >= limit {
		return api.Errorf(api.ErrOutOfMemory, "the session holds %d %ss, the most it may", len(table), what)
	}
	table[h] = obj
	return nil
}

// ready reports a stream that the device failed to create.
func (st *streamObj) ready() error {
	if st.err != nil {
		return st.err
	}
	if st.bs == nil {
		return api.Errorf(api.ErrInvalidHandle, "stream was destroyed")
	}
	return nil
}

func (ev *eventObj) ready() error {
	if ev.err != nil {
		return ev.err
	}
	if ev.be == nil {
		return api.Errorf(api.ErrInvalidHandle, "event was destroyed")
	}
	return nil
}

// sameDevice checks that a stream and the memory a call names share a device.
func sameDevice(st *streamObj, d *sessionDevice) error {
	if st.dev != d {
		return api.Errorf(api.ErrInvalidValue, "stream is on session device %d, memory on %d", st.dev.ordinal, d.ordinal)
	}
	return nil
}

// inRange checks [ptr, ptr+n) against the session's allocations on d.
func inRange(d *sessionDevice, what string, ptr, n uint64) error {
	if ptr+n < ptr {
		return api.Errorf(api.ErrInvalidValue, "%s %#x+%d overflows", what, ptr, n)
	}
	if !d.allocs.Contains(ptr, n) {
		return api.Errorf(api.ErrInvalidValue, "%s %#x..+%d is not inside one allocation of this session", what, ptr, n)
	}
	return nil
}

// payload is where a request's payload is read from: its own frame on the
// session's connection, or the next frame on the bulk lane.
type payload struct {
	from transport.Conn
	n    int
}

func (p payload) read(dst []byte) error { return p.from.ReadPayload(dst) }

func (s *session) status() api.SessionStatus {
	info := s.conn.Info()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := api.SessionStatus{
		ID: s.id, Client: s.client, Remote: info.Remote, Transport: info.Transport, Selection: s.selection, Started: s.started,
		Streams: len(s.streams), Events: len(s.events), Modules: len(s.modules),
		Inflight: s.inflightLocked(), Outbox: s.out.waiting(time.Now()), StagingBytes: s.staged.Load(),
		Stages: s.clocks.times.summary(),
	}
	for _, d := range s.devices {
		used, n := d.allocs.usage()
		ss.Devices = append(ss.Devices, api.SessionDeviceStatus{
			Ordinal: d.ordinal, Device: d.shard.index, QuotaBytes: d.quota, UsedBytes: used, Allocations: n,
		})
	}
	return ss
}

// inflightLocked is inflight with s.mu held.
func (s *session) inflightLocked() int64 {
	n := s.ops.Load()
	for _, d := range s.devices {
		n += d.outstanding.Load()
	}
	return n
}

func sortSessions(ss []api.SessionStatus) {
	sort.Slice(ss, func(i, j int) bool { return ss[i].ID < ss[j].ID })
}

func statusJSON(st api.Status) []byte {
	b, _ := json.Marshal(st)
	return b
}
