package transport

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the bytes read from it.
type countConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestTrickledBodyMemory: peers that announce a large body and send only
// part of it cost the receiver about what they sent, not what they
// announced. (A server once reached 3.5 GiB under 3000 connections each
// announcing 1 MiB and sending one byte less.)
func TestTrickledBodyMemory(t *testing.T) {
	const announced = 1 << 20
	cases := []struct {
		conns, sent int
	}{
		{200, 1},
		{200, 64 << 10},
		{20, announced - 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d conns sending %d bytes", tc.conns, tc.sent), func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			before := heapInuse()

			var read atomic.Int64
			var wg sync.WaitGroup
			var conns []*FramedConn
			var peers []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
				for _, p := range peers {
					p.Close()
				}
				wg.Wait()
			}()
			frame := binary.LittleEndian.AppendUint32(nil, announced)
			frame = binary.LittleEndian.AppendUint32(frame, 0)
			frame = append(frame, make([]byte, tc.sent)...)
			for range tc.conns {
				p, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				peers = append(peers, p)
				s, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				fc := NewFramedConn(countConn{s, &read}, Info{}, Options{MaxBody: 2 * announced})
				conns = append(conns, fc)
				wg.Add(1)
				go func() {
					defer wg.Done()
					fc.Recv() // blocks for the body's missing bytes until Close
				}()
				go p.Write(frame)
			}
			want := int64(tc.conns * len(frame))
			for deadline := time.Now().Add(30 * time.Second); read.Load() < want; {
				if time.Now().After(deadline) {
					t.Fatalf("read %d of the %d bytes sent", read.Load(), want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			grew := int64(heapInuse()) - int64(before)
			// Twice what was sent for the doubling body, as much again for
			// the read buffer, a few KiB a connection for its buffers and
			// structures, and slack for the runtime's own.
			bound := int64(tc.conns)*(4*int64(tc.sent)+32<<10) + 16<<20
			t.Logf("heap grew by %d KiB for %d KiB sent (bound %d KiB)", grew>>10, want>>10, bound>>10)
			if grew > bound {
				t.Fatalf("heap grew by %d bytes for %d bytes sent, want at most %d", grew, want, bound)
			}
		})
	}
}
