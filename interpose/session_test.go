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

// scripted serves one connection: it answers Hello, then answers each
// later call with the reply that answer builds from its header.
func scripted(t *testing.T, answer func(h api.Header) (body, payload []byte)) string {
	t.Helper()
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for first := true; ; first = false {
			body, n, err := c.Recv()
			if err != nil {
				return
			}
			if err := c.ReadPayload(make([]byte, n)); err != nil {
				return
			}
			h, _, err := api.ReadHeader(body)
			if err != nil {
				return
			}
			var reply, payload []byte
			if first {
				reply = api.AppendReply(nil, h.Op, h.Seq, 0, nil, &api.HelloReply{Server: "scripted", Version: api.Version, Devices: 1})
			} else {
				reply, payload = answer(h)
			}
			if err := transport.SendNow(c, reply, payload); err != nil {
				return
			}
		}
	}()
	return l.Addr()
}

// TestBadReply: a reply the client cannot take fails the call it answers
// (and the session) at once; no caller is left waiting.
func TestBadReply(t *testing.T) {
	cases := []struct {
		name   string
		answer func(h api.Header) (body, payload []byte)
	}{
		{"marked for a bulk lane the session lacks", func(h api.Header) ([]byte, []byte) {
			return api.AppendReply(nil, h.Op, h.Seq, api.FlagBulkPayload, nil, nil), nil
		}},
		{"payload the call does not take", func(h api.Header) ([]byte, []byte) {
			return api.AppendReply(nil, h.Op, h.Seq, 0, nil, nil), make([]byte, 10)
		}},
		{"fields cut short", func(h api.Header) ([]byte, []byte) {
			return api.AppendReply(nil, h.Op, h.Seq, 0, nil, nil)[:api.HeaderSize-2], nil
		}},
		{"answer to a call never made", func(h api.Header) ([]byte, []byte) {
			return api.AppendReply(nil, h.Op, h.Seq+100, 0, nil, nil), nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := scripted(t, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := interpose.Dial(ctx, addr, interpose.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A second caller waits behind the first, which reads the bad reply.
			errc := make(chan error, 2)
			for range 2 {
				go func() { errc <- s.Ping() }()
			}
			for range 2 {
				select {
				case err := <-errc:
					if !errors.Is(err, api.ErrDeinitialized) {
						t.Errorf("Ping: %v, want CUDA_ERROR_DEINITIALIZED", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("a call is still waiting after a bad reply")
				}
			}
		})
	}
}
