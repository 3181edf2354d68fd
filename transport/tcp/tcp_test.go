package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// pair returns a connected client and server over loopback.
func pair(t testing.TB, opts transport.Options) (client, server transport.Conn) {
	t.Helper()
	l, err := tcp.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = tcp.Dial(context.Background(), l.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range min(n, 256) {
		p[i] = byte(i)*13 + seed
	}
	for done := min(n, 256); done < n; done *= 2 {
		copy(p[done:], p[:done])
	}
	return p
}

func recvFrame(c transport.Conn) (body, payload []byte, err error) {
	b, n, err := c.Recv()
	if err != nil {
		return nil, nil, err
	}
	body = bytes.Clone(b)
	payload = make([]byte, n)
	return body, payload, c.ReadPayload(payload)
}

func TestInfo(t *testing.T) {
	c, s := pair(t, transport.Options{})
	ci, si := c.Info(), s.Info()
	if ci.Transport != tcp.Name || si.Transport != tcp.Name {
		t.Fatalf("Transport = %q, %q; want %q", ci.Transport, si.Transport, tcp.Name)
	}
	if ci.Local != si.Remote || ci.Remote != si.Local {
		t.Fatalf("client %+v and server %+v do not mirror", ci, si)
	}
	if ci.Peer != "tcp:127.0.0.1" || si.Peer != "tcp:127.0.0.1" || ci.Secure || si.Secure {
		t.Fatalf("client %+v and server %+v: want Peer tcp:127.0.0.1, not secure", ci, si)
	}
}

func TestSizes(t *testing.T) {
	const big = 8 << 20
	eager := transport.DefaultEagerLimit
	cases := []struct {
		name          string
		body, payload int
	}{
		{"empty", 0, 0},
		{"one byte", 1, 1},
		{"eager limit", 16, eager},
		{"eager limit+1", 16, eager + 1},
		{"8 MiB payload", 16, big},
		{"8 MiB body", big, 0},
	}
	c, s := pair(t, transport.Options{MaxBody: big})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range [][2]transport.Conn{{c, s}, {s, c}} {
				body, payload := pattern(tc.body, 1), pattern(tc.payload, 2)
				errc := make(chan error, 1)
				go func() { errc <- dir[0].Send(body, payload) }()
				gb, gp, err := recvFrame(dir[1])
				if err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(gb, body) || !bytes.Equal(gp, payload) {
					t.Fatalf("frame mismatched: body %d payload %d bytes", len(gb), len(gp))
				}
			}
		})
	}
}

func TestConcurrentSenders(t *testing.T) {
	const senders, frames = 8, 200
	c, s := pair(t, transport.Options{EagerLimit: 4 << 10})
	size := func(id, i int) int { return []int{0, 100, 4 << 10, 4<<10 + 1, 100 << 10}[(id+i)%5] }
	var wg sync.WaitGroup
	for id := range senders {
		wg.Go(func() {
			body := make([]byte, 16)
			for i := range frames {
				binary.LittleEndian.PutUint64(body, uint64(id))
				binary.LittleEndian.PutUint64(body[8:], uint64(i))
				if err := c.Send(body, pattern(size(id, i), byte(id^i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, senders)
	for range senders * frames {
		body, payload, err := recvFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		id, i := int(binary.LittleEndian.Uint64(body)), int(binary.LittleEndian.Uint64(body[8:]))
		if id >= senders || next[id] != i || !bytes.Equal(payload, pattern(size(id, i), byte(id^i))) {
			t.Fatalf("sender %d frame %d: out of order or mismatched", id, i)
		}
		next[id]++
	}
	wg.Wait()
}

// TestLargeSendCopies: after a large Send returns, the payload is free.
func TestLargeSendCopies(t *testing.T) {
	c, s := pair(t, transport.Options{})
	payload := pattern(8<<20, 5)
	want := bytes.Clone(payload)
	got := make(chan []byte, 1)
	go func() {
		_, p, _ := recvFrame(s)
		got <- p
	}()
	if err := c.Send(nil, payload); err != nil {
		t.Fatal(err)
	}
	clear(payload)
	if !bytes.Equal(<-got, want) {
		t.Fatal("payload changed after Send returned")
	}
}

// rawServer returns a framed client connected to a raw TCP server end.
func rawServer(t *testing.T, opts transport.Options) (transport.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := tcp.Dial(context.Background(), l.Addr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	raw := <-accepted
	t.Cleanup(func() { c.Close(); raw.Close() })
	return c, raw
}

func header(body, payload uint32) []byte {
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, body), payload)
}

func TestTooLarge(t *testing.T) {
	c, raw := rawServer(t, transport.Options{MaxPayload: 1 << 20})
	raw.Write(header(0, 1<<20+1))
	if _, _, err := c.Recv(); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Fatalf("Recv: %v, want ErrFrameTooLarge", err)
	}
	if err := c.Send(nil, nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after: %v, want ErrClosed", err)
	}
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("the connection was not closed: %v", err)
	}
}

func TestPeerClosesMidPayload(t *testing.T) {
	c, raw := rawServer(t, transport.Options{})
	raw.Write(append(header(1, 1000), "x0123"...))
	raw.Close()
	if _, n, err := c.Recv(); err != nil || n != 1000 {
		t.Fatalf("Recv = %d, %v", n, err)
	}
	if err := c.ReadPayload(make([]byte, 1000)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadPayload: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestSendAfterClose(t *testing.T) {
	c, _ := pair(t, transport.Options{})
	c.Close()
	for _, n := range []int{0, 1 << 20} {
		if err := c.Send([]byte("x"), make([]byte, n)); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("Send of a %d-byte payload after Close: %v, want ErrClosed", n, err)
		}
	}
}

// echo returns frames until the connection fails.
func echo(c transport.Conn) {
	var buf []byte
	for {
		body, n, err := c.Recv()
		if err != nil {
			return
		}
		buf = append(buf[:0], make([]byte, n)...)
		if c.ReadPayload(buf) != nil || transport.SendNow(c, body, buf) != nil {
			return
		}
	}
}

// rawFloor is a round trip of 64 bytes over a bare loopback TCP pair: the
// kernel's part, which no framing can beat.
func rawFloor(tb testing.TB, rounds int) time.Duration {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	start := time.Now()
	for range rounds {
		c.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(rounds)
}

// BenchmarkRoundTrip: a small call and its echo, beside the raw loopback
// round trip.
func BenchmarkRoundTrip(b *testing.B) {
	c, s := pair(b, transport.Options{})
	go echo(s)
	floor := rawFloor(b, 20000)
	body := make([]byte, 56) // 64 bytes on the wire
	b.ReportAllocs()
	for b.Loop() {
		if err := transport.SendNow(c, body, nil); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	rt := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(rt, "ns/roundtrip")
	b.ReportMetric(float64(floor.Nanoseconds()), "floor-ns/roundtrip")
	b.ReportMetric(rt/float64(floor.Nanoseconds()), "x-floor")
}

// BenchmarkReplyRoundTrip: a sync round trip whose reply the server sends
// with SendNow (written by the replier, which may wait in the socket) or
// TrySend (never waits: one non-blocking write, the rest to the writer).
func BenchmarkReplyRoundTrip(b *testing.B) {
	replies := []struct {
		name string
		send func(transport.Conn, []byte) error
	}{
		{"SendNow", func(c transport.Conn, body []byte) error { return transport.SendNow(c, body, nil) }},
		{"TrySend", func(c transport.Conn, body []byte) error {
			if err := transport.TrySend(c, body, nil); !errors.Is(err, transport.ErrWouldBlock) {
				return err
			}
			return c.Send(body, nil)
		}},
	}
	for _, r := range replies {
		b.Run(r.name, func(b *testing.B) {
			c, s := pair(b, transport.Options{})
			go func() {
				for {
					body, _, err := s.Recv()
					if err != nil || r.send(s, body) != nil {
						return
					}
				}
			}()
			body := make([]byte, 56)
			b.ReportAllocs()
			for b.Loop() {
				if err := transport.SendNow(c, body, nil); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.Recv(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/roundtrip")
		})
	}
}

// BenchmarkStream64MiB: 64 MiB payloads one way over loopback.
func BenchmarkStream64MiB(b *testing.B) {
	b.ReportAllocs()
	stream(b, transport.Options{}, 64<<20)
}

// BenchmarkStream4MiB: payloads of the size large copies are split into
// (interpose.DefaultChunkSize), one way over loopback: each payload's end
// is where a receive through the read buffer copied bytes twice.
func BenchmarkStream4MiB(b *testing.B) {
	b.ReportAllocs()
	stream(b, transport.Options{}, 4<<20)
}

// stream sends size-byte payloads one way over loopback, b.N times.
func stream(b *testing.B, opts transport.Options, size int) {
	c, s := pair(b, opts)
	src, dst := pattern(size, 1), make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		for range b.N {
			if _, _, err := s.Recv(); err != nil {
				done <- err
				return
			}
			if err := s.ReadPayload(dst); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := c.Send(nil, src); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
