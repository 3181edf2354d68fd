package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// The floors: what the hardware and the kernel allow, with no gpufabric in
// the path, measured in the same run as the figures set beside them. They
// run between goroutines of this process, as the in-process server does,
// and return errors rather than failing a test, so benchmarks elsewhere in
// the tree can use them too.

// Budget bounds a measurement: it ends after Rounds rounds, once Time has
// passed, or soon after Done is closed, whichever comes first. A zero field
// sets no bound; the zero Budget means DefaultRounds rounds. Latency
// measurements also stop at MaxSamples.
type Budget struct {
	Rounds int
	Time   time.Duration
	// Done, typically a context's Done, cuts a measurement short.
	Done <-chan struct{}
}

// DefaultRounds is the zero Budget's round count.
const DefaultRounds = 1000

// MaxSamples bounds the latency samples one measurement keeps (8 MiB of
// them): a spinning floor would otherwise fill memory within seconds.
const MaxSamples = 1 << 20

// ErrNotSupported is returned by floors and scenarios this platform lacks.
var ErrNotSupported = errors.New("bench: not supported on this platform")

// clock counts a Budget's rounds and watches its time.
type clock struct {
	rounds int
	end    time.Time
	cut    <-chan struct{}
}

func (b Budget) start() clock {
	c := clock{rounds: b.Rounds, cut: b.Done}
	if b.Rounds <= 0 && b.Time <= 0 {
		c.rounds = DefaultRounds
	}
	if b.Time > 0 {
		c.end = time.Now().Add(b.Time)
	}
	return c
}

// done reports whether i rounds use the budget up, now being the time.
// It looks at Done every 64 rounds: a spinning floor's round is shorter
// than a look.
func (c clock) done(i int, now time.Time) bool {
	if (c.rounds > 0 && i >= c.rounds) || i >= MaxSamples || (!c.end.IsZero() && !now.Before(c.end)) {
		return true
	}
	if c.cut != nil && i%64 == 0 {
		select {
		case <-c.cut:
			return true
		default:
		}
	}
	return false
}

// TCPPingPong measures round trips of size-byte messages over a loopback
// TCP connection between two goroutines, after a short warm-up: the floor
// of a synchronous call over TCP. It returns one sample per round trip.
func TCPPingPong(size int, b Budget) ([]time.Duration, error) {
	if size < 1 {
		return nil, fmt.Errorf("bench: ping-pong of %d bytes", size)
	}
	c, stop, err := loopbackPair(func(c net.Conn) error {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	buf := make([]byte, size)
	round := func() error {
		if _, err := c.Write(buf); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		return err
	}
	for range warmupRounds {
		if err := round(); err != nil {
			return nil, err
		}
	}
	return timeRounds(b.start(), round)
}

// timeRounds runs round until clk is done and times each round alone: the
// clock is read just before and just after it, so that neither the loop
// nor the growing of the samples is counted in them.
func timeRounds(clk clock, round func() error) ([]time.Duration, error) {
	samples := make([]time.Duration, 0, 4096)
	for now := time.Now(); !clk.done(len(samples), now); {
		t0 := time.Now()
		err := round()
		now = time.Now()
		if err != nil {
			return samples, err
		}
		samples = append(samples, now.Sub(t0))
	}
	return samples, nil
}

// warmupRounds precede measured round trips: the first ones pay for cold
// caches and the peer's goroutine waking.
const warmupRounds = 16

// TCPStream measures one-way throughput over a loopback TCP connection:
// total bytes written in writes of chunk bytes, until the reader has them
// all. It returns bytes per second.
func TCPStream(chunk, total int) (float64, error) {
	if chunk < 1 || total < chunk {
		return 0, fmt.Errorf("bench: stream of %d bytes in chunks of %d", total, chunk)
	}
	c, stop, err := loopbackPair(func(c net.Conn) error {
		buf := make([]byte, max(chunk, 64<<10))
		for n := 0; n < total; {
			m, err := c.Read(buf)
			if err != nil {
				return err
			}
			n += m
		}
		_, err := c.Write([]byte{1})
		return err
	})
	if err != nil {
		return 0, err
	}
	defer stop()
	buf := Written(chunk)
	start := time.Now()
	for sent := 0; sent < total; sent += chunk {
		if _, err := c.Write(buf[:min(chunk, total-sent)]); err != nil {
			return 0, err
		}
	}
	if _, err := io.ReadFull(c, buf[:1]); err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// TCPTransfer measures synchronous transfers over a loopback TCP
// connection: size bytes one way, then a 1-byte reply, repeated within b
// after one warm-up transfer. It is the floor of a synchronous copy over
// TCP, round trip included, and reaches TCPStream's rate for large sizes.
// It returns bytes per second.
func TCPTransfer(size int, b Budget) (float64, error) {
	t, err := NewTCPTransfer(size)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	if err := t.Once(); err != nil {
		return 0, err
	}
	clk := b.start()
	n := 0
	start := time.Now()
	for now := start; !clk.done(n, now); now = time.Now() {
		if err := t.Once(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) * float64(size) / time.Since(start).Seconds(), nil
}

// Transfer is TCPTransfer's loopback pair kept open, so that a benchmark
// can time one floor transfer in turn with each operation it measures and
// both see the same load on a shared machine.
//
// The receiver reads into a buffer as large as the transfer, as a copy's
// receiver writes into device memory or an application's buffer of that
// size: a receive buffer smaller than the transfer, read into again and
// again, stays in the cache, and made a floor 1.2x faster at 64 MiB on a
// 2-vCPU Xeon VM than a receive into memory of the transfer's size.
type Transfer struct {
	c    net.Conn
	stop func()
	buf  []byte
	ack  [1]byte
}

// NewTCPTransfer opens a loopback pair for transfers of size bytes.
func NewTCPTransfer(size int) (*Transfer, error) {
	if size < 1 {
		return nil, fmt.Errorf("bench: transfer of %d bytes", size)
	}
	c, stop, err := loopbackPair(func(c net.Conn) error {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if _, err := c.Write(buf[:1]); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return &Transfer{c: c, stop: stop, buf: Written(size)}, nil
}

// Once sends size bytes and waits for the 1-byte reply.
func (t *Transfer) Once() error {
	if _, err := t.c.Write(t.buf); err != nil {
		return err
	}
	_, err := io.ReadFull(t.c, t.ack[:])
	return err
}

// Close ends the pair.
func (t *Transfer) Close() { t.stop() }

// Memcpy measures copy() of size bytes between two buffers of this
// process, after one warm-up copy that also faults their pages in: the
// floor of a copy through shared memory, and of a device-to-device copy on
// the host backend. It returns bytes per second.
func Memcpy(size int, b Budget) float64 {
	if size < 1 {
		return 0
	}
	return memcpyRate(make([]byte, size), Written(size), b)
}

// Written returns a buffer of size bytes, every byte of which has been
// written, for a floor or a benchmark to copy or send from. A buffer
// never written maps the kernel's one zero page wherever it is read, and
// reading it comes from the cache: a 64 MiB copy() out of one ran at up
// to 18 GB/s against 7-8 GB/s out of written memory on a 2-vCPU Xeon VM
// (2026-12-03), so a floor that sent or copied from it was up to 2.4x
// too fast beside a copy whose source, device memory, holds data.
func Written(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

func memcpyRate(dst, src []byte, b Budget) float64 {
	copy(dst, src)
	clk := b.start()
	n := 0
	start := time.Now()
	for now := start; !clk.done(n, now); now = time.Now() {
		copy(dst, src)
		n++
	}
	return float64(n) * float64(len(src)) / time.Since(start).Seconds()
}

// loopbackPair connects to a loopback listener whose one connection is
// served by peer; stop closes both ends and waits for peer.
func loopbackPair(peer func(net.Conn) error) (net.Conn, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("bench: loopback floor: %w", err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		peer(c) // it ends when stop closes the connection
		c.Close()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		l.Close()
		<-done
		return nil, nil, fmt.Errorf("bench: loopback floor: %w", err)
	}
	if _, ok := <-accepted; !ok {
		c.Close()
		<-done
		return nil, nil, errors.New("bench: loopback floor: accept failed")
	}
	stop := func() {
		c.Close()
		<-done
	}
	return c, stop, nil
}
