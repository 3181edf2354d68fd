package tcp_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/gpufabric/gpufabric/transport"
)

type zeroCopyStatser interface {
	ZeroCopyStats() *transport.ZeroCopyStats
}

// TestZeroCopyLoopback sends payloads above and below the threshold with
// MSG_ZEROCOPY on: every byte arrives, the large payloads went through
// zero-copy sends, and the kernel said it copied them (on loopback it
// always does: there is no NIC to read the pages).
func TestZeroCopyLoopback(t *testing.T) {
	c, s := pair(t, transport.Options{ZeroCopy: 64 << 10})
	zs, ok := c.(zeroCopyStatser)
	if !ok || zs.ZeroCopyStats() == nil {
		t.Fatal("SO_ZEROCOPY refused on a loopback TCP socket (Linux 4.14 and later take it)")
	}
	sizes := []int{100, 64<<10 - 1, 64 << 10, 3 << 20, 17 << 20}
	errc := make(chan error, 1)
	go func() {
		for i, n := range sizes {
			// Two frames in one batch, sometimes: a small one before a large one.
			if err := c.Send(fmt.Appendf(nil, "f%d", i), pattern(n, byte(i))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i, n := range sizes {
		body, got, err := s.Recv()
		if err != nil || string(body) != fmt.Sprintf("f%d", i) || got != n {
			t.Fatalf("frame %d: %q %d %v; want %d bytes", i, body, got, err, n)
		}
		dst := make([]byte, n)
		if err := s.ReadPayload(dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst, pattern(n, byte(i))) {
			t.Fatalf("frame %d: payload differs", i)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := zs.ZeroCopyStats()
	// The queue of copied frames goes zero-copy too when it is as large.
	if st.Sends.Load() == 0 || st.Bytes.Load() < 64<<10+3<<20+17<<20 {
		t.Errorf("zero-copy sends %d of %d bytes; want at least the three payloads of 64 KiB and more (%d bytes)",
			st.Sends.Load(), st.Bytes.Load(), 64<<10+3<<20+17<<20)
	}
	if st.Copied.Load() != st.Sends.Load() {
		t.Errorf("%d of %d zero-copy sends reported copied; on loopback the kernel copies all", st.Copied.Load(), st.Sends.Load())
	}
}

// BenchmarkZeroCopy: payloads one way over loopback, plain and with
// MSG_ZEROCOPY, beside the floor of raw TCP writes of the same size. On
// loopback the kernel copies anyway, so this measures what zero copy
// costs where it cannot pay: pinning and completions.
func BenchmarkZeroCopy(b *testing.B) {
	for _, size := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("raw/%dKiB", size>>10), func(b *testing.B) { rawTCP(b, size) })
		for _, zc := range []bool{false, true} {
			name := "plain"
			opts := transport.Options{}
			if zc {
				name, opts.ZeroCopy = "zerocopy", 1
			}
			b.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(b *testing.B) { stream(b, opts, size) })
		}
	}
}

// rawTCP is the floor: the same bytes written and read on a bare socket.
func rawTCP(b *testing.B, size int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.CopyN(io.Discard, c, int64(b.N)*int64(size))
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	src := pattern(size, 1)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(src); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
