package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// setupTime bounds a tenant's setup: connecting, attaching, allocating.
const setupTime = 10 * time.Second

// hostileClient connects a session for the other tenant over tr and
// attaches it with the first of shares the server grants. The session is
// closed when ctx is done.
func (r *runner) hostileClient(ctx context.Context, tr string, shares []float64) (*client, float64, error) {
	s, err := r.connect(tr)
	if err != nil {
		return nil, 0, err
	}
	c := &client{tr: tr, s: s}
	defer guard(s)()
	for _, f := range shares {
		if err = c.attach(ctx, r.device, interpose.Share{Fraction: f}); err == nil {
			return c, f, nil
		}
	}
	c.close()
	return nil, 0, err
}

// MaxFloodLaunches bounds the launches of the flooding tenant.
const MaxFloodLaunches = 1 << 20

// guard cuts s off should setupTime pass before the returned stop is
// called: a call to a server that stopped answering would wait forever.
func guard(s *interpose.Session) (stop func()) {
	t := time.AfterFunc(setupTime, func() { s.Close() })
	return func() { t.Stop() }
}

// launchFlood: asynchronous launches of spin(Kernel) on a large share, as
// fast as they go, never synchronised, until the phase ends or
// MaxFloodLaunches have gone.
func (r *runner) launchFlood(ctx context.Context) (*tenant, error) {
	tr := r.tenantTransport()
	c, share, err := r.hostileClient(ctx, tr, []float64{0.5, 0.25, 0.1, 0.05})
	if err != nil {
		return nil, fmt.Errorf("flooding tenant: %w", err)
	}
	kernel := r.cfg.Noisy.Kernel
	limit := MaxFloodLaunches
	var g goroutines
	var launched atomic.Int64
	var took atomic.Int64
	began := time.Now()
	g.Go(func() error {
		st := c.dev.DefaultStream()
		one := interpose.D1(1)
		defer func() { took.Store(int64(time.Since(began))) }()
		for launched.Load() < int64(limit) && ctx.Err() == nil {
			if err := c.spin.Launch(st, one, one, 0, uint64(kernel.Nanoseconds())); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("flood launch %d: %w", launched.Load()+1, err)
			}
			launched.Add(1)
		}
		return nil
	})
	return &tenant{stop: func() (string, error) {
		// A launch the server holds back is released by the close.
		t0 := time.Now()
		closed := make(chan struct{})
		go func() { c.closeContext(r.ctx); close(closed) }()
		err := g.wait()
		select {
		case <-closed:
		case <-time.After(NoisyGrace):
			err = errors.Join(err, fmt.Errorf("the flooding tenant's session did not close within %v", NoisyGrace))
		}
		return fmt.Sprintf("launched %d spin(%v) on a %.3g share over %s in %s, never synchronised (at most %d); its Close took %s",
			launched.Load(), kernel, share, tr, fmtSeconds(time.Duration(took.Load()).Seconds()), limit, fmtSeconds(time.Since(t0).Seconds())), err
	}}, nil
}

// rawConn speaks the protocol on a bare transport connection, so that a
// tenant can make calls and never read their replies.
type rawConn struct {
	conn transport.Conn
	seq  uint32
	buf  []byte
}

func (c *rawConn) send(m api.Message, payload []byte) error {
	c.seq++
	c.buf = api.AppendRequest(c.buf[:0], c.seq, 0, m)
	return c.conn.Send(c.buf, payload)
}

// call sends m and reads replies until its own, decoding it into reply.
func (c *rawConn) call(m api.Message, payload []byte, reply api.Message) error {
	if err := c.send(m, payload); err != nil {
		return err
	}
	for {
		body, n, err := c.conn.Recv()
		if err != nil {
			return err
		}
		if n > 0 {
			if err := c.conn.ReadPayload(make([]byte, n)); err != nil {
				return err
			}
		}
		h, fields, err := api.ReadHeader(body)
		if err != nil {
			return err
		}
		if h.Seq != c.seq {
			continue
		}
		callErr, err := api.DecodeReply(fields, reply)
		if err != nil {
			return err
		}
		return callErr
	}
}

// rawSession dials tr (endpoint: the TCP address or the shm path), says
// Hello, attaches a small share and allocates size bytes, reading the
// replies; ctx's end, or setupTime passing first, closes the connection.
func (r *runner) rawSession(ctx context.Context, tr, endpoint string, size uint64) (*rawConn, uint32, uint64, error) {
	dctx, cancel := context.WithTimeout(ctx, setupTime)
	defer cancel()
	var conn transport.Conn
	var err error
	if tr == shm.Name {
		conn, err = shm.Dial(dctx, endpoint, shm.Options{})
	} else {
		conn, err = tcp.Dial(dctx, endpoint, transport.Options{})
	}
	if err != nil {
		return nil, 0, 0, err
	}
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	c := &rawConn{conn: conn}
	fail := func(what string, err error) (*rawConn, uint32, uint64, error) {
		conn.Close()
		stop()
		return nil, 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	var hello api.HelloReply
	if err := c.call(&api.Hello{Magic: api.Magic, Version: api.Version, Client: "gpufabric bench: a tenant that stops reading", Token: r.cfg.Token}, nil, &hello); err != nil {
		return fail("hello", err)
	}
	var att api.AttachReply
	for _, f := range smallShares {
		if err = c.call(&api.Attach{Device: int32(r.device), ShareMillionths: uint32(f * 1e6)}, nil, &att); err == nil {
			break
		}
	}
	if err != nil {
		return fail("attach", err)
	}
	var alloc api.MemAllocReply
	if err := c.call(&api.MemAlloc{Ordinal: att.Ordinal, Size: size}, nil, &alloc); err != nil {
		return fail("alloc", err)
	}
	if !stop() {
		conn.Close()
		return nil, 0, 0, fmt.Errorf("setup took over %v", setupTime)
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	return c, att.Ordinal, alloc.Ptr, nil
}

// Bounds of the tenant that stops reading, per connection.
const (
	noReadCopy   = 32 << 20 // each device-to-host copy
	noReadCopies = 64
	noReadEcho   = 1 << 20
	noReadEchoes = 64
	noReadPings  = 1 << 18
)

// stoppedReader: over TCP, and shared memory where it reaches the server,
// a raw connection allocates, then makes synchronous device-to-host copies
// of 32 MiB, Echoes of 1 MiB and Pings, and never reads a reply.
func (r *runner) stoppedReader(ctx context.Context) (*tenant, error) {
	type lane struct {
		tr, endpoint          string
		copies, echoes, pings atomic.Int64
		took                  atomic.Int64
		err                   error
	}
	lanes := []*lane{{tr: tcp.Name, endpoint: r.addr}}
	if ep := r.shmOffer(); ep != "" {
		lanes = append(lanes, &lane{tr: shm.Name, endpoint: ep})
	}
	var g goroutines
	var setupErrs []error
	echo := make([]byte, noReadEcho)
	for _, l := range lanes {
		c, ordinal, ptr, err := r.rawSession(ctx, l.tr, l.endpoint, noReadCopy)
		if err != nil {
			l.err = err
			setupErrs = append(setupErrs, fmt.Errorf("tenant that stops reading, over %s: %w", l.tr, err))
			continue
		}
		g.Go(func() error {
			began := time.Now()
			defer func() { l.took.Store(int64(time.Since(began))) }()
		flood:
			for ctx.Err() == nil && (l.copies.Load() < noReadCopies || l.echoes.Load() < noReadEchoes || l.pings.Load() < noReadPings) {
				if l.copies.Load() < noReadCopies {
					if c.send(&api.MemcpyDtoH{Src: ptr, Size: noReadCopy, Stream: api.DefaultStream(ordinal)}, nil) != nil {
						break flood
					}
					l.copies.Add(1)
				}
				if l.echoes.Load() < noReadEchoes {
					if c.send(&api.Echo{}, echo) != nil {
						break flood
					}
					l.echoes.Add(1)
				}
				for range 1 << 12 {
					if l.pings.Load() >= noReadPings {
						break
					}
					if c.send(&api.Ping{}, nil) != nil {
						break flood
					}
					l.pings.Add(1)
				}
			}
			<-ctx.Done() // the connection stays open, unread, to the end
			return nil
		})
	}
	if len(setupErrs) == len(lanes) {
		return nil, errors.Join(setupErrs...)
	}
	return &tenant{stop: func() (string, error) {
		err := g.wait()
		var parts []string
		for _, l := range lanes {
			if l.err != nil {
				parts = append(parts, fmt.Sprintf("over %s: failed: %v", l.tr, l.err))
				continue
			}
			parts = append(parts, fmt.Sprintf("over %s: %d DtoH of %s, %d Echo of %s, %d Ping sent in %v (the rest blocked)",
				l.tr, l.copies.Load(), fmtBytes(noReadCopy), l.echoes.Load(), fmtBytes(noReadEcho), l.pings.Load(),
				time.Duration(l.took.Load()).Round(time.Millisecond)))
		}
		return "raw connections that never read a reply: " + strings.Join(parts, "; ") + fmt.Sprintf(" (at most %d, %d and %d a connection)", noReadCopies, noReadEchoes, noReadPings),
			errors.Join(append(setupErrs, err)...)
	}}, nil
}

// hugeImage is kernels.ptx padded with a comment to size bytes.
func hugeImage(size int) []byte {
	img := bytes.NewBuffer(make([]byte, 0, size))
	img.Write(examples.KernelsPTX)
	line := "// " + strings.Repeat("padding of a huge module image ", 4) + "\n"
	for img.Len()+len(line) <= size {
		img.WriteString(line)
	}
	for img.Len() < size {
		img.WriteByte('\n')
	}
	return img.Bytes()
}

// hugeModules: over TCP, module images of ModuleBytes loaded in a row,
// Modules of them, each kept loaded.
func (r *runner) hugeModules(ctx context.Context) (*tenant, error) {
	ns := r.noisy
	if len(ns.image) != r.cfg.Noisy.ModuleBytes {
		ns.image = hugeImage(r.cfg.Noisy.ModuleBytes)
	}
	c, _, err := r.hostileClient(ctx, tcp.Name, smallShares)
	if err != nil {
		return nil, fmt.Errorf("tenant loading modules: %w", err)
	}
	var g goroutines
	var loaded atomic.Int64
	var took atomic.Int64
	g.Go(func() error {
		began := time.Now()
		for loaded.Load() < int64(r.cfg.Noisy.Modules) && ctx.Err() == nil {
			m, err := c.dev.LoadModule(ns.image)
			if err == nil {
				_, err = m.Function("spin")
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("module %d: %w", loaded.Load()+1, err)
			}
			loaded.Add(1)
			took.Store(int64(time.Since(began)))
		}
		return nil
	})
	// A load in flight at the end is cut off by the close, which stop
	// waits for.
	var closeOnce sync.Once
	closeIt := func() { closeOnce.Do(func() { c.closeContext(r.ctx) }) }
	context.AfterFunc(ctx, closeIt)
	return &tenant{stop: func() (string, error) {
		t0 := time.Now()
		err := g.wait()
		closeIt()
		return fmt.Sprintf("loaded %d module images of %s (kernels.ptx and a comment) in a row over tcp in %s, each kept loaded (at most %d); its Close took %s",
			loaded.Load(), fmtBytes(uint64(len(ns.image))), fmtSeconds(time.Duration(took.Load()).Seconds()), r.cfg.Noisy.Modules, fmtSeconds(time.Since(t0).Seconds())), err
	}}, nil
}

// Kinds of idle connection.
const (
	idleSilent    = iota // TCP, nothing sent
	idleHello            // TCP, Hello sent, nothing after (its reply unread)
	idlePartial          // TCP, a frame announced and left unfinished
	idleShm              // shared memory, mapped, nothing sent
	idleShmUnread        // shared memory's socket, the region never picked up
	idleKinds
)

var idleKindNames = [idleKinds]string{"silent", "after Hello", "mid-frame", "shm mapped", "shm never picked up"}

// idleConns: IdleConns connections to a server on loopback that do
// nothing, opened by 16 dialers in the first half of the phase and held
// to its end.
func (r *runner) idleConns(ctx context.Context) (*tenant, error) {
	if !onLoopback(r.addr) {
		return nil, skipPhase("thousands of connections are opened only to a server on loopback, not " + r.addr)
	}
	cfg := r.cfg.Noisy
	shmPath := r.shmOffer()
	kinds := make([]int, 0, cfg.IdleConns)
	nShm := 0
	if shmPath != "" {
		nShm = cfg.ShmConns
	}
	for i := range nShm {
		kinds = append(kinds, idleShm+i%2)
	}
	for i := 0; len(kinds) < cfg.IdleConns; i++ {
		kinds = append(kinds, i%3)
	}
	// Spread the shared-memory ones among the rest.
	for i := range nShm {
		j := i * len(kinds) / max(nShm, 1)
		kinds[i], kinds[j] = kinds[j], kinds[i]
	}
	hello := frame(api.AppendRequest(nil, 1, 0, &api.Hello{Magic: api.Magic, Version: api.Version, Client: "gpufabric bench: an idle connection", Token: r.cfg.Token}), 0)
	var (
		mu     sync.Mutex
		closer []func()
		tcps   []net.Conn
		opened [idleKinds]int
		failed [idleKinds]int
		first  error
		next   atomic.Int64
	)
	openUntil := time.Now().Add(cfg.Phase / 2)
	began := time.Now()
	var took atomic.Int64
	open := func(kind int) (func(), []byte, net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var d net.Dialer
		switch kind {
		case idleShm:
			c, err := shm.Dial(dctx, shmPath, shm.Options{})
			if err != nil {
				return nil, nil, nil, err
			}
			return func() { c.Close() }, nil, nil, nil
		case idleShmUnread:
			c, err := d.DialContext(dctx, "unix", shmPath)
			if err != nil {
				return nil, nil, nil, err
			}
			return func() { c.Close() }, nil, nil, nil
		}
		c, err := d.DialContext(dctx, "tcp", r.addr)
		if err != nil {
			return nil, nil, nil, err
		}
		var out []byte
		switch kind {
		case idleHello:
			out = hello
		case idlePartial:
			if next.Add(1)%2 == 0 {
				// A body of 64 KiB announced, 16 bytes of it sent.
				out = binary.LittleEndian.AppendUint32(nil, 64<<10)
				out = binary.LittleEndian.AppendUint32(out, 0)
				out = append(out, make([]byte, 16)...)
			} else {
				// An Echo whose 16 MiB payload stops after 4 KiB.
				body := api.AppendRequest(nil, 1, 0, &api.Echo{})
				out = append(frame(body, api.MaxEcho), make([]byte, 4<<10)...)
			}
		}
		return func() { c.Close() }, out, c, nil
	}
	var g goroutines
	var idx atomic.Int64
	for range 16 {
		g.Go(func() error {
			for ctx.Err() == nil && time.Now().Before(openUntil) {
				i := int(idx.Add(1)) - 1
				if i >= len(kinds) {
					return nil
				}
				kind := kinds[i]
				closeIt, out, c, err := open(kind)
				if err == nil && len(out) > 0 {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err = c.Write(out); err != nil {
						closeIt()
					}
				}
				mu.Lock()
				if err != nil {
					failed[kind]++
					if first == nil && ctx.Err() == nil {
						first = fmt.Errorf("%s: %w", idleKindNames[kind], err)
					}
				} else {
					opened[kind]++
					closer = append(closer, closeIt)
					if c != nil {
						tcps = append(tcps, c)
					}
				}
				took.Store(int64(time.Since(began)))
				mu.Unlock()
			}
			return nil
		})
	}
	return &tenant{stop: func() (string, error) {
		err := g.wait()
		mu.Lock()
		defer mu.Unlock()
		cut := serverClosed(tcps)
		var wg sync.WaitGroup
		for _, c := range closer {
			wg.Go(c)
		}
		wg.Wait()
		var parts []string
		total, nFailed := 0, 0
		for k := range idleKinds {
			total += opened[k]
			nFailed += failed[k]
			if opened[k]+failed[k] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", opened[k], idleKindNames[k]))
			}
		}
		desc := fmt.Sprintf("opened %d idle connections (%s) in %s, held to the end; %d failed to open; the server had closed %d of the %d TCP ones by the end",
			total, strings.Join(parts, ", "), fmtSeconds(time.Duration(took.Load()).Seconds()), nFailed, cut, len(tcps))
		if first != nil {
			desc += fmt.Sprintf(" (first: %v)", first)
		}
		return desc, err
	}}, nil
}

// frame puts a frame header before body: its length and a payload length.
func frame(body []byte, payloadLen int) []byte {
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	out = binary.LittleEndian.AppendUint32(out, uint32(payloadLen))
	return append(out, body...)
}

// serverClosed counts the connections the server has closed: a read that
// finds the end of the stream (or a reset) within a few milliseconds.
func serverClosed(conns []net.Conn) int {
	var n atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				c := conns[i]
				c.SetReadDeadline(time.Now().Add(2 * time.Millisecond))
				for {
					_, err := c.Read(buf)
					if err == nil {
						continue // replies the connection never read
					}
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						n.Add(1)
					}
					break
				}
			}
		})
	}
	wg.Wait()
	return int(n.Load())
}
