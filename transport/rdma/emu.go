package rdma

import (
	"fmt"
	"sync"
	"time"
)

// Emulation is an in-process RDMA fabric with reliable-connected semantics,
// for testing the transport where there is no RDMA hardware. It keeps what
// the transport depends on, as the InfiniBand specification has it:
//
//   - delivery in the order work was posted on a QP, and each SEND lands in
//     the oldest receive posted at the peer;
//   - a SEND that finds no receive posted is retried (receiver not ready)
//     RNRRetry times, then fails with StatusRNRRetryExceeded;
//   - an RDMA WRITE with an rkey the peer does not hold (of another
//     protection domain, or registered without remote write), or past the
//     end of its region, fails with StatusRemoteAccess at the writer, and the
//     responder's QP goes to the error state too;
//   - a QP in the error state completes everything outstanding, and
//     anything posted after, with StatusFlushed;
//   - a peer QP that is gone or in error is reported, after the transport
//     retries, as StatusRetryExceeded.
//
// Memory is copied between Go slices; addresses are virtual, handed out
// per device, so a wrong address is caught as a real HCA would catch it.
type Emulation struct {
	mu      sync.Mutex
	qps     map[uint32]*emuQP
	nextQPN uint32
	// RNRDelay is the receiver-not-ready timer between retries.
	RNRDelay time.Duration
}

// NewEmulation returns an empty fabric.
func NewEmulation() *Emulation {
	return &Emulation{qps: map[uint32]*emuQP{}, nextQPN: 0x100, RNRDelay: time.Millisecond}
}

// EmuOptions shape an emulated device.
type EmuOptions struct {
	MaxInline int // default 256
	// RegisterLimit caps the bytes registered at once, as RLIMIT_MEMLOCK
	// does; 0 is no limit.
	RegisterLimit int
}

// Open adds a device to the fabric.
func (e *Emulation) Open(name string, o EmuOptions) Device {
	if o.MaxInline <= 0 {
		o.MaxInline = 256
	}
	d := &emuDevice{fab: e, name: name, opts: o, mrs: map[uint32]*emuMR{}, nextKey: 0x1000, nextAddr: 0x7f0000000000}
	e.mu.Lock()
	d.gid[0], d.gid[15] = 0xfe, byte(len(e.qps))
	e.mu.Unlock()
	return d
}

func (e *Emulation) lookup(qpn uint32) *emuQP {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.qps[qpn]
}

type emuDevice struct {
	fab  *Emulation
	name string
	opts EmuOptions
	gid  [16]byte

	mu         sync.Mutex
	mrs        map[uint32]*emuMR // by rkey (== lkey)
	nextKey    uint32
	nextAddr   uint64
	registered int
	nextDomain int
}

var (
	_ Device = (*emuDevice)(nil)
	_ Domain = (*emuDomain)(nil)
)

func (d *emuDevice) Name() string { return d.name }

func (d *emuDevice) Attr() DeviceAttr {
	return DeviceAttr{MaxInline: d.opts.MaxInline, MaxMRSize: 1 << 40, MTU: 4096, GID: d.gid}
}

// NewDomain returns a protection domain of d's: MRs and QPs carry its
// number, and a QP reaches only the MRs of its own.
func (d *emuDevice) NewDomain() (Domain, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextDomain++
	return &emuDomain{dev: d, id: d.nextDomain}, nil
}

type emuDomain struct {
	dev *emuDevice
	id  int
}

func (pd *emuDomain) Register(buf []byte, access Access) (MR, error) {
	return pd.dev.register(buf, access, pd.id)
}

func (pd *emuDomain) CreateQP(cfg QPConfig) (QP, error) { return pd.dev.createQP(cfg, pd.id) }

func (pd *emuDomain) Close() error { return nil }

func (d *emuDevice) register(buf []byte, access Access, domain int) (MR, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(buf) == 0 {
		return nil, fmt.Errorf("%w: empty region", ErrRegister)
	}
	if d.opts.RegisterLimit > 0 && d.registered+len(buf) > d.opts.RegisterLimit {
		return nil, fmt.Errorf("%w: %d bytes past the locked-memory limit of %d (%d registered)",
			ErrRegister, len(buf), d.opts.RegisterLimit, d.registered)
	}
	m := &emuMR{dev: d, addr: d.nextAddr, buf: buf, key: d.nextKey, domain: domain, access: access}
	d.nextKey += 0x101 // keys far apart, so an off-by-one key is caught
	d.nextAddr += (uint64(len(buf)) + 2<<20) &^ (1<<20 - 1)
	d.registered += len(buf)
	d.mrs[m.key] = m
	return m, nil
}

// region returns the bytes [addr, addr+n) of the region key names, or
// false when key is unknown, of another domain, without the access
// needed, or the range leaves the region.
func (d *emuDevice) region(key uint32, addr uint64, n int, domain int, need Access) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.mrs[key]
	if m == nil || m.domain != domain || m.access&need != need ||
		addr < m.addr || addr+uint64(n) > m.addr+uint64(len(m.buf)) || addr+uint64(n) < addr {
		return nil, false
	}
	off := int(addr - m.addr)
	return m.buf[off : off+n], true
}

func (d *emuDevice) createQP(cfg QPConfig, domain int) (QP, error) {
	if cfg.SendDepth <= 0 || cfg.RecvDepth <= 0 {
		return nil, fmt.Errorf("rdma: emulated QP needs send and receive depths, got %d and %d", cfg.SendDepth, cfg.RecvDepth)
	}
	if cfg.MaxInline > d.opts.MaxInline {
		return nil, fmt.Errorf("rdma: inline size %d past the device's %d", cfg.MaxInline, d.opts.MaxInline)
	}
	q := &emuQP{dev: d, domain: domain, cfg: cfg, notify: make(chan struct{}, 1), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	d.fab.mu.Lock()
	q.num = d.fab.nextQPN
	d.fab.nextQPN++
	d.fab.qps[q.num] = q
	d.fab.mu.Unlock()
	q.state = StateInit
	go q.run()
	return q, nil
}

func (d *emuDevice) Close() error { return nil }

type emuMR struct {
	dev    *emuDevice
	addr   uint64
	buf    []byte
	key    uint32
	domain int
	access Access
	once   sync.Once
}

func (m *emuMR) Addr() uint64  { return m.addr }
func (m *emuMR) Len() int      { return len(m.buf) }
func (m *emuMR) LKey() uint32  { return m.key }
func (m *emuMR) RKey() uint32  { return m.key }
func (m *emuMR) Bytes() []byte { return m.buf }
func (m *emuMR) Close() error {
	m.once.Do(func() {
		m.dev.mu.Lock()
		delete(m.dev.mrs, m.key)
		m.dev.registered -= len(m.buf)
		m.dev.mu.Unlock()
	})
	return nil
}

// local resolves an SGE against the live registrations of q's domain, as
// an HCA checks an lkey; need is the access the work asks of it.
func (q *emuQP) local(s SGE, need Access) ([]byte, bool) {
	if s.MR == nil || s.Off < 0 || s.Len < 0 {
		return nil, false
	}
	return q.dev.region(s.MR.LKey(), s.MR.Addr()+uint64(s.Off), s.Len, q.domain, need)
}

type emuSend struct {
	wr     SendWR
	inline []byte
}

type emuQP struct {
	dev    *emuDevice
	domain int
	cfg    QPConfig
	num    uint32
	notify chan struct{}
	kick   chan struct{}
	closed chan struct{}

	mu       sync.Mutex
	state    QPState
	remote   uint32
	recvs    []RecvWR
	sends    []emuSend
	inFlight int // sends taken by run and not yet completed
	cq       []Completion
	armed    bool
	shut     bool
}

var _ QP = (*emuQP)(nil)

func (q *emuQP) Num() uint32 { return q.num }

func (q *emuQP) State() QPState {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.state
}

func (q *emuQP) Connect(psn uint32, gidIndex int, remote Endpoint) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state != StateInit {
		return fmt.Errorf("%w: connect in state %v", ErrQPState, q.state)
	}
	q.remote = remote.QPN
	q.state = StateRTS
	return nil
}

func (q *emuQP) PostRecv(wr RecvWR) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.shut:
		return ErrQPClosed
	case q.state == StateError:
		q.complete(Completion{ID: wr.ID, Op: OpRecv, Status: StatusFlushed})
		return nil
	case len(q.recvs) >= q.cfg.RecvDepth:
		return fmt.Errorf("rdma: receive queue full (%d)", q.cfg.RecvDepth)
	}
	q.recvs = append(q.recvs, wr)
	return nil
}

func (q *emuQP) PostSend(wr SendWR) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.shut:
		return ErrQPClosed
	case q.state == StateError:
		q.complete(Completion{ID: wr.ID, Op: wr.Op, Status: StatusFlushed})
		return nil
	case q.state != StateRTS:
		return fmt.Errorf("%w: send in state %v", ErrQPState, q.state)
	case len(q.sends)+q.inFlight >= q.cfg.SendDepth:
		return fmt.Errorf("rdma: send queue full (%d)", q.cfg.SendDepth)
	case wr.Inline && wr.Local.Len > q.cfg.MaxInline:
		return fmt.Errorf("rdma: inline send of %d bytes past the QP's %d", wr.Local.Len, q.cfg.MaxInline)
	}
	s := emuSend{wr: wr}
	if wr.Inline {
		// Inline data is read at post time: the buffer is free at once.
		b, ok := q.local(wr.Local, 0)
		if !ok {
			return fmt.Errorf("rdma: inline send from memory outside its region")
		}
		s.inline = append([]byte(nil), b...)
	}
	q.sends = append(q.sends, s)
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return nil
}

func (q *emuQP) Poll(wc []Completion) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := copy(wc, q.cq)
	q.cq = q.cq[n:]
	return n, nil
}

func (q *emuQP) Arm() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shut {
		return ErrQPClosed
	}
	q.armed = true
	return nil
}

func (q *emuQP) Wait() error {
	select {
	case <-q.notify:
		return nil
	case <-q.closed:
		return ErrQPClosed
	}
}

func (q *emuQP) Close() error {
	q.mu.Lock()
	if q.shut {
		q.mu.Unlock()
		return nil
	}
	q.shut = true
	q.toErrorLocked()
	q.mu.Unlock()
	close(q.closed)
	q.dev.fab.mu.Lock()
	delete(q.dev.fab.qps, q.num)
	q.dev.fab.mu.Unlock()
	return nil
}

// complete queues a completion; q.mu is held.
func (q *emuQP) complete(c Completion) {
	q.cq = append(q.cq, c)
	if q.armed {
		q.armed = false
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
}

// toErrorLocked moves q to the error state and flushes its work.
func (q *emuQP) toErrorLocked() {
	q.state = StateError
	for _, s := range q.sends {
		q.complete(Completion{ID: s.wr.ID, Op: s.wr.Op, Status: StatusFlushed})
	}
	q.sends = nil
	for _, r := range q.recvs {
		q.complete(Completion{ID: r.ID, Op: OpRecv, Status: StatusFlushed})
	}
	q.recvs = nil
}

func (q *emuQP) fail(wr SendWR, st Status) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inFlight--
	q.complete(Completion{ID: wr.ID, Op: wr.Op, Status: st})
	q.toErrorLocked()
}

// run is the QP's wire: it executes sends one at a time, in order.
func (q *emuQP) run() {
	for {
		select {
		case <-q.kick:
		case <-q.closed:
			return
		}
		for {
			q.mu.Lock()
			if len(q.sends) == 0 || q.state != StateRTS {
				q.mu.Unlock()
				break
			}
			s := q.sends[0]
			q.sends = q.sends[1:]
			q.inFlight++
			q.mu.Unlock()
			q.execute(s)
		}
	}
}

func (q *emuQP) execute(s emuSend) {
	data := s.inline
	if !s.wr.Inline {
		b, ok := q.local(s.wr.Local, 0)
		if !ok {
			q.fail(s.wr, StatusLocalProtection)
			return
		}
		data = b
	}
	switch s.wr.Op {
	case OpWrite:
		q.write(s.wr, data)
	case OpSend:
		q.send(s.wr, data)
	default:
		q.fail(s.wr, StatusRemoteInvalidReq)
	}
}

// peer returns the connected QP when it is there to answer.
func (q *emuQP) peer() *emuQP {
	p := q.dev.fab.lookup(q.remote)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut || p.state == StateError || p.remote != q.num {
		return nil
	}
	return p
}

func (q *emuQP) succeed(wr SendWR) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inFlight--
	q.complete(Completion{ID: wr.ID, Op: wr.Op, Status: StatusSuccess, Len: wr.Local.Len})
}

func (q *emuQP) write(wr SendWR, data []byte) {
	p := q.peer()
	if p == nil {
		q.fail(wr, StatusRetryExceeded)
		return
	}
	dst, ok := p.dev.region(wr.Remote.RKey, wr.Remote.Addr, len(data), p.domain, AccessRemoteWrite)
	if !ok {
		// An R_Key violation is a class C responder error (IBTA
		// C9-222.1.1): a NAK to the writer, and at the responder an
		// affiliated asynchronous error with its QP in the error state,
		// which the connection sees as its receives flushed.
		p.mu.Lock()
		p.toErrorLocked()
		p.mu.Unlock()
		q.fail(wr, StatusRemoteAccess)
		return
	}
	copy(dst, data)
	q.succeed(wr)
}

func (q *emuQP) send(wr SendWR, data []byte) {
	for try := 0; ; try++ {
		p := q.peer()
		if p == nil {
			q.fail(wr, StatusRetryExceeded)
			return
		}
		p.mu.Lock()
		if len(p.recvs) > 0 {
			r := p.recvs[0]
			p.recvs = p.recvs[1:]
			dst, ok := p.local(r.Local, AccessLocalWrite)
			if !ok || len(data) > len(dst) {
				p.complete(Completion{ID: r.ID, Op: OpRecv, Status: StatusLocalLength})
				p.toErrorLocked()
				p.mu.Unlock()
				q.fail(wr, StatusRemoteInvalidReq)
				return
			}
			copy(dst, data)
			p.complete(Completion{ID: r.ID, Op: OpRecv, Status: StatusSuccess, Len: len(data)})
			p.mu.Unlock()
			q.succeed(wr)
			return
		}
		p.mu.Unlock()
		if q.cfg.RNRRetry != 7 && try >= q.cfg.RNRRetry {
			q.fail(wr, StatusRNRRetryExceeded)
			return
		}
		select {
		case <-time.After(q.dev.fab.RNRDelay):
		case <-q.closed:
			return
		}
	}
}
