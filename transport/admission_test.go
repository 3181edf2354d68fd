package transport

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestAdmission: a handshake that stalls holds up no other peer; one past
// the cap is turned away with ErrBusy; a failed one is turned away and
// never reaches Accept; Close ends the stalled one.
func TestAdmission(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	turned := make(chan error, 8)
	a := NewAdmission(l.Accept, 2,
		func(c net.Conn) (Conn, error) {
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				return nil, err
			}
			switch b[0] {
			case 's': // stall until the test ends
				<-release
				return nil, errors.New("released")
			case 'x':
				return nil, errors.New("bad hello")
			}
			return NewFramedConn(c, Info{Transport: "test"}, Options{}), nil
		},
		func(_ net.Conn, err error) { turned <- err })
	dial := func(hello byte) net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{hello})
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial('s') // holds one slot
	dial('x')
	if err := <-turned; err == nil || err.Error() != "bad hello" {
		t.Fatalf("the bad peer: %v", err)
	}
	dial('o')
	accepted := make(chan Conn, 1)
	go func() {
		c, err := a.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a good peer was not accepted beside a stalled one")
	}
	// The stalled peer and one waiting for Accept fill both slots.
	dial('o')
	for deadline := time.Now().Add(10 * time.Second); len(a.slots) < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the second slot was never taken")
		}
		time.Sleep(time.Millisecond)
	}
	dial('o')
	if err := <-turned; !errors.Is(err, ErrBusy) {
		t.Fatalf("a peer past the cap: %v, want ErrBusy", err)
	}
	if n := a.Rejected(); n != 2 {
		t.Errorf("Rejected() = %d, want 2", n)
	}
	close(release)
	if err := a.Close(l.Close); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}
