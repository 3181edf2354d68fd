package rdma

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A peer that breaks the rules fails its own connection with an error
// that says what happened, and nothing else: a bystander connection on
// the same devices and listener carries on.

// badKeys registers memory as its device does, but hands out wrong rkeys:
// a client whose clear-to-send names memory the server may not write.
type badKeys struct{ Device }

func (d badKeys) NewDomain() (Domain, error) {
	dom, err := d.Device.NewDomain()
	return badKeyDomain{dom}, err
}

type badKeyDomain struct{ Domain }

func (d badKeyDomain) Register(b []byte, access Access) (MR, error) {
	mr, err := d.Domain.Register(b, access)
	if err != nil {
		return nil, err
	}
	return badKeyMR{mr}, nil
}

type badKeyMR struct{ MR }

func (m badKeyMR) RKey() uint32 { return m.MR.RKey() + 1 }

// await returns the next error from errc, or fails the test when none
// comes in time.
func await(t *testing.T, errc <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no error after 10s", what)
		return nil
	}
}

func recvErr(c *Conn) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			_, n, err := c.Recv()
			if err == nil && n > 0 {
				err = c.ReadPayload(make([]byte, n))
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	return errc
}

func TestFaults(t *testing.T) {
	cfg := Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 2, StagingSlotSize: 64 << 10}
	tests := []struct {
		name string
		// fault breaks the client, and returns the error it saw.
		fault func(t *testing.T, f *fabric, client, server *Conn) error
		// clientErr and serverErr are in the errors each side reports.
		clientErr, serverErr string
	}{
		{
			name: "wrong rkey for staging",
			fault: func(t *testing.T, f *fabric, client, server *Conn) error {
				client.peer.stagingRKey ^= 0x55
				return client.Send([]byte("h2d"), make([]byte, 100<<10))
			},
			clientErr: "bad rkey or range",
			serverErr: "queue pair",
		},
		{
			name: "write past the staging",
			fault: func(t *testing.T, f *fabric, client, server *Conn) error {
				client.peer.stagingAddr += 100 << 10
				return client.Send([]byte("h2d"), make([]byte, 100<<10))
			},
			clientErr: "bad rkey or range",
			serverErr: "queue pair",
		},
		{
			name: "staged piece announced where it was not written",
			fault: func(t *testing.T, f *fabric, client, server *Conn) error {
				client.stagingNext = 1
				return client.Send([]byte("h2d"), make([]byte, 100<<10))
			},
			// The client may be done before the server looks.
			clientErr: "",
			serverErr: "expected offset 0",
		},
		{
			name: "sends beyond credits",
			fault: func(t *testing.T, f *fabric, client, server *Conn) error {
				client.mu.Lock()
				client.credits += 4
				client.mu.Unlock()
				for {
					if err := client.Send([]byte("flood"), nil); err != nil {
						return err
					}
				}
			},
			clientErr: "went away",
			serverErr: "beyond its credits",
		},
		{
			name: "clear-to-send with a wrong rkey",
			fault: func(t *testing.T, f *fabric, client, server *Conn) error {
				return nil // the bad client is dialed with badKeys below
			},
			serverErr: "refused our RDMA WRITE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFabric(t, cfg, EmuOptions{})
			bystanderC, bystanderS := f.pair(t)
			var client, server *Conn
			if tt.name == "clear-to-send with a wrong rkey" {
				good := f.client
				f.client = badKeys{good}
				client, server = f.pair(t)
				f.client = good
				clientErrc := recvErr(client) // asks for the payload below, answering with its bad key
				err := server.Send([]byte("d2h"), make([]byte, 100<<10))
				if err == nil || !strings.Contains(err.Error(), tt.serverErr) {
					t.Fatalf("server Send = %v, want an error saying %q", err, tt.serverErr)
				}
				await(t, clientErrc, "client")
			} else {
				client, server = f.pair(t)
				errc := make(chan error, 1)
				go func() { errc <- tt.fault(t, f, client, server) }()
				if tt.name == "sends beyond credits" {
					// The server reads nothing until the flood fails: reading
					// would grant credits back.
					errc <- await(t, errc, "client")
				}
				serverErrc := recvErr(server)
				if err := await(t, serverErrc, "server"); !strings.Contains(err.Error(), tt.serverErr) {
					t.Errorf("server: %v; want an error saying %q", err, tt.serverErr)
				}
				if err := await(t, errc, "client"); tt.clientErr != "" && (err == nil || !strings.Contains(err.Error(), tt.clientErr)) {
					t.Errorf("client: %v; want an error saying %q", err, tt.clientErr)
				}
			}
			if err := server.Send([]byte("after"), nil); err == nil {
				t.Error("the failed connection still sends")
			}
			// The bystander does not notice.
			exchange(t, bystanderC, bystanderS, []byte("still here"), pattern(100<<10, 1))
			exchange(t, bystanderS, bystanderC, []byte("still here"), pattern(100<<10, 2))
		})
	}
}

// TestPeerVanishesMidTransfer: a peer that goes while a payload is on its
// way fails the other side's transfer with ErrPeerGone, not a hang.
func TestPeerVanishesMidTransfer(t *testing.T) {
	cfg := Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 2, StagingSlotSize: 64 << 10}
	f := newFabric(t, cfg, EmuOptions{})
	t.Run("receiver goes before asking for the payload", func(t *testing.T) {
		client, server := f.pair(t)
		errc := make(chan error, 1)
		go func() { errc <- server.Send([]byte("d2h"), make([]byte, 1<<20)) }()
		if _, _, err := client.Recv(); err != nil {
			t.Fatal(err)
		}
		client.Close()
		if err := await(t, errc, "server Send"); !errors.Is(err, ErrPeerGone) {
			t.Fatalf("server Send = %v, want ErrPeerGone", err)
		}
	})
	t.Run("sender goes in the middle of a payload", func(t *testing.T) {
		client, server := f.pair(t)
		errc := make(chan error, 1)
		// Two staging slots of 64 KiB: the client writes two and waits for
		// the server to empty one, then goes.
		go func() { errc <- client.Send([]byte("h2d"), make([]byte, 1<<20)) }()
		if _, _, err := server.Recv(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			client.mu.Lock()
			defer client.mu.Unlock()
			return client.stagingFree == 0
		})
		client.Close()
		if err := server.ReadPayload(make([]byte, 1<<20)); !errors.Is(err, ErrPeerGone) {
			t.Fatalf("ReadPayload = %v, want ErrPeerGone", err)
		}
		<-errc
	})
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBadSetupsDelayNoOne: peers that connect to the control port and say
// nothing, or say nonsense, do not stand in the way of a good one.
func TestBadSetupsDelayNoOne(t *testing.T) {
	f := newFabric(t, Config{}, EmuOptions{})
	silent, err := net.Dial("tcp", f.l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	noisy, err := net.Dial("tcp", f.l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer noisy.Close()
	noisy.Write(bytes.Repeat([]byte("not a hello "), 20))
	client, server := f.pair(t) // within pair's 10 s, well inside the 10 s setup deadline the silent peer holds
	exchange(t, client, server, []byte("after them"), pattern(100<<10, 1))
	// The noisy peer was refused: its connection is closed.
	noisy.SetReadDeadline(time.Now().Add(10 * time.Second))
	// Closed with its nonsense unread, it may read as a reset: either way,
	// not as a deadline.
	if _, err := io.ReadAll(noisy); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the noisy peer's connection is still open: %v", err)
	}
}

// TestAnotherConnectionsStaging: a client that names the staging of
// another connection on the same server device, with its right rkey and
// address, is refused: each connection has its own protection domain.
func TestAnotherConnectionsStaging(t *testing.T) {
	f := newFabric(t, Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 2, StagingSlotSize: 64 << 10}, EmuOptions{})
	victimC, victimS := f.pair(t)
	thiefC, thiefS := f.pair(t)
	thiefC.peer.stagingAddr, thiefC.peer.stagingRKey = victimS.stagingMR.Addr(), victimS.stagingMR.RKey()
	serverErrc := recvErr(thiefS)
	err := thiefC.Send([]byte("h2d"), pattern(100<<10, 9))
	// The write's own completion says so, unless the server, whose QP
	// the bad access also failed, closed the connection first.
	if err == nil || !strings.Contains(err.Error(), "bad rkey or range") && !errors.Is(err, ErrPeerGone) {
		t.Fatalf("write into another connection's staging: %v; want a remote access error or the server's close", err)
	}
	await(t, serverErrc, "the thief's server side")
	exchange(t, victimC, victimS, []byte("untouched"), pattern(100<<10, 1))
}
