package rdma

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

var quiet = slog.New(slog.DiscardHandler)

// fabric is an emulated fabric with a listener on it.
type fabric struct {
	emu    *Emulation
	server Device
	client Device
	l      *Listener
	cfg    Config
}

func newFabric(t testing.TB, cfg Config, clientOpts EmuOptions) *fabric {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	f := &fabric{emu: NewEmulation(), cfg: cfg}
	f.server = f.emu.Open("emu-server", EmuOptions{})
	f.client = f.emu.Open("emu-client", clientOpts)
	l, err := Listen("127.0.0.1:0", f.server, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.l = l
	t.Cleanup(func() { l.Close() })
	return f
}

// pair connects a client to the fabric's listener.
func (f *fabric) pair(t testing.TB) (client, server *Conn) {
	t.Helper()
	accepted := make(chan transport.Conn, 1)
	errc := make(chan error, 1)
	go func() {
		c, err := f.l.Accept()
		if err != nil {
			errc <- err
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := Dial(ctx, f.l.Addr(), f.client, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		server = c.(*Conn)
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// exchange sends one frame from a to b and checks what arrives.
func exchange(t *testing.T, a, b *Conn, body, payload []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- a.Send(body, payload) }()
	got, n, err := b.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body of %d bytes arrived as %d bytes, differing", len(body), len(got))
	}
	if n != len(payload) {
		t.Fatalf("payload length %d, sent %d", n, len(payload))
	}
	dst := make([]byte, n)
	if err := b.ReadPayload(dst); err != nil {
		t.Fatalf("ReadPayload: %v", err)
	}
	if !bytes.Equal(dst, payload) {
		t.Fatalf("payload of %d bytes differs", n)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Send: %v", err)
	}
}

// TestFrames sends frames of every shape each way and counts how many
// times the CPU copied each payload byte on the way.
func TestFrames(t *testing.T) {
	f := newFabric(t, Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 4, StagingSlotSize: 64 << 10}, EmuOptions{})
	tests := []struct {
		name          string
		toServer      bool
		body, payload int
		// copies of each payload byte by the sender's and receiver's CPUs
		sendCopies, recvCopies int64
	}{
		{"empty", true, 0, 0, 0, 0},
		{"call", true, 40, 0, 0, 0},
		{"body in fragments", true, 10 << 10, 0, 0, 0},
		{"eager payload", true, 32, 3000, 1, 1},
		{"eager payload in fragments", false, 5000, 4 << 10, 1, 1},
		{"staged to the server", true, 32, 4<<10 + 1, 0, 1},
		{"staged in many slots", true, 32, 1<<20 + 17, 0, 1},
		{"written to the client", false, 32, 4<<10 + 1, 0, 0},
		{"written to the client in pieces", false, 32, 3<<20 + 5, 0, 0},
	}
	client, server := f.pair(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := client, server
			if !tt.toServer {
				a, b = server, client
			}
			sa, sb := a.Stats(), b.Stats()
			exchange(t, a, b, pattern(tt.body, uint64(i)), pattern(tt.payload, uint64(i+100)))
			da, db := a.Stats(), b.Stats()
			if got := da.CopiedBytes - sa.CopiedBytes; got != tt.sendCopies*int64(tt.payload) {
				t.Errorf("sender copied %d payload bytes of %d, want %d copies each", got, tt.payload, tt.sendCopies)
			}
			if got := db.CopiedBytes - sb.CopiedBytes; got != tt.recvCopies*int64(tt.payload) {
				t.Errorf("receiver copied %d payload bytes of %d, want %d copies each", got, tt.payload, tt.recvCopies)
			}
		})
	}
}

// TestSkippedPayloads leaves payloads of each mode unread: the next frame
// must still arrive whole.
func TestSkippedPayloads(t *testing.T) {
	f := newFabric(t, Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 2, StagingSlotSize: 16 << 10}, EmuOptions{})
	client, server := f.pair(t)
	for _, dir := range []struct {
		name string
		a, b *Conn
	}{{"to server", client, server}, {"to client", server, client}} {
		for _, size := range []int{100, 9000, 100 << 10} {
			t.Run(fmt.Sprintf("%s/%d", dir.name, size), func(t *testing.T) {
				errc := make(chan error, 1)
				go func() {
					if err := dir.a.Send([]byte("skip me"), pattern(size, 1)); err != nil {
						errc <- err
						return
					}
					errc <- dir.a.Send([]byte("next"), []byte("tail"))
				}()
				if _, n, err := dir.b.Recv(); err != nil || n != size {
					t.Fatalf("Recv = %d, %v; want %d", n, err, size)
				}
				body, n, err := dir.b.Recv()
				if err != nil || string(body) != "next" || n != 4 {
					t.Fatalf("next frame: %q %d %v", body, n, err)
				}
				tail := make([]byte, 4)
				if err := dir.b.ReadPayload(tail); err != nil || string(tail) != "tail" {
					t.Fatalf("tail: %q %v", tail, err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestCreditsUnderLoad runs many senders each way over few receive
// buffers, so that credits run out all the time, with both sides'
// readers checking every frame.
func TestCreditsUnderLoad(t *testing.T) {
	f := newFabric(t, Config{RecvDepth: 4, SlotSize: 1 << 10, Rendezvous: 2 << 10, StagingSlots: 2, StagingSlotSize: 4 << 10}, EmuOptions{})
	client, server := f.pair(t)
	const senders, frames = 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, 4*senders)
	send := func(c *Conn, id int) {
		defer wg.Done()
		for i := range frames {
			body := fmt.Appendf(nil, "%d:%d", id, i)
			size := (id*131 + i*61) % (6 << 10)
			if err := c.Send(body, pattern(size, uint64(id<<16|i))); err != nil {
				errs <- fmt.Errorf("sender %d frame %d: %w", id, i, err)
				return
			}
		}
	}
	recv := func(c *Conn) {
		defer wg.Done()
		next := map[int]int{}
		for range senders * frames {
			body, n, err := c.Recv()
			if err != nil {
				errs <- err
				return
			}
			var id, i int
			fmt.Sscanf(string(body), "%d:%d", &id, &i)
			if next[id] != i {
				errs <- fmt.Errorf("sender %d: frame %d arrived, %d due", id, i, next[id])
				return
			}
			next[id]++
			dst := make([]byte, n)
			if err := c.ReadPayload(dst); err != nil {
				errs <- err
				return
			}
			if want := pattern((id*131+i*61)%(6<<10), uint64(id<<16|i)); !bytes.Equal(dst, want) {
				errs <- fmt.Errorf("sender %d frame %d: payload differs", id, i)
				return
			}
		}
	}
	wg.Add(2*senders + 2)
	for id := range senders {
		go send(client, id)
		go send(server, id)
	}
	go recv(client)
	go recv(server)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRegistrationFallback: with the locked-memory limit too low for the
// payloads, they are copied through memory registered at setup instead.
func TestRegistrationFallback(t *testing.T) {
	var logs syncBuffer
	cfg := Config{RecvDepth: 8, SlotSize: 4 << 10, Rendezvous: 4 << 10, StagingSlots: 2, StagingSlotSize: 64 << 10,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	// The client's setup registers 17 slots and a 64 KiB bounce buffer.
	f := newFabric(t, cfg, EmuOptions{RegisterLimit: 17*4<<10 + 64<<10 + 1024})
	client, server := f.pair(t)
	exchange(t, client, server, []byte("h2d"), pattern(300<<10, 1))
	exchange(t, server, client, []byte("d2h"), pattern(300<<10, 2))
	for _, want := range []string{"payload memory would not register", "receive buffer would not register", "locked-memory limit"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	st := client.Stats()
	if st.Fallbacks != 2 {
		t.Errorf("client fell back %d times, want 2 (one send, one receive)", st.Fallbacks)
	}
	if st.CopiedBytes != 2*300<<10 {
		t.Errorf("client copied %d bytes, want each payload once (%d)", st.CopiedBytes, 2*300<<10)
	}
}

// TestRegistrationCache: memory not pinned is registered for each
// transfer; pinned memory is registered once, and again after Forget.
func TestRegistrationCache(t *testing.T) {
	f := newFabric(t, Config{Rendezvous: 4 << 10}, EmuOptions{})
	client, server := f.pair(t)
	buf := pattern(1<<20, 3)
	exchange(t, client, server, nil, buf)
	exchange(t, client, server, nil, buf)
	if cs := client.Stats().Cache; cs.Misses != 2 || cs.Hits != 0 {
		t.Errorf("unpinned: %+v; want a registration per transfer", cs)
	}
	if err := client.Pin(buf); err != nil {
		t.Fatal(err)
	}
	exchange(t, client, server, nil, buf)
	exchange(t, client, server, nil, buf[4096:])
	if cs := client.Stats().Cache; cs.Misses != 2 || cs.Hits != 2 {
		t.Errorf("pinned: %+v; want hits, for the slice inside it too", cs)
	}
	client.Forget(buf[10:20])
	exchange(t, client, server, nil, buf)
	if cs := client.Stats().Cache; cs.Drops != 1 || cs.Misses != 3 {
		t.Errorf("after Forget: %+v; want the region dropped and registered for the transfer", cs)
	}
	// A reader's buffer for a request-to-send is registered for the
	// transfer alone: afterwards the server's rkey for it names nothing.
	emu := f.client.(*emuDevice)
	registered := func() int {
		emu.mu.Lock()
		defer emu.mu.Unlock()
		return emu.registered
	}
	before := registered()
	dst := make([]byte, 1<<20)
	errc := make(chan error, 1)
	go func() { errc <- server.Send(nil, buf) }()
	if _, _, err := client.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := client.ReadPayload(dst); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if after := registered(); after != before {
		t.Errorf("%d bytes registered after the transfer, %d before: the reader's buffer is still registered", after, before)
	}
}

func TestPeerClosesBetweenFrames(t *testing.T) {
	f := newFabric(t, Config{}, EmuOptions{})
	client, server := f.pair(t)
	if err := client.Send([]byte("last words"), nil); err != nil {
		t.Fatal(err)
	}
	if server.PeerClosed() {
		t.Fatal("PeerClosed before the peer closed")
	}
	client.Close()
	waitFor(t, server.PeerClosed)
	if body, _, err := server.Recv(); err != nil || string(body) != "last words" {
		t.Fatalf("Recv = %q, %v; want the frame sent before Close", body, err)
	}
	if _, _, err := server.Recv(); err != io.EOF {
		t.Fatalf("Recv after the peer closed = %v, want io.EOF", err)
	}
	if err := server.Send([]byte("anyone?"), nil); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Send to a closed peer = %v, want ErrPeerGone", err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	f := newFabric(t, Config{}, EmuOptions{})
	client, _ := f.pair(t)
	errc := make(chan error, 1)
	go func() {
		_, _, err := client.Recv()
		errc <- err
	}()
	client.Close()
	if err := <-errc; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Recv on a closed connection = %v, want ErrClosed", err)
	}
}

func TestTrySend(t *testing.T) {
	f := newFabric(t, Config{RecvDepth: 4, SlotSize: 1 << 10}, EmuOptions{})
	client, server := f.pair(t)
	// Nobody reads: TrySend takes frames while credits last, then refuses
	// without waiting.
	sent := 0
	for ; sent < 10; sent++ {
		if err := client.TrySend([]byte("x"), nil); err == transport.ErrWouldBlock {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if sent == 0 || sent >= 4 {
		t.Fatalf("TrySend took %d frames over 4 receive buffers; want some, and fewer than 4", sent)
	}
	for range sent {
		if body, _, err := server.Recv(); err != nil || string(body) != "x" {
			t.Fatalf("Recv = %q, %v", body, err)
		}
	}
	if err := client.TrySend(nil, make([]byte, 1<<20)); err != transport.ErrWouldBlock {
		t.Fatalf("TrySend of a rendezvous payload = %v, want ErrWouldBlock", err)
	}
}

func TestSizeLimits(t *testing.T) {
	f := newFabric(t, Config{Options: transport.Options{MaxBody: 100, MaxPayload: 1000}}, EmuOptions{})
	client, _ := f.pair(t)
	if err := client.Send(make([]byte, 101), nil); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
	if err := client.Send(nil, make([]byte, 1001)); !errors.Is(err, transport.ErrFrameTooLarge) {
		t.Errorf("oversized payload: %v", err)
	}
}

// TestProbe runs the transport package's measurements over the
// connection, as selection does.
func TestProbe(t *testing.T) {
	f := newFabric(t, Config{}, EmuOptions{})
	client, server := f.pair(t)
	done := make(chan error, 1)
	go func() { done <- transport.Echo(server) }()
	st, err := transport.PingPong(client, 50, 64)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 50 {
		t.Fatalf("PingPong: %v", st)
	}
	client.Close()
	if err := <-done; err != nil && !errors.Is(err, ErrPeerGone) && err != io.EOF {
		t.Fatalf("Echo: %v", err)
	}
}

// TestPeerGID: a listener that chooses its GID per peer is asked with the
// peer's address, and one it cannot find a GID for is refused with why.
func TestPeerGID(t *testing.T) {
	asked := make(chan netip.Addr, 2)
	fail := false
	var mu sync.Mutex
	cfg := Config{PeerGID: func(peer netip.Addr) (GID, error) {
		asked <- peer
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return GID{}, ErrNoGID
		}
		return GID{Index: 3, Addr: netip.MustParseAddr("::ffff:127.0.0.1"), Type: RoCEv2}, nil
	}}
	f := newFabric(t, cfg, EmuOptions{})
	client, server := f.pair(t)
	exchange(t, client, server, []byte("hello"), nil)
	if peer := <-asked; peer != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("PeerGID asked for %v, want the client's 127.0.0.1", peer)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := Dial(ctx, f.l.Addr(), f.client, Config{Logger: quiet}); err == nil {
		c.Close()
		t.Fatal("setup succeeded with no GID for the peer")
	}
}

// syncBuffer is a bytes.Buffer that connections may log to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
