//go:build linux

package shm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/transport"
)

// prompt bounds how long a test waits for something that should happen at
// once (a wake-up after a close); it is a hang detector, not a speed check.
const prompt = 10 * time.Second

// pair returns a connected client and server.
func pair(t testing.TB, opts Options) (client, server *Conn) {
	t.Helper()
	l, err := Listen(testPath(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := Dial(context.Background(), l.Addr(), opts)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		ch <- res{c.(*Conn), nil}
	}()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		sc.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close(); sc.Close() })
	return r.c, sc.(*Conn)
}

// pattern fills a payload with bytes that depend on seed and position.
func pattern(n int, seed uint64) []byte {
	p := make([]byte, n)
	var b [8]byte
	for i := 0; i < min(n, 4096); i += 8 {
		binary.LittleEndian.PutUint64(b[:], seed*0x9e3779b97f4a7c15+uint64(i))
		copy(p[i:], b[:])
	}
	for done := min(n, 4096); done < n; done *= 2 {
		copy(p[done:], p[:done]) // cheap even under -race
	}
	return p
}

// recvFrame receives one frame with its payload.
func recvFrame(c transport.Conn) (body, payload []byte, err error) {
	b, n, err := c.Recv()
	if err != nil {
		return nil, nil, err
	}
	body = append([]byte(nil), b...)
	payload = make([]byte, n)
	if err := c.ReadPayload(payload); err != nil {
		return nil, nil, err
	}
	return body, payload, nil
}

func TestInfo(t *testing.T) {
	c, s := pair(t, Options{})
	if c.Info().Transport != Name || s.Info().Transport != Name {
		t.Fatalf("Info().Transport = %q, %q; want %q", c.Info().Transport, s.Info().Transport, Name)
	}
	if want := fmt.Sprintf("pid:%d", os.Getpid()); s.Info().Remote != want {
		t.Errorf("server Info().Remote = %q, want %q", s.Info().Remote, want)
	}
	if want := fmt.Sprintf("uid:%d", os.Geteuid()); s.Info().Peer != want || c.Info().Peer != want {
		t.Errorf("Info().Peer = %q (server), %q (client); want %q", s.Info().Peer, c.Info().Peer, want)
	}
}

func TestSendRecv(t *testing.T) {
	small := Options{RingSize: 64 << 10, SlabSize: 256 << 10} // maxRecord 16 KiB, eager 8 KiB, chunks 64 KiB
	cases := []struct {
		name          string
		opts          Options
		body, payload int
	}{
		{"empty", Options{}, 0, 0},
		{"one byte", Options{}, 1, 1},
		{"body only", Options{}, 100, 0},
		{"eager limit", Options{}, 100, transport.DefaultEagerLimit},
		{"eager limit+1", Options{}, 100, transport.DefaultEagerLimit + 1},
		{"8 MiB", Options{}, 64, 8 << 20},
		{"small ring eager", small, 50, 8 << 10},
		{"small ring eager+1", small, 50, 8<<10 + 1},
		{"body past the ring record", small, 40 << 10, 0},
		{"body and payload via slab", small, 40 << 10, 700 << 10},
		{"large body", Options{}, transport.DefaultMaxBody, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t, tc.opts)
			for _, dir := range []struct {
				name     string
				from, to *Conn
			}{{"call", c, s}, {"reply", s, c}} {
				body, payload := pattern(tc.body, 1), pattern(tc.payload, 2)
				// Send three frames so the ring wraps and reuses space.
				errc := make(chan error, 1)
				go func() {
					for range 3 {
						if err := dir.from.Send(body, payload); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for i := range 3 {
					gb, gp, err := recvFrame(dir.to)
					if err != nil {
						t.Fatalf("%s %d: %v", dir.name, i, err)
					}
					if !bytes.Equal(gb, body) || !bytes.Equal(gp, payload) {
						t.Fatalf("%s %d: got body %d payload %d bytes, mismatched", dir.name, i, len(gb), len(gp))
					}
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestDiscard: a payload not read before the next Recv is skipped, inline
// or in chunks.
func TestDiscard(t *testing.T) {
	c, s := pair(t, Options{RingSize: 64 << 10, SlabSize: 256 << 10})
	sizes := []int{10, 8 << 10, 8<<10 + 1, 1 << 20, 0}
	go func() {
		for i, n := range sizes {
			c.Send([]byte{byte(i)}, pattern(n, uint64(i)))
		}
	}()
	for i, n := range sizes {
		b, pn, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 1 || int(b[0]) != i || pn != n {
			t.Fatalf("frame %d: body %v, payload %d; want [%d], %d", i, b, pn, i, n)
		}
	}
}

func TestReadPayloadLength(t *testing.T) {
	c, s := pair(t, Options{})
	if err := c.Send([]byte("x"), []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadPayload(make([]byte, 2)); err == nil {
		t.Fatal("ReadPayload with a short buffer succeeded")
	}
	p := make([]byte, 3)
	if err := s.ReadPayload(p); err != nil || string(p) != "abc" {
		t.Fatalf("ReadPayload = %q, %v", p, err)
	}
}

func TestSendTooLarge(t *testing.T) {
	c, _ := pair(t, Options{Options: transport.Options{MaxBody: 10}})
	if err := c.Send(make([]byte, 11), nil); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Fatalf("Send of a body past MaxBody: %v, want ErrFrameTooLarge", err)
	}
}

// TestConcurrentSenders checks per-sender order and content under many
// senders, payloads of every path (inline, chunked, several chunks), a
// small ring and slab that wrap often, both directions at once.
func TestConcurrentSenders(t *testing.T) {
	const senders, frames = 8, 300
	c, s := pair(t, Options{RingSize: 16 << 10, SlabSize: 64 << 10})
	size := func(sender, i int) int {
		switch (sender + i) % 5 {
		case 0:
			return 0
		case 1:
			return 1 + i%100
		case 2:
			return 2 << 10 // eager limit of a 16 KiB ring
		case 3:
			return 2<<10 + 1
		default:
			return 100<<10 + i // several 16 KiB chunks over a wrapping slab
		}
	}
	for _, dir := range []struct {
		name     string
		from, to *Conn
	}{{"call", c, s}, {"reply", s, c}} {
		t.Run(dir.name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			errc := make(chan error, senders)
			for id := range senders {
				wg.Go(func() {
					var body [16]byte
					for i := range frames {
						binary.LittleEndian.PutUint64(body[0:], uint64(id))
						binary.LittleEndian.PutUint64(body[8:], uint64(i))
						if err := dir.from.Send(body[:], pattern(size(id, i), uint64(id<<20|i))); err != nil {
							errc <- err
							return
						}
					}
				})
			}
			next := make([]int, senders)
			for range senders * frames {
				body, payload, err := recvFrame(dir.to)
				if err != nil {
					t.Fatal(err)
				}
				id, i := int(binary.LittleEndian.Uint64(body)), int(binary.LittleEndian.Uint64(body[8:]))
				if id >= senders || i != next[id] {
					t.Fatalf("sender %d frame %d arrived, want frame %d", id, i, next[min(id, senders-1)])
				}
				next[id]++
				if !bytes.Equal(payload, pattern(size(id, i), uint64(id<<20|i))) {
					t.Fatalf("sender %d frame %d: payload of %d bytes mismatched", id, i, len(payload))
				}
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
		})
	}
}

// TestLargePayload sends payloads many times the slab: the consumer
// gathers the chunks while the producer refills the slab.
func TestLargePayload(t *testing.T) {
	cases := []struct {
		name    string
		slab    int
		payload int
	}{
		{"40 MiB over a 4 MiB slab", 4 << 20, 40 << 20},
		{"256 MiB over a 16 MiB slab", 16 << 20, 256 << 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.payload > 64<<20 && testing.Short() {
				t.Skip("large copy; skipped with -short")
			}
			c, s := pair(t, Options{SlabSize: tc.slab})
			payload := pattern(tc.payload, 7)
			errc := make(chan error, 1)
			go func() { errc <- c.Send([]byte("big"), payload) }()
			body, n, err := s.Recv()
			if err != nil || string(body) != "big" || n != tc.payload {
				t.Fatalf("Recv = %q, %d, %v", body, n, err)
			}
			got := make([]byte, n)
			if err := s.ReadPayload(got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("payload mismatched")
			}
		})
	}
}

// TestSendCopies: once Send returns, the caller's buffers are free, for
// small and large payloads alike.
func TestSendCopies(t *testing.T) {
	c, s := pair(t, Options{SlabSize: 1 << 20})
	for _, n := range []int{100, 512 << 10} {
		body, payload := pattern(64, 3), pattern(n, 4)
		wantBody, wantPayload := bytes.Clone(body), bytes.Clone(payload)
		if err := c.Send(body, payload); err != nil {
			t.Fatal(err)
		}
		clear(body)
		clear(payload)
		gb, gp, err := recvFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, wantBody) || !bytes.Equal(gp, wantPayload) {
			t.Fatalf("payload of %d bytes changed after Send returned", n)
		}
	}
}

// TestBackPressure: a slow consumer makes the producer wait (on the futex,
// once its spin is spent), and nothing is lost.
func TestBackPressure(t *testing.T) {
	c, s := pair(t, Options{RingSize: 4 << 10, SlabSize: 8 << 10, Spin: -1})
	const frames = 400
	errc := make(chan error, 1)
	go func() {
		for i := range frames {
			if err := c.Send(binary.LittleEndian.AppendUint32(nil, uint32(i)), pattern(i*37%20000, uint64(i))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range frames {
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		body, payload, err := recvFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(body); got != uint32(i) || !bytes.Equal(payload, pattern(i*37%20000, uint64(i))) {
			t.Fatalf("frame %d: got frame %d, payload %d bytes", i, got, len(payload))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// And a consumer that finds the ring empty sleeps until the next frame.
	go func() {
		time.Sleep(20 * time.Millisecond)
		errc <- c.Send([]byte("last"), nil)
	}()
	if body, _, err := recvFrame(s); err != nil || string(body) != "last" {
		t.Fatalf("frame after an empty ring: %q, %v", body, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if c.sendSleeps.Load() == 0 {
		t.Error("the producer never slept on a full ring or slab")
	}
	if s.recvSleeps.Load() == 0 {
		t.Error("the consumer never slept on an empty ring")
	}
}

// TestNextSlotCleared: the word a consumer polls for the next record holds
// 0 until that record is committed, never a stale sequence number or an
// old record's bytes, though the ring laps many times with frames whose
// bytes are all plausible sequence numbers and whose records start inside
// earlier laps' records.
func TestNextSlotCleared(t *testing.T) {
	c, s := pair(t, Options{RingSize: 4 << 10, SlabSize: 8 << 10})
	for i := range 2000 {
		n := 8 + (i*52)%700
		body := make([]byte, 0, n)
		for k := uint32(0); len(body) < n; k++ {
			body = binary.LittleEndian.AppendUint32(body, s.rseq+k)
		}
		if err := c.Send(body, nil); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.Recv()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("frame %d: body changed", i)
		}
		if w := commitWord(next(s)).Load(); w != 0 {
			t.Fatalf("after frame %d the next slot holds %#x, want 0", i, w)
		}
	}
}

// fill sends small frames until Send blocks, then returns the channel its
// blocked Send's error arrives on.
func fill(t *testing.T, c *Conn) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		for {
			if err := c.Send(make([]byte, 100), nil); err != nil {
				errc <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(prompt)
	for c.sendSleeps.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ring never filled")
		}
		time.Sleep(time.Millisecond)
	}
	return errc
}

func waitErr(t *testing.T, what string, errc <-chan error, want ...error) {
	t.Helper()
	select {
	case err := <-errc:
		for _, w := range want {
			if errors.Is(err, w) {
				return
			}
		}
		t.Fatalf("%s: %v, want one of %v", what, err, want)
	case <-time.After(prompt):
		t.Fatalf("%s: still blocked after %v", what, prompt)
	}
}

func recvErr(c *Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			if _, _, err := recvFrame(c); err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

// TestPeerClose: when one end closes, the other's blocked Recv and Send
// return, after the frames sent before the close.
func TestPeerClose(t *testing.T) {
	for _, abrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abrupt=%v", abrupt), func(t *testing.T) {
			c, s := pair(t, Options{RingSize: 4 << 10})
			if err := c.Send([]byte("last words"), pattern(100<<10, 1)); err != nil {
				t.Fatal(err)
			}
			sendc := fill(t, s) // s's Send blocks: c does not read
			if abrupt {
				c.sock.Close() // as when the process dies: no shutdown, no wake
			} else {
				c.Close()
			}
			waitErr(t, "blocked Send", sendc, transport.ErrClosed)
			body, payload, err := recvFrame(s)
			if err != nil || string(body) != "last words" || len(payload) != 100<<10 {
				t.Fatalf("frame sent before the close: %q, %d bytes, %v", body, len(payload), err)
			}
			waitErr(t, "Recv", recvErr(s), io.EOF)
			if err := s.Send(nil, nil); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Send to a closed peer: %v", err)
			}
		})
	}
}

// TestPeerCloseMidPayload: a peer that goes while a payload is still
// coming gives io.ErrUnexpectedEOF.
func TestPeerCloseMidPayload(t *testing.T) {
	c, s := pair(t, Options{SlabSize: 64 << 10})
	sendc := make(chan error, 1)
	go func() { sendc <- c.Send([]byte("big"), make([]byte, 1<<20)) }()
	if _, n, err := s.Recv(); err != nil || n != 1<<20 {
		t.Fatalf("Recv = %d, %v", n, err)
	}
	for c.sendSleeps.Load() == 0 {
		time.Sleep(time.Millisecond) // wait for the slab to fill
	}
	c.Close()
	waitErr(t, "Send", sendc, transport.ErrClosed)
	if err := s.ReadPayload(make([]byte, 1<<20)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadPayload after the peer closed: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestCloseReleasesRegion: Close drops the shared mapping at once (the
// zero pages left in its place are not the file), so a closed connection
// holds none of the file's memory.
func TestCloseReleasesRegion(t *testing.T) {
	// shared reports whether the mapping that holds mem's first byte is
	// the file. (Retired regions side by side merge into one mapping.)
	shared := func(mem []byte) bool {
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Skip(err)
		}
		addr, err := strconv.ParseUint(strings.TrimPrefix(fmt.Sprintf("%p", &mem[0]), "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(maps)) {
			span, _, _ := strings.Cut(line, " ")
			lo, hi, _ := strings.Cut(span, "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil && start <= addr && addr < end {
				return strings.Contains(line, "memfd:gpufabric-shm")
			}
		}
		t.Fatalf("no mapping holds %#x", addr)
		return false
	}
	c, s := pair(t, Options{})
	cmem, smem := c.reg.mem, s.reg.mem
	if !shared(cmem) || !shared(smem) {
		t.Fatal("a connection's region is not mapped from its file")
	}
	c.Close()
	s.Close()
	if shared(cmem) || shared(smem) {
		t.Fatal("a closed connection still maps its region's file")
	}
}

// TestCloseDuringRecv: Close while the receiver is mid-stream, at many
// moments. Receives take no lock and Close retires the region under them:
// every frame the receiver returns is whole and right, and then it fails
// with ErrClosed; nothing faults, and the region's file is released.
func TestCloseDuringRecv(t *testing.T) {
	for round := range 50 {
		c, s := pair(t, Options{RingSize: 16 << 10, SlabSize: 64 << 10})
		go func() {
			for i := 0; ; i++ {
				if c.Send(binary.LittleEndian.AppendUint32(nil, uint32(i)), pattern(i*131%30000, uint64(i))) != nil {
					return
				}
			}
		}()
		errc := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				body, payload, err := recvFrame(s)
				if err != nil {
					errc <- err
					return
				}
				if got := binary.LittleEndian.Uint32(body); got != uint32(i) || !bytes.Equal(payload, pattern(i*131%30000, uint64(i))) {
					errc <- fmt.Errorf("frame %d: got frame %d, payload of %d bytes, changed", i, got, len(payload))
					return
				}
			}
		}()
		time.Sleep(time.Duration(round%10) * 100 * time.Microsecond)
		s.Close()
		waitErr(t, "Recv during Close", errc, transport.ErrClosed)
		c.Close()
	}
}

// TestCloseUnblocks: Close wakes our own blocked Recv and Send.
func TestCloseUnblocks(t *testing.T) {
	c, s := pair(t, Options{RingSize: 4 << 10})
	recvc := recvErr(c)
	sendc := fill(t, c)
	for c.recvSleeps.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	waitErr(t, "Recv", recvc, transport.ErrClosed)
	waitErr(t, "Send", sendc, transport.ErrClosed)
	if err := c.Send(nil, nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if _, _, err := c.Recv(); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	waitErr(t, "peer Recv", recvErr(s), io.EOF, transport.ErrClosed)
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestPeerProcessDeath kills a child process (this test binary, re-executed)
// that holds the client end, while the server is blocked both ways.
func TestPeerProcessDeath(t *testing.T) {
	l, err := Listen(testPath(t), Options{RingSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+l.Addr())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := sc.(*Conn)
	defer s.Close()
	if body, _, err := s.Recv(); err != nil || string(body) != "ready" {
		t.Fatalf("child said %q, %v", body, err)
	}
	if want := fmt.Sprintf("pid:%d", cmd.Process.Pid); s.Info().Remote != want {
		t.Errorf("Info().Remote = %q, want %q", s.Info().Remote, want)
	}
	recvc := recvErr(s)
	sendc := fill(t, s)
	for s.recvSleeps.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitErr(t, "blocked Recv", recvc, io.EOF)
	waitErr(t, "blocked Send", sendc, transport.ErrClosed)
	t.Logf("both sides unblocked %v after SIGKILL", time.Since(start))
	cmd.Wait()
}

func TestDialCancel(t *testing.T) {
	// A server that accepts and never greets.
	path := testPath(t)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, path, Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent server: %v, want context.DeadlineExceeded", err)
	}
}

// TestDialRejects: the client refuses a greeting that is not ours, and a
// region whose size a peer could still shrink under it.
func TestDialRejects(t *testing.T) {
	g := geometry{ring: minRingSize, slab: minSlabSize}
	greeting := func(total uint64) []byte {
		b := make([]byte, greetingSize)
		binary.LittleEndian.PutUint64(b[0:], greetingMagic)
		binary.LittleEndian.PutUint32(b[8:], handshakeVersion)
		binary.LittleEndian.PutUint64(b[16:], total)
		return b
	}
	memfd := func(seal bool) int {
		fd, err := unix.MemfdCreate("test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		unix.Ftruncate(fd, int64(g.total()))
		if seal {
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
		}
		mem, _ := unix.Mmap(fd, 0, int(g.total()), unix.PROT_WRITE, unix.MAP_SHARED)
		writeHeader(mem, g)
		unix.Munmap(mem)
		return fd
	}
	cases := []struct {
		name  string
		greet []byte
		fd    func() int // -1: none
		want  string
	}{
		{"wrong magic", make([]byte, greetingSize), func() int { return -1 }, "not a gpufabric shm server"},
		{"no descriptor", greeting(g.total()), func() int { return -1 }, "got 0 file descriptors"},
		{"unsealed region", greeting(g.total()), func() int { return memfd(false) }, "not sealed"},
		{"size mismatch", greeting(g.total() + pageSize), func() int { return memfd(true) }, "announced"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t)
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.AcceptUnix()
				if err != nil {
					return
				}
				defer c.Close()
				var oob []byte
				if fd := tc.fd(); fd >= 0 {
					defer unix.Close(fd)
					oob = unix.UnixRights(fd)
				}
				c.WriteMsgUnix(tc.greet, oob, nil)
				io.Copy(io.Discard, c)
			}()
			_, err = Dial(context.Background(), path, Options{})
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("Dial: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestSmallFrameAllocs guards the hot path: a small Send and Recv allocate
// nothing.
func TestSmallFrameAllocs(t *testing.T) {
	c, s := pair(t, Options{})
	body := make([]byte, 64)
	payload := make([]byte, 128)
	got := make([]byte, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.Send(body, payload); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		if err := s.ReadPayload(got); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per small frame, want 0", allocs)
	}
}

var _ = rand.N[int]
