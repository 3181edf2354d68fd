package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"
)

// tcpPair returns two FramedConns over loopback TCP: TrySend's own write
// needs a real socket.
func tcpPair(t testing.TB, opts Options) (a, b *FramedConn) {
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
	ca, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cb := <-accepted
	if cb == nil {
		t.Fatal("accept failed")
	}
	a = NewFramedConn(ca, Info{Transport: "tcp"}, opts)
	b = NewFramedConn(cb, Info{Transport: "tcp"}, opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// numbered is frame i: its number in the body, a payload of size bytes
// that depends on i.
func numbered(i, size int) (body, payload []byte) {
	return binary.LittleEndian.AppendUint32(nil, uint32(i)), pattern(size, byte(i))
}

func checkNumbered(t *testing.T, c Conn, i, size int) {
	t.Helper()
	body, payload, err := recvFrame(c)
	if err != nil {
		t.Fatalf("frame %d: %v", i, err)
	}
	wantBody, wantPayload := numbered(i, size)
	if !bytes.Equal(body, wantBody) || !bytes.Equal(payload, wantPayload) {
		t.Fatalf("frame %d: got body %x and %d payload bytes, want body %x and %d", i, body, len(payload), wantBody, len(wantPayload))
	}
}

// TestTrySendOrder: frames sent by TrySend, Send and SendNow arrive in
// the order they were sent, whole, over a socket and over a pipe (no
// non-blocking write there: the writer goroutine does it all).
func TestTrySendOrder(t *testing.T) {
	pairs := []struct {
		name string
		make func(testing.TB, Options) (*FramedConn, *FramedConn)
	}{
		{"tcp", tcpPair},
		{"pipe", pipePair},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := p.make(t, Options{})
			const frames = 300
			sizes := []int{0, 100, 70 << 10, 300 << 10} // eager and large for Send
			done := make(chan error, 1)
			go func() {
				for i := range frames {
					body, payload := numbered(i, sizes[i%len(sizes)])
					var err error
					switch i % 3 {
					case 0:
						for {
							if err = a.TrySend(body, payload); !errors.Is(err, ErrWouldBlock) {
								break
							}
							// The peer is behind: wait for the queue to drain.
							time.Sleep(time.Millisecond)
						}
					case 1:
						err = a.Send(body, payload)
					case 2:
						err = a.SendNow(body, payload)
					}
					if err != nil {
						done <- err
						return
					}
					clear(payload) // sent: the caller may reuse it
				}
				done <- nil
			}()
			for i := range frames {
				checkNumbered(t, b, i, sizes[i%len(sizes)])
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTrySendWouldBlock: against a peer that does not read, TrySend
// returns ErrWouldBlock (without waiting) once the socket and the queue
// are full; every frame it accepted arrives, whole and in order, when the
// peer reads, including the one a non-blocking write left half written.
func TestTrySendWouldBlock(t *testing.T) {
	const maxQueued = 256 << 10
	a, b := tcpPair(t, Options{MaxQueued: maxQueued})
	const size = 10000 // not a divisor of any buffer size: writes stop mid-frame
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, payload := numbered(sent, size)
		err := a.TrySend(body, payload)
		if errors.Is(err, ErrWouldBlock) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if time.Now().After(deadline) {
			t.Fatalf("TrySend never returned ErrWouldBlock after %d frames", sent)
		}
	}
	// A frame larger than the queue can hold never fits.
	if err := a.TrySend(nil, make([]byte, maxQueued+1)); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TrySend of a frame past MaxQueued: %v, want ErrWouldBlock", err)
	}
	for i := range sent {
		checkNumbered(t, b, i, size)
	}
	// Drained: TrySend works again, and its frame follows.
	body, payload := numbered(sent, size)
	if err := a.TrySend(body, payload); err != nil {
		t.Fatalf("TrySend after the peer caught up: %v", err)
	}
	checkNumbered(t, b, sent, size)
}

func TestTrySendClosed(t *testing.T) {
	a, _ := tcpPair(t, Options{})
	a.Close()
	if err := a.TrySend([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySend after Close: %v, want ErrClosed", err)
	}
	if err := a.TrySend(make([]byte, DefaultMaxBody+1), nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("TrySend of a body past MaxBody: %v, want ErrFrameTooLarge", err)
	}
}

// plainConn is a Conn without TrySend.
type plainConn struct{ Conn }

func TestTrySendHelper(t *testing.T) {
	a, b := pipePair(t, Options{})
	if err := TrySend(plainConn{a}, []byte("x"), nil); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("TrySend on a Conn without TrySend: %v, want ErrWouldBlock", err)
	}
	if err := TrySend(a, []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	body, _, err := recvFrame(b)
	if err != nil || string(body) != "y" {
		t.Fatalf("got %q, %v; want the frame sent with TrySend", body, err)
	}
}

// TestTrySendCloseWhileBehind: Close with a TrySend's half-written batch
// handed to the writer loses nothing of ours: no goroutine stays behind,
// and a Send that was waiting returns.
func TestTrySendCloseWhileBehind(t *testing.T) {
	a, _ := tcpPair(t, Options{MaxQueued: 64 << 10})
	for {
		if err := a.TrySend(nil, make([]byte, 8000)); err != nil {
			break
		}
	}
	sendc := sendAsync(a, nil, make([]byte, 1<<20)) // large: waits for its write
	a.Close()
	select {
	case <-sendc:
	case <-time.After(10 * time.Second):
		t.Fatal("Send still blocked 10 s after Close")
	}
}
