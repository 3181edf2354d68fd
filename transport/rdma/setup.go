package rdma

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// A connection is set up over TCP: each side creates its QP, posts its
// receives, and sends a hello with what the peer needs to connect to it
// and to write into it; both connect their QPs, then trade one byte so
// that neither SENDs before the other's QP can receive. The TCP
// connection stays open: when it closes, the peer is gone.

const helloMagic = "gfrdma01"

// hello is the setup message, fixed-size and little-endian.
type hello struct {
	Magic           [8]byte
	QPN, PSN        uint32
	LID             uint16
	_               uint16
	MTU             uint32
	GID             [16]byte
	RecvDepth       uint32
	SlotSize        uint32
	StagingAddr     uint64
	StagingRKey     uint32
	StagingSlots    uint32
	StagingSlotSize uint32
	_               uint32
}

// Limits on what a peer's hello may ask of us.
const (
	maxRecvDepth       = 4096
	maxSlotSize        = 1 << 20
	maxStagingSlots    = 1024
	maxStagingSlotSize = 64 << 20
)

// ErrHandshake is returned when setting up a connection fails on what
// the peer sent.
var ErrHandshake = errors.New("rdma: handshake failed")

func (h *hello) check(ours Config) error {
	switch {
	case string(h.Magic[:]) != helloMagic:
		return fmt.Errorf("%w: not a gpufabric RDMA peer (magic %q)", ErrHandshake, h.Magic[:])
	case h.RecvDepth < 4 || h.RecvDepth > maxRecvDepth:
		return fmt.Errorf("%w: peer's receive depth %d outside [4, %d]", ErrHandshake, h.RecvDepth, maxRecvDepth)
	case int(h.RecvDepth) != ours.RecvDepth:
		return fmt.Errorf("%w: peer's receive depth %d, ours %d", ErrHandshake, h.RecvDepth, ours.RecvDepth)
	case int(h.SlotSize) != ours.SlotSize:
		return fmt.Errorf("%w: peer's slot size %d, ours %d", ErrHandshake, h.SlotSize, ours.SlotSize)
	case h.StagingSlots > maxStagingSlots || h.StagingSlotSize > maxStagingSlotSize:
		return fmt.Errorf("%w: peer's staging of %d x %d bytes past the limits", ErrHandshake, h.StagingSlots, h.StagingSlotSize)
	case h.StagingSlots > 0 && h.StagingSlotSize < uint32(ours.SlotSize):
		return fmt.Errorf("%w: peer's staging slots of %d bytes are smaller than a message", ErrHandshake, h.StagingSlotSize)
	}
	return nil
}

// Dial connects to an RDMA listener at addr (its TCP control address)
// through dev.
func Dial(ctx context.Context, addr string, dev Device, cfg Config) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rdma: dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	} else {
		nc.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	// The dialing side (the client) offers no staging: what it receives,
	// device-to-host data, is written straight into its reader's buffer.
	cfg.StagingSlots = 0
	c, err := setup(nc, dev, cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rdma: dial %s: %w", addr, err)
	}
	return c, nil
}

const handshakeTimeout = 10 * time.Second

// Listener accepts RDMA connections on a TCP control address.
type Listener struct {
	l   net.Listener
	adm *transport.Admission
}

var _ transport.Listener = (*Listener)(nil)

// MaxHandshakes bounds the setups a listener runs at once; a peer past it
// is closed at once (transport.ErrBusy).
const MaxHandshakes = 64

// Listen listens on addr for peers to set up connections through dev.
// Accepted connections offer staging (Config.StagingSlots, default 8).
// Each peer's setup runs off the accept loop, within a deadline, so a slow
// or hostile peer delays no other; one whose setup fails is logged and
// closed, and Accept goes on to the next.
func Listen(addr string, dev Device, cfg Config) (*Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rdma: listen %s: %w", addr, err)
	}
	if cfg.StagingSlots == 0 {
		cfg.StagingSlots = DefaultStagingSlots
	}
	log := cfg.withDefaults().Logger
	handshake := func(nc net.Conn) (transport.Conn, error) {
		nc.SetDeadline(time.Now().Add(handshakeTimeout))
		return setup(nc, dev, cfg)
	}
	reject := func(nc net.Conn, err error) {
		log.Warn("rdma: connection setup failed", "remote", nc.RemoteAddr().String(), "err", err)
	}
	return &Listener{l: l, adm: transport.NewAdmission(l.Accept, MaxHandshakes, handshake, reject)}, nil
}

// Accept waits for the next connection set up.
func (l *Listener) Accept() (transport.Conn, error) { return l.adm.Accept() }

// Close stops listening and aborts the setups in progress; connections
// already accepted stay open.
func (l *Listener) Close() error { return l.adm.Close(l.l.Close) }

// Addr is the TCP control address.
func (l *Listener) Addr() string { return l.l.Addr().String() }

func setup(nc net.Conn, dev Device, cfg Config) (_ *Conn, err error) {
	cfg = cfg.withDefaults()
	attr := dev.Attr()
	c := &Conn{cfg: cfg, dev: dev, ctl: nc, wcDone: make(chan struct{})}
	c.cv.L = &c.mu
	if c.dom, err = dev.NewDomain(); err != nil {
		return nil, fmt.Errorf("rdma: protection domain: %w", err)
	}
	c.cache = NewRegCache(c.dom, cfg.RegCacheBytes)
	defer func() {
		if err != nil {
			c.undo()
		}
	}()
	c.maxInline = min(attr.MaxInline, 256)
	if c.qp, err = c.dom.CreateQP(QPConfig{SendDepth: 2*cfg.RecvDepth + 2, RecvDepth: cfg.RecvDepth + 1, MaxInline: c.maxInline, RNRRetry: 3}); err != nil {
		return nil, fmt.Errorf("rdma: create QP: %w", err)
	}
	if q, ok := c.qp.(interface{ MaxInline() int }); ok {
		c.maxInline = min(c.maxInline, q.MaxInline())
	}
	// One buffer more than the peer is granted: a SEND past its credits
	// lands there and is caught, instead of stalling it in RNR retries.
	if c.recvMR, err = c.register((cfg.RecvDepth+1)*cfg.SlotSize, AccessLocalWrite); err != nil {
		return nil, fmt.Errorf("rdma: register receive buffers: %w", err)
	}
	if c.sendMR, err = c.register(cfg.RecvDepth*cfg.SlotSize, 0); err != nil {
		return nil, fmt.Errorf("rdma: register send buffers: %w", err)
	}
	if c.bounceMR, err = c.register(cfg.StagingSlotSize, 0); err != nil {
		return nil, fmt.Errorf("rdma: register bounce buffer: %w", err)
	}
	if cfg.StagingSlots > 0 {
		if c.stagingMR, err = c.register(cfg.StagingSlots*cfg.StagingSlotSize, AccessRemoteWrite); err != nil {
			return nil, fmt.Errorf("rdma: register staging: %w", err)
		}
	}
	for i := range cfg.RecvDepth + 1 {
		if err := c.qp.PostRecv(RecvWR{ID: uint64(i), Local: SGE{MR: c.recvMR, Off: i * cfg.SlotSize, Len: cfg.SlotSize}}); err != nil {
			return nil, fmt.Errorf("rdma: post receive: %w", err)
		}
	}
	c.granted = int64(cfg.RecvDepth)
	for i := range cfg.RecvDepth {
		c.freeSlots = append(c.freeSlots, i)
	}

	gid, gidIndex := attr.GID, -1
	if cfg.PeerGID != nil {
		peer, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
		g, err := cfg.PeerGID(peer.Addr().Unmap())
		if err != nil {
			return nil, fmt.Errorf("rdma: GID for %v: %w", peer.Addr(), err)
		}
		gid, gidIndex = g.Addr.As16(), g.Index
	}
	var psnb [4]byte
	rand.Read(psnb[:])
	ours := hello{QPN: c.qp.Num(), PSN: binary.LittleEndian.Uint32(psnb[:]) & 0xffffff, LID: attr.LID,
		MTU: uint32(attr.MTU), GID: gid, RecvDepth: uint32(cfg.RecvDepth), SlotSize: uint32(cfg.SlotSize),
		StagingSlots: uint32(cfg.StagingSlots), StagingSlotSize: uint32(cfg.StagingSlotSize)}
	copy(ours.Magic[:], helloMagic)
	if c.stagingMR != nil {
		ours.StagingAddr, ours.StagingRKey = c.stagingMR.Addr(), c.stagingMR.RKey()
	} else {
		ours.StagingSlots, ours.StagingSlotSize = 0, 0
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, &ours)
	if _, err := nc.Write(out.Bytes()); err != nil {
		return nil, fmt.Errorf("rdma: send hello: %w", err)
	}
	var theirs hello
	if err := binary.Read(nc, binary.LittleEndian, &theirs); err != nil {
		return nil, fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
	}
	if err := theirs.check(cfg); err != nil {
		return nil, err
	}
	c.credits = int(theirs.RecvDepth)
	c.peer = peerInfo{stagingAddr: theirs.StagingAddr, stagingRKey: theirs.StagingRKey,
		stagingSlots: int(theirs.StagingSlots), stagingSlotSize: int(theirs.StagingSlotSize)}
	c.stagingFree = c.peer.stagingSlots
	mtu := min(int(theirs.MTU), attr.MTU)
	if err := c.qp.Connect(ours.PSN, gidIndex, Endpoint{QPN: theirs.QPN, PSN: theirs.PSN, LID: theirs.LID, MTU: mtu, GID: theirs.GID}); err != nil {
		return nil, fmt.Errorf("rdma: connect QP: %w", err)
	}
	if _, err := nc.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("rdma: send ready: %w", err)
	}
	if _, err := io.ReadFull(nc, make([]byte, 1)); err != nil {
		return nil, fmt.Errorf("%w: peer not ready: %w", ErrHandshake, err)
	}
	nc.SetDeadline(time.Time{})
	c.info = transport.Info{Transport: Name, Local: nc.LocalAddr().String(), Remote: nc.RemoteAddr().String(), Peer: peerOf(nc.RemoteAddr())}
	go c.progress()
	go c.watch()
	return c, nil
}

// undo frees what a failed setup made.
func (c *Conn) undo() {
	if c.qp != nil {
		c.qp.Close()
	}
	c.cache.Close()
	c.freeBuffers()
	c.dom.Close()
}

// allocator is implemented by devices that give connections memory of
// their own for registered buffers (the cgo device: outside the Go heap,
// which a device must not hold on to).
type allocator interface {
	Alloc(n int) ([]byte, error)
	Free(b []byte) error
}

// register allocates and registers n bytes the connection owns.
func (c *Conn) register(n int, access Access) (MR, error) {
	var b []byte
	if a, ok := c.dev.(allocator); ok {
		var err error
		if b, err = a.Alloc(n); err != nil {
			return nil, err
		}
	} else {
		b = make([]byte, n)
	}
	mr, err := c.dom.Register(b, access)
	if err != nil {
		if a, ok := c.dev.(allocator); ok {
			a.Free(b)
		}
		return nil, err
	}
	c.owned = append(c.owned, mr)
	return mr, nil
}

// freeBuffers deregisters and frees the connection's own buffers.
func (c *Conn) freeBuffers() {
	for _, mr := range c.owned {
		b := mr.Bytes()
		mr.Close()
		if a, ok := c.dev.(allocator); ok {
			a.Free(b)
		}
	}
	c.owned = nil
}

// peerOf names the peer by its IP, for per-peer limits.
func peerOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return "rdma:" + ta.IP.String()
	}
	return "rdma:" + a.String()
}
