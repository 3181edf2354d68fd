//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/gpufabric/gpufabric/transport"
)

// The corruption tests play a peer that scribbles into the region: a frame
// is sent properly, then its record or a control word is overwritten
// through the receiving side's own view of the region before it is read.

var le = binary.LittleEndian

// corruptOpts: 64 KiB ring (records up to 16 KiB, eager 8 KiB), 256 KiB
// slab (64 KiB chunks).
var corruptOpts = Options{RingSize: 64 << 10, SlabSize: 256 << 10, Options: transport.Options{MaxBody: 1 << 10, MaxPayload: 1 << 20}}

// next is the receiver's next record, as bytes of its ring.
func next(s *Conn) []byte { return s.rx.data[s.tail&(s.geo.ring-1):] }

func send(t testing.TB, c *Conn, body, payload int) {
	t.Helper()
	if err := c.Send(make([]byte, body), make([]byte, payload)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, s *Conn) {
	t.Helper()
	if _, _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
}

func recvAll(s *Conn) error {
	_, n, err := s.Recv()
	if err != nil {
		return err
	}
	return s.ReadPayload(make([]byte, n))
}

func TestCorrupt(t *testing.T) {
	ring := uint64(corruptOpts.RingSize)
	slab := uint64(corruptOpts.SlabSize)
	cases := []struct {
		name string
		// scribble sends what it needs through c and then corrupts what s
		// is about to read; s has read nothing of it yet unless it says so.
		scribble func(t *testing.T, c, s *Conn)
		want     error
	}{
		{"sequence number ahead", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			recv(t, s)
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffSeq:], s.rseq+1)
		}, ErrCorrupt},
		{"sequence number of an old record", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			recv(t, s)
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffSeq:], s.rseq-1)
		}, ErrCorrupt},
		{"sequence number where nothing was sent", func(t *testing.T, c, s *Conn) {
			le.PutUint32(next(s)[recOffSeq:], 0xdead)
		}, ErrCorrupt},
		{"record longer than the ring", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffLen:], uint32(2*ring))
		}, ErrCorrupt},
		{"record shorter than its header", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffLen:], 8)
		}, ErrCorrupt},
		{"record past the ring's end", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffLen:], uint32(ring+8))
		}, ErrCorrupt},
		{"unknown kind", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint16(next(s)[recOffKind:], 9)
		}, ErrCorrupt},
		{"chunk where a frame starts", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint16(next(s)[recOffKind:], kindChunk)
		}, ErrCorrupt},
		{"pad not reaching the ring's end", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint16(next(s)[recOffKind:], kindPad)
		}, ErrCorrupt},
		{"more inline bytes than body and payload", func(t *testing.T, c, s *Conn) {
			send(t, c, 10, 0)
			le.PutUint32(next(s)[recOffBody:], 2)
		}, ErrCorrupt},
		{"body past MaxBody", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint32(next(s)[recOffBody:], 1<<30)
		}, transport.ErrFrameTooLarge},
		{"payload past MaxPayload", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 0)
			le.PutUint64(next(s)[recOffN:], 1<<62)
		}, transport.ErrFrameTooLarge},
		{"chunk offset outside the slab", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint64(next(s)[recOffSlab:], slab+4096)
		}, ErrCorrupt},
		{"chunk offset out of order", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint64(next(s)[recOffSlab:], 8)
		}, ErrCorrupt},
		{"chunk longer than the frame", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint64(next(s)[recOffN:], 20<<10+1)
		}, ErrCorrupt},
		{"empty chunk", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint64(next(s)[recOffN:], 0)
		}, ErrCorrupt},
		{"chunk past the slab's end", func(t *testing.T, c, s *Conn) {
			// Move the slab to 4 KiB before its end, then send a payload
			// that the producer splits there.
			go c.Send(nil, make([]byte, slab-4096))
			if err := recvAll(s); err != nil {
				t.Fatal(err)
			}
			send(t, c, 8, 20<<10)
			recv(t, s)
			if off := le.Uint64(next(s)[recOffSlab:]); off != slab-4096 {
				t.Fatalf("chunk at %d, want %d", off, slab-4096)
			}
			le.PutUint64(next(s)[recOffN:], 20<<10)
		}, ErrCorrupt},
		{"frame where a chunk should be", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint16(next(s)[recOffKind:], kindFrame)
		}, ErrCorrupt},
		{"chunk record of the wrong length", func(t *testing.T, c, s *Conn) {
			send(t, c, 8, 20<<10)
			recv(t, s)
			le.PutUint32(next(s)[recOffLen:], recChunk+8)
		}, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t, corruptOpts)
			tc.scribble(t, c, s)
			err := recvAll(s)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want an error matching %v", err, tc.want)
			}
			t.Log(err)
			if _, _, err := s.Recv(); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Recv after the corruption: %v, want ErrClosed", err)
			}
			waitErr(t, "peer Recv", recvErr(c), io.EOF)
		})
	}
}

// TestCorruptProducer: the producer checks the counters the consumer
// writes when it reads them, which is when its cached view of the free
// space runs short: a bad counter fails a Send within a ring or slab's
// worth of traffic.
func TestCorruptProducer(t *testing.T) {
	cases := []struct {
		name     string
		scribble func(c *Conn)
		payload  int
	}{
		{"ring tail ahead of head", func(c *Conn) { c.tx.tail.Store(1 << 40) }, 0},
		{"slab tail ahead of head", func(c *Conn) { c.tx.slabTail.Store(1 << 40) }, 20 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := pair(t, corruptOpts)
			c.sendMu.Lock()
			tc.scribble(c)
			c.sendMu.Unlock()
			var err error
			for i := 0; err == nil && i < 1000; i++ {
				err = c.Send(make([]byte, 1000), make([]byte, tc.payload))
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Send: %v, want ErrCorrupt", err)
			}
			t.Log(err)
			if err := c.Send(nil, nil); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("Send after the corruption: %v, want ErrClosed", err)
			}
			// The failed Send may have left a frame half sent.
			waitErr(t, "peer Recv", recvErr(s), io.EOF, io.ErrUnexpectedEOF)
		})
	}
}

// FuzzRecvScribble writes arbitrary bytes over the receiving ring and the
// slab's start, then reads: whatever it finds, the receiver must return
// frames or an error, never panic or read outside the region.
func FuzzRecvScribble(f *testing.F) {
	// Seeds: real traffic, captured from the ring, plus some garbage.
	for _, sizes := range [][2]int{{0, 0}, {8, 0}, {10, 100}, {8, 20 << 10}, {1000, 0}} {
		c, s := pair(f, corruptOpts)
		send(f, c, sizes[0], sizes[1])
		f.Add(append([]byte(nil), s.rx.data[:c.head]...))
		c.Close()
		s.Close()
	}
	f.Add([]byte{1, 0, 0, 0, 24, 0, 0, 0, 1, 0})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, ring []byte) {
		c, s := pair(t, corruptOpts)
		copy(s.rx.data, ring)
		copy(s.rx.slab, ring)
		c.Close() // so that a read waiting for more returns io.EOF, not hangs
		for {
			_, n, err := s.Recv()
			if err != nil {
				return
			}
			if err := s.ReadPayload(make([]byte, n)); err != nil {
				return
			}
		}
	})
}
