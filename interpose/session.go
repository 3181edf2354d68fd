package interpose

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/rdma"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// Options configure a session.
type Options struct {
	// Token is presented to servers that require one.
	Token string
	// Client identifies the client in the server's logs and smi; by default
	// user@host/pid.
	Client string
	// ChunkSize is the size copies are split into; DefaultChunkSize when 0.
	ChunkSize int
	// Transport forces a transport ("tcp", "shm") for Connect; empty or
	// "auto" lets Connect measure the candidates and choose.
	Transport string
	// BulkTransport forces the transport of the bulk lane, which carries
	// large copies' payloads, for Connect; empty or "auto" takes the one
	// with the highest measured bandwidth. When it is the call lane's
	// transport, the session uses one connection.
	BulkTransport string
	// Conn tunes the connection.
	Conn transport.Options
	// TLS, when set, secures every TCP connection to the server (the bulk
	// lane's too); TLSFiles.Config makes one from files. A ServerName left
	// empty is taken from the host of the address dialed. Shared memory
	// never leaves the host and is admitted by the kernel's credentials
	// and the token: it needs no TLS.
	TLS *tls.Config
	// RDMADevice is the verbs device to reach a server's RDMA offer
	// through; nil: the one whose interface routes to the server.
	RDMADevice rdma.Device
}

// DefaultChunkSize splits large copies so that several chunks are in flight:
// the server copies one into the device while the next is on the wire.
const DefaultChunkSize = 4 << 20

// Session is a connection to a GPU server and everything opened through it.
// Its methods are safe for concurrent use.
type Session struct {
	conn  transport.Conn
	opts  Options
	hello api.HelloReply

	// bulk, when set, carries payloads of at least bulkMin bytes, each as
	// the next bulk frame after the frame that announces it; bulkSend
	// orders our bulk frames as their announcements. Set before the
	// session is handed out, then only read; read by the reply reader.
	bulk     transport.Conn
	bulkSend sync.Mutex

	seq      atomic.Uint32
	pinRate  copyRate // synchronous pinned copies' rate (pinned.go)
	handles  atomic.Uint32
	encoders sync.Pool // of *api.Encoder, each keeping its buffer

	mu      sync.Mutex
	pending pendingTable
	err     error     // why the connection is gone; sticky
	latched api.Latch // failure of a call nobody waited for
	devices []*Device

	selection Selection

	markers   atomic.Uint32 // host functions' markers: see LaunchHostFunc
	hostCalls hostCalls
	hostMem   hostMems // page-locked memory shared with the server: pinned.go

	// Replies are read by whoever waits for one: a caller that finds no one
	// reading becomes the reader and reads until its own reply is in,
	// handing others theirs on the way, so a lone synchronous call wakes
	// no other goroutine (and, for a C thread calling through cgo, no other
	// thread). Replies nobody waits for (asynchronous device-to-host
	// copies) are read by the background reader while any are due.
	reading    atomic.Bool   // someone is the reader
	readWait   atomic.Int32  // goroutines waiting to become the reader
	readFree   chan struct{} // a kick for them when the reader steps down
	asyncDue   atomic.Int64  // replies expected that nobody waits for
	asyncKick  chan struct{}
	done       chan struct{} // closed when the connection is gone
	doneOnce   sync.Once
	readerDone chan struct{}
}

// pending is a request awaiting its reply.
type pending struct {
	reply api.Message // decoded into on success, may be nil
	into  []byte      // the reply's payload goes here (exact length)
	grow  bool        // or into a new slice of the payload's length
	async bool        // nobody waits: a failure is latched
	then  func(error) // with async: run on the host-call goroutine after
	seq   uint32      // the call's sequence number, set by pendingTable.put
	err   error
	done  chan struct{} // buffered: the one completion is sent, never blocking
}

// pendings recycles the pending calls of synchronous calls, with their
// channels: a call is a few hundred nanoseconds over shared memory, and two
// allocations are a good part of that.
var pendings = sync.Pool{New: func() any { return &pending{done: make(chan struct{}, 1)} }}

// complete hands p its result; exactly one of readOne and broken does, for
// whichever removed p from the pending table.
func (p *pending) complete(err error) {
	p.err = err
	p.done <- struct{}{}
}

// Dial connects to the server at addr over TCP and opens a session. Connect
// does the same but moves to a faster transport where one reaches the server.
func Dial(ctx context.Context, addr string, opts Options) (*Session, error) {
	conn, err := opts.dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return Open(ctx, conn, opts)
}

// dialTCP dials the server's TCP endpoint addr.
func (o Options) dialTCP(ctx context.Context, addr string) (transport.Conn, error) {
	if o.TLS == nil {
		return tcp.Dial(ctx, addr, o.Conn)
	}
	return tcp.DialTLS(ctx, addr, o.TLS, o.Conn)
}

// dialShm dials the server's shared-memory endpoint. The token admits a
// client of another user than the server's.
func (o Options) dialShm(ctx context.Context, endpoint string) (transport.Conn, error) {
	return shm.Dial(ctx, endpoint, shm.Options{Options: o.Conn, Token: o.Token})
}

// Open opens a session on an established connection, which it then owns.
func Open(ctx context.Context, conn transport.Conn, opts Options) (*Session, error) {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Client == "" {
		opts.Client = defaultIdentity()
	}
	s := &Session{
		conn:       conn,
		opts:       opts,
		readFree:   make(chan struct{}, 1),
		asyncKick:  make(chan struct{}, 1),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	s.encoders.New = func() any { return api.NewEncoder(make([]byte, 0, 256)) }
	go s.asyncReader()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hello := &api.Hello{Magic: api.Magic, Version: api.Version, Client: opts.Client, Token: opts.Token, BootID: bootID()}
	if err := s.call(hello, &s.hello, nil, nil); err != nil {
		s.abort()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("interpose: hello: %w", err)
	}
	return s, nil
}

func defaultIdentity() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s/%d", name, host, os.Getpid())
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ID is the session's id on the server.
func (s *Session) ID() uint64 { return s.hello.Session }

// Server describes the server: its name, device count, boot id and offers.
func (s *Session) Server() api.HelloReply { return s.hello }

// Transport describes the connection.
func (s *Session) Transport() transport.Info { return s.conn.Info() }

// Done is closed when the connection is gone, however it went; Err then
// says why (CUDA_ERROR_DEINITIALIZED with the cause).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is nil while the session is up, and why it ended after.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// GoodbyeTimeout bounds how long Close waits for the server to answer its
// Goodbye.
const GoodbyeTimeout = 5 * time.Second

// Close ends the session. It says Goodbye to the server, which answers once
// it has released everything the session held (its memory, its shares, its
// queued work), and waits for that answer up to GoodbyeTimeout: when Close
// returns, the next smi, or another client's Attach, sees the capacity free.
// A server that does not answer in time is cut off, and frees the session
// when it sees the connection close. Calls sent before Close reach the
// server before the Goodbye, and those that want an answer get it; a call
// still waiting when Close returns, or made after, fails with
// CUDA_ERROR_DEINITIALIZED.
func (s *Session) Close() error {
	return s.CloseContext(context.Background())
}

// CloseContext is Close, waiting for the server's answer until ctx is done
// or GoodbyeTimeout has passed, whichever comes first.
func (s *Session) CloseContext(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, GoodbyeTimeout)
	defer cancel()
	s.goodbye(ctx)
	return s.abort()
}

// abort closes the connections without a Goodbye: for a session whose
// Hello failed, which the server holds nothing for.
func (s *Session) abort() error {
	err := s.conn.Close()
	s.broken(transport.ErrClosed)
	<-s.readerDone
	if errors.Is(err, transport.ErrClosed) || errors.Is(err, net.ErrClosed) {
		err = nil // closed already, by a deadline or a failure
	}
	return err
}

// goodbye sends Goodbye and waits for its answer, whatever it is (a server
// that does not know the call answers CUDA_ERROR_NOT_SUPPORTED at once,
// having nothing to wait for), until ctx is done; then it cuts the
// connection, which fails the wait. It returns the answer.
func (s *Session) goodbye(ctx context.Context) error {
	// Armed before the send: a server that stopped reading can block it.
	// Aborted, not closed: a backlog of our calls the server has not read
	// yet must not run after we are gone (see transport.Abort).
	stop := context.AfterFunc(ctx, func() { transport.Abort(s.conn) })
	defer stop()
	p, err := s.start(&api.Goodbye{}, &pending{}, nil)
	if err != nil {
		return err // the session is gone already
	}
	return s.wait(p)
}

// bulkMin is the smallest payload sent on a bulk lane: smaller ones ride
// in their frame, where the transports copy them eagerly anyway.
const bulkMin = transport.DefaultEagerLimit

// readOne reads one reply and hands it to its pending call; when that is
// self, the caller's own, it only fills in self.err and reports mine, so a
// lone synchronous call completes without a channel operation. An error
// means the connection is gone: every pending call has been failed.
func (s *Session) readOne(self *pending) (mine bool, err error) {
	body, payloadLen, err := s.conn.Recv()
	if err != nil {
		return false, s.broken(err)
	}
	h, fields, err := api.ReadHeader(body)
	if err != nil || h.Flags&api.FlagReply == 0 {
		return false, s.broken(fmt.Errorf("bad reply from server: %v", err))
	}
	s.mu.Lock()
	p := s.pending.take(h.Seq)
	s.mu.Unlock()
	if p == nil {
		return false, s.broken(fmt.Errorf("reply to unknown call %d (%v)", h.Seq, h.Op))
	}
	callErr, err := s.readReply(h, fields, payloadLen, p)
	if err != nil {
		// p is out of the pending table: broken cannot fail it, so we do.
		callErr = s.broken(err)
	}
	if p.async {
		s.latched.Set(callErr)
		if p.then != nil {
			then := p.then
			s.hostCalls.push(func() { then(callErr) })
		}
		s.asyncDue.Add(-1)
	}
	if p == self {
		p.err = callErr
		return true, err
	}
	p.complete(callErr)
	return false, err
}

// readReply decodes the reply h into p and reads its payload: the call's
// result, or an error when the reply is malformed or the connection fails.
func (s *Session) readReply(h api.Header, fields []byte, payloadLen int, p *pending) (callErr, err error) {
	callErr, err = api.DecodeReply(fields, p.reply)
	if err != nil {
		return nil, fmt.Errorf("bad %v reply: %w", h.Op, err)
	}
	from := s.conn
	if h.Flags&api.FlagBulkPayload != 0 {
		if from, payloadLen, err = s.bulkReply(h, payloadLen); err != nil {
			return nil, err
		}
	}
	if payloadLen > 0 {
		if p.grow {
			p.into = make([]byte, payloadLen)
		}
		if len(p.into) != payloadLen {
			return nil, fmt.Errorf("%v reply carries %d bytes, %d expected", h.Op, payloadLen, len(p.into))
		}
		if err := from.ReadPayload(p.into); err != nil {
			return nil, err
		}
	}
	return callErr, nil
}

// takeReader makes the caller the reader, waiting while another is, and
// reports true; or it returns false once stop is closed or receives (the
// caller's completion, taken).
func (s *Session) takeReader(stop <-chan struct{}) bool {
	if s.reading.CompareAndSwap(false, true) {
		return true // the common case: two atomic operations, no channel
	}
	// Announced before the second look, and the reader steps down before
	// it looks for waiters (both sequentially consistent): either we see
	// it gone or it sees us and kicks.
	s.readWait.Add(1)
	defer s.readWait.Add(-1)
	for {
		if s.reading.CompareAndSwap(false, true) {
			return true
		}
		select {
		case <-stop:
			return false
		case <-s.readFree:
		}
	}
}

// dropReader steps down as the reader, kicking a waiting one.
func (s *Session) dropReader() {
	s.reading.Store(false)
	if s.readWait.Load() > 0 {
		select {
		case s.readFree <- struct{}{}:
		default: // a kick is already there
		}
	}
}

// wait returns p's result, reading replies itself when no one else is. It
// takes p's completion: call it at most once per start.
func (s *Session) wait(p *pending) error {
	if !s.takeReader(p.done) {
		return p.err
	}
	for {
		select {
		case <-p.done:
			s.dropReader()
			return p.err
		default:
		}
		mine, err := s.readOne(p)
		if mine || err != nil {
			s.dropReader()
			if !mine {
				<-p.done // broken failed it
			}
			return p.err
		}
	}
}

// asyncReader reads while replies nobody waits for are due, so that the
// server never blocks writing them (and, behind them, reading our calls).
func (s *Session) asyncReader() {
	defer close(s.readerDone)
	for {
		select {
		case <-s.asyncKick:
		case <-s.done:
			return
		}
		for s.asyncDue.Load() > 0 {
			if !s.takeReader(s.done) {
				return
			}
			_, err := s.readOne(nil)
			s.dropReader()
			if err != nil {
				return
			}
		}
	}
}

// broken fails every pending call: the connection is gone. It returns the
// session's error.
func (s *Session) broken(cause error) error {
	err := api.Errorf(api.ErrDeinitialized, "connection to the GPU server lost: %v", cause)
	if errors.Is(cause, transport.ErrClosed) {
		err = api.Errorf(api.ErrDeinitialized, "session closed")
	}
	s.conn.Close()
	if s.bulk != nil {
		s.bulk.Close()
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	waiting := s.pending.drain()
	s.mu.Unlock()
	for _, p := range waiting {
		p.complete(err)
	}
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// start sends a request that wants a reply and returns without waiting.
func (s *Session) start(req api.Message, p *pending, payload []byte) (*pending, error) {
	if p.done == nil {
		p.done = make(chan struct{}, 1)
	}
	seq := s.seq.Add(1)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.pending.put(seq, p)
	s.mu.Unlock()
	if p.async {
		s.asyncDue.Add(1)
	}
	var flags api.Flags
	if s.bulk != nil && len(p.into) >= bulkMin {
		flags = api.FlagBulkReply
	}
	if err := s.write(seq, flags, req, payload); err != nil {
		s.mu.Lock()
		mine := s.pending.take(seq) != nil
		s.mu.Unlock()
		if p.async && mine {
			s.asyncDue.Add(-1)
		}
		return nil, err
	}
	if p.async {
		select {
		case s.asyncKick <- struct{}{}:
		default:
		}
	}
	return p, nil
}

// call sends a request and waits for its reply.
func (s *Session) call(req api.Message, reply api.Message, payload, into []byte) error {
	p := pendings.Get().(*pending)
	p.reply, p.into = reply, into
	if _, err := s.start(req, p, payload); err != nil {
		return err // p may yet be completed: not recycled
	}
	err := s.wait(p)
	*p = pending{done: p.done}
	pendings.Put(p)
	return err
}

// syncCall is call for synchronising calls: they also report the failure
// of an earlier call nobody waited for.
func (s *Session) syncCall(req api.Message, reply api.Message) error {
	err := s.call(req, reply, nil, nil)
	if err == nil {
		err = s.latched.Take()
	}
	return err
}

// send sends a request without waiting; the server latches its failure.
func (s *Session) send(req api.Message, payload []byte) error {
	return s.write(s.seq.Add(1), api.FlagAsync, req, payload)
}

func (s *Session) write(seq uint32, flags api.Flags, req api.Message, payload []byte) error {
	bulk := s.bulk != nil && len(payload) >= bulkMin
	if bulk {
		flags |= api.FlagBulkPayload
	}
	e := s.encoders.Get().(*api.Encoder)
	e.Reset()
	e.Request(seq, flags, req)
	var err error
	switch body := e.Bytes(); {
	case bulk:
		err = s.writeBulk(body, seq, req, payload)
	case flags&api.FlagAsync != 0:
		err = s.conn.Send(body, payload) // batched with whatever follows
	default:
		err = transport.SendNow(s.conn, body, payload) // we wait for the answer
	}
	s.encoders.Put(e)
	if err != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return s.err
		}
		return api.Errorf(api.ErrDeinitialized, "send: %v", err)
	}
	return nil
}

func (s *Session) newHandle() api.Handle {
	// Handles wrap long before 2^31 only in sessions that create two
	// billion objects; the server refuses a handle still in use.
	return s.handles.Add(1) &^ api.DefaultStreamBase
}

// Ping makes a round trip that does nothing: the floor of a call.
func (s *Session) Ping() error { return s.call(&api.Ping{}, nil, nil, nil) }

// Status asks the server for its devices and sessions.
func (s *Session) Status() (*api.Status, error) {
	p, err := s.start(&api.ServerStatus{}, &pending{grow: true}, nil)
	if err != nil {
		return nil, err
	}
	if err := s.wait(p); err != nil {
		return nil, err
	}
	var st api.Status
	if err := json.Unmarshal(p.into, &st); err != nil {
		return nil, fmt.Errorf("interpose: status: %w", err)
	}
	return &st, nil
}
