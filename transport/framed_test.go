package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// pipePair returns two FramedConns joined by net.Pipe.
func pipePair(t testing.TB, opts Options) (a, b *FramedConn) {
	t.Helper()
	ca, cb := net.Pipe()
	a = NewFramedConn(ca, Info{Transport: "pipe"}, opts)
	b = NewFramedConn(cb, Info{Transport: "pipe"}, opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// rawPair returns a FramedConn and the raw other end of its pipe.
func rawPair(t testing.TB, opts Options) (*FramedConn, net.Conn) {
	t.Helper()
	ca, cb := net.Pipe()
	fc := NewFramedConn(ca, Info{}, opts)
	t.Cleanup(func() { fc.Close(); cb.Close() })
	return fc, cb
}

func header(body, payload uint32) []byte {
	h := binary.LittleEndian.AppendUint32(nil, body)
	return binary.LittleEndian.AppendUint32(h, payload)
}

// pattern returns n bytes that depend on seed and position.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range min(n, 256) {
		p[i] = byte(i)*7 + seed
	}
	for done := min(n, 256); done < n; done *= 2 {
		copy(p[done:], p[:done])
	}
	return p
}

func recvFrame(c Conn) (body, payload []byte, err error) {
	b, n, err := c.Recv()
	if err != nil {
		return nil, nil, err
	}
	body = bytes.Clone(b)
	payload = make([]byte, n)
	if err := c.ReadPayload(payload); err != nil {
		return nil, nil, err
	}
	return body, payload, nil
}

// sendAsync runs Send in a goroutine: over net.Pipe a write completes only
// as the other end reads.
func sendAsync(c Conn, body, payload []byte) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- c.Send(body, payload) }()
	return errc
}

func TestFramedSizes(t *testing.T) {
	const big = 8 << 20
	opts := Options{MaxBody: big}
	sizes := []struct {
		name string
		n    int
	}{{"0", 0}, {"1", 1}, {"eager", DefaultEagerLimit}, {"eager+1", DefaultEagerLimit + 1}, {"8MiB", big}}
	for _, sz := range sizes {
		for _, where := range []string{"body", "payload"} {
			t.Run(where+"="+sz.name, func(t *testing.T) {
				a, b := pipePair(t, opts)
				body, payload := pattern(16, 1), pattern(sz.n, 2)
				if where == "body" {
					body, payload = pattern(sz.n, 1), nil
				}
				errc := sendAsync(a, body, payload)
				gb, gp, err := recvFrame(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(gb, body) || !bytes.Equal(gp, payload) {
					t.Fatalf("got body %d payload %d bytes, want %d and %d", len(gb), len(gp), len(body), len(payload))
				}
			})
		}
	}
}

// TestFramedConcurrentSenders: frames of each sender arrive in its order,
// with eager and large payloads mixed in one batch.
func TestFramedConcurrentSenders(t *testing.T) {
	const senders, frames = 8, 200
	a, b := pipePair(t, Options{EagerLimit: 1 << 10, MaxQueued: 64 << 10})
	size := func(id, i int) int { return []int{0, 10, 1 << 10, 1<<10 + 1, 20 << 10}[(id+i)%5] }
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for id := range senders {
		wg.Go(func() {
			body := make([]byte, 16)
			for i := range frames {
				binary.LittleEndian.PutUint64(body, uint64(id))
				binary.LittleEndian.PutUint64(body[8:], uint64(i))
				if err := a.Send(body, pattern(size(id, i), byte(id+i))); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	next := make([]int, senders)
	for range senders * frames {
		body, payload, err := recvFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		id, i := int(binary.LittleEndian.Uint64(body)), int(binary.LittleEndian.Uint64(body[8:]))
		if id >= senders || next[id] != i {
			t.Fatalf("sender %d frame %d out of order", id, i)
		}
		next[id]++
		if !bytes.Equal(payload, pattern(size(id, i), byte(id+i))) {
			t.Fatalf("sender %d frame %d: payload mismatched", id, i)
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestFramedTooLarge(t *testing.T) {
	cases := []struct {
		name          string
		body, payload uint32
	}{
		{"body", 1<<10 + 1, 0},
		{"payload", 0, 1<<20 + 1},
		{"payload of 4 GiB", 0, 1<<32 - 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, raw := rawPair(t, Options{MaxBody: 1 << 10, MaxPayload: 1 << 20})
			go raw.Write(header(tc.body, tc.payload))
			_, _, err := fc.Recv()
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("Recv: %v, want ErrFrameTooLarge", err)
			}
			var fe *FrameError
			if !errors.As(err, &fe) || fe.What != tc.name[:len(fe.What)] {
				t.Fatalf("Recv: %v, want a FrameError about the %s", err, tc.name)
			}
			if err := fc.Send(nil, nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after an oversized frame: %v, want ErrClosed", err)
			}
		})
	}
	t.Run("send", func(t *testing.T) {
		fc, _ := rawPair(t, Options{MaxBody: 10})
		if err := fc.Send(make([]byte, 11), nil); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("Send of an oversized body: %v", err)
		}
	})
}

// TestFramedUnexpectedEOF: a peer that closes inside a frame is not a
// clean end of stream.
func TestFramedUnexpectedEOF(t *testing.T) {
	cases := []struct {
		name  string
		wire  []byte
		reads func(fc *FramedConn) error
	}{
		{"in the header", header(5, 5)[:5], func(fc *FramedConn) error {
			_, _, err := fc.Recv()
			if err == io.EOF {
				return io.ErrUnexpectedEOF // a clean EOF before a whole header is io.ReadFull's too
			}
			return err
		}},
		{"in the body", append(header(5, 0), "ab"...), func(fc *FramedConn) error {
			_, _, err := fc.Recv()
			return err
		}},
		{"in the payload", append(header(1, 100), "x0123456789"...), func(fc *FramedConn) error {
			if _, _, err := fc.Recv(); err != nil {
				return err
			}
			return fc.ReadPayload(make([]byte, 100))
		}},
		{"in a discarded payload", append(header(1, 100), "x0123456789"...), func(fc *FramedConn) error {
			if _, _, err := fc.Recv(); err != nil {
				return err
			}
			_, _, err := fc.Recv()
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, raw := rawPair(t, Options{})
			go func() {
				raw.Write(tc.wire)
				raw.Close()
			}()
			if err := tc.reads(fc); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
	t.Run("clean end", func(t *testing.T) {
		fc, raw := rawPair(t, Options{})
		go func() {
			raw.Write(append(header(1, 0), 'x'))
			raw.Close()
		}()
		if _, _, err := fc.Recv(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fc.Recv(); err != io.EOF {
			t.Fatalf("Recv at a frame boundary: %v, want io.EOF", err)
		}
	})
}

func TestFramedClose(t *testing.T) {
	a, b := pipePair(t, Options{})
	recvc := make(chan error, 1)
	go func() {
		_, _, err := a.Recv()
		recvc <- err
	}()
	a.Close()
	if err := <-recvc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Recv after Close: %v, want ErrClosed", err)
	}
	if err := a.Send([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := a.Send(nil, make([]byte, 1<<20)); !errors.Is(err, ErrClosed) {
		t.Fatalf("large Send after Close: %v, want ErrClosed", err)
	}
	if _, _, err := b.Recv(); err != io.EOF {
		t.Fatalf("peer Recv: %v, want io.EOF", err)
	}
}

// TestFramedLargeSendCopies: once a large Send returns, the payload has
// been written and the caller may reuse it (the race detector sees a
// write still reading it).
func TestFramedLargeSendCopies(t *testing.T) {
	a, b := pipePair(t, Options{})
	payload := pattern(8<<20, 3)
	want := bytes.Clone(payload)
	type frame struct {
		payload []byte
		err     error
	}
	got := make(chan frame, 1)
	go func() {
		_, p, err := recvFrame(b)
		got <- frame{p, err}
	}()
	if err := a.Send([]byte("big"), payload); err != nil {
		t.Fatal(err)
	}
	clear(payload)
	f := <-got
	if f.err != nil || !bytes.Equal(f.payload, want) {
		t.Fatalf("payload changed after Send returned (err %v)", f.err)
	}
}

// gateConn is a net.Conn whose Write reads the caller's buffer only when
// the test opens the gate, and which Close does not abort: a write that is
// still in the kernel when the connection is closed.
type gateConn struct {
	started, gate, closed chan struct{}
	once                  sync.Once
	sink                  []byte
}

func (c *gateConn) Write(b []byte) (int, error) {
	if len(b) <= frameHeaderSize {
		return len(b), nil // net.Buffers writes the header on its own first
	}
	close(c.started)
	<-c.gate
	c.sink = append(c.sink[:0], b...) // reads b
	return len(b), nil
}
func (c *gateConn) Read([]byte) (int, error)         { <-c.closed; return 0, io.EOF }
func (c *gateConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *gateConn) LocalAddr() net.Addr              { return nil }
func (c *gateConn) RemoteAddr() net.Addr             { return nil }
func (c *gateConn) SetDeadline(time.Time) error      { return nil }
func (c *gateConn) SetReadDeadline(time.Time) error  { return nil }
func (c *gateConn) SetWriteDeadline(time.Time) error { return nil }

// TestFramedCloseDuringLargeSend: Close while the writer is writing a large
// payload must not let Send return before the write is done with it. (It
// did: Send saw the close error and returned while the writer was still
// reading the caller's slice.)
func TestFramedCloseDuringLargeSend(t *testing.T) {
	gc := &gateConn{started: make(chan struct{}), gate: make(chan struct{}), closed: make(chan struct{})}
	fc := NewFramedConn(gc, Info{}, Options{EagerLimit: 1 << 10})
	payload := pattern(1<<20, 4)
	sendc := sendAsync(fc, nil, payload)
	<-gc.started
	fc.Close()
	select {
	case err := <-sendc:
		t.Fatalf("Send returned (%v) while its payload was still being written", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gc.gate)
	<-sendc
	clear(payload) // the race detector checks that nothing still reads it
}

// chunkConn is a net.Conn that reads out fixed chunks, one per Read at
// most, then io.EOF: partial reads at chosen places.
type chunkConn struct {
	gateConn
	chunks [][]byte
}

func (c *chunkConn) Read(b []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *chunkConn) Write(b []byte) (int, error) { return len(b), nil }

// FuzzFramedRecv feeds arbitrary bytes into Recv and ReadPayload, whole
// and split in two: it must return frames or errors, never panic.
func FuzzFramedRecv(f *testing.F) {
	f.Add(append(header(3, 2), "abcde"...))
	f.Add(append(append(header(1, 0), 'x'), header(0, 4)...))
	f.Add(header(1<<20, 0))
	f.Add(header(0, 1<<31))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, split := range []int{len(data), len(data) / 2} {
			cc := &chunkConn{chunks: [][]byte{bytes.Clone(data[:split]), bytes.Clone(data[split:])}}
			cc.closed = make(chan struct{})
			fc := NewFramedConn(cc, Info{}, Options{MaxBody: 1 << 10, MaxPayload: 1 << 16})
			for i := 0; ; i++ {
				_, n, err := fc.Recv()
				if err != nil {
					break
				}
				if i%2 == 0 { // read every other payload, discard the rest
					if err := fc.ReadPayload(make([]byte, n)); err != nil {
						break
					}
				}
			}
			fc.Close()
		}
	})
}
