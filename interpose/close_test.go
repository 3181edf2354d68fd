package interpose_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// TestCloseReleasesAtOnce: once Close returns, the server holds nothing of
// the session, with no waiting: another client's Status sees the session
// gone and its share and memory back, over each transport.
func TestCloseReleasesAtOnce(t *testing.T) {
	for _, tr := range []string{"tcp", "shm"} {
		t.Run(tr, func(t *testing.T) {
			addr, _ := server(t, true, "auto")
			s, err := connect(t, addr, tr)
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: 0.5})
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				p, err := d.Alloc(4 << 20)
				if err != nil {
					t.Fatal(err)
				}
				// Queued, not waited for: Close must not outrun it.
				if err := d.Memset(p, 7, 4, 1<<20); err != nil {
					t.Fatal(err)
				}
			}
			stream, err := d.NewStream(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			_ = stream
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := s.Ping(); !errors.Is(err, api.ErrDeinitialized) {
				t.Fatalf("Ping after Close: %v, want CUDA_ERROR_DEINITIALIZED", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			watcher, err := interpose.Dial(ctx, addr, interpose.Options{Client: "watcher"})
			if err != nil {
				t.Fatal(err)
			}
			defer watcher.Close()
			st, err := watcher.Status()
			if err != nil {
				t.Fatal(err)
			}
			for _, ss := range st.Sessions {
				if ss.ID != watcher.ID() {
					t.Errorf("session %d (%s) is still on the server after Close: %+v", ss.ID, ss.Client, ss)
				}
			}
			for _, dev := range st.Devices {
				if dev.ReservedBytes != 0 || dev.SessionBytes != 0 || dev.Sessions != 0 {
					t.Errorf("device %d still holds the closed session's share: %+v", dev.Index, dev)
				}
			}
		})
	}
}

// silent serves connections that answer Hello and then read everything
// and answer nothing; each connection's end is sent on the channel.
func silent(t *testing.T) (string, <-chan error) {
	t.Helper()
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ended := make(chan error, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for first := true; ; first = false {
					body, n, err := c.Recv()
					if err == nil {
						err = c.ReadPayload(make([]byte, n))
					}
					if err != nil {
						ended <- err
						return
					}
					h, _, err := api.ReadHeader(body)
					if err != nil {
						ended <- err
						return
					}
					if first {
						reply := api.AppendReply(nil, h.Op, h.Seq, 0, nil, &api.HelloReply{Server: "silent", Version: api.Version, Devices: 1})
						if err := transport.SendNow(c, reply, nil); err != nil {
							ended <- err
							return
						}
					}
				}
			}()
		}
	}()
	return l.Addr(), ended
}

// TestCloseCutsOffASilentServer: a server that never answers Goodbye is
// cut off when the context ends, and sees its connection close.
func TestCloseCutsOffASilentServer(t *testing.T) {
	addr, ended := silent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Dial(ctx, addr, interpose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A call in flight when Close gives up fails rather than hanging.
	pinged := make(chan error, 1)
	go func() { pinged <- s.Ping() }()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelClose()
	closed := make(chan error, 1)
	go func() { closed <- s.CloseContext(closeCtx) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close is still waiting for a server that does not answer")
	}
	select {
	case err := <-pinged:
		if !errors.Is(err, api.ErrDeinitialized) {
			t.Fatalf("Ping: %v, want CUDA_ERROR_DEINITIALIZED", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call is still waiting after Close")
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the server's connection stays open after Close")
	}
}

// TestCloseTakesAnyAnswer: a server that does not know Goodbye answers it
// with an error; Close takes that as the end and reports nothing.
func TestCloseTakesAnyAnswer(t *testing.T) {
	goodbyes := make(chan api.Op, 4)
	addr := scripted(t, func(h api.Header) ([]byte, []byte) {
		goodbyes <- h.Op
		return api.AppendReply(nil, h.Op, h.Seq, 0, api.Errorf(api.ErrNotSupported, "%v", h.Op), nil), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Dial(ctx, addr, interpose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseContext(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if op := <-goodbyes; op != api.OpGoodbye {
		t.Fatalf("the server got %v, want Goodbye", op)
	}
	if ctx.Err() != nil {
		t.Fatal("Close waited out its deadline although the server answered")
	}
	// Closing again does nothing more.
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
