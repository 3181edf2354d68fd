//go:build linux

package transport_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// TestPeerClosedSeesAnAbortBehindABacklog: a peer that aborts with frames
// still unread by us is seen gone without reading them; one that is still
// there is not.
func TestPeerClosedSeesAnAbortBehindABacklog(t *testing.T) {
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := tcp.Dial(context.Background(), l.Addr(), transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	pc := server.(interface{ PeerClosed() bool })
	// Frames nobody reads: a backlog in the sockets' buffers.
	sent := make(chan struct{})
	var n atomic.Int64
	go func() {
		defer close(sent)
		for range 200_000 {
			if client.Send(make([]byte, 60), nil) != nil {
				return
			}
			n.Add(1)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); n.Load() < 50_000; { // 3.4 MB
		if time.Now().After(deadline) {
			t.Fatalf("only %d frames sent in 10 s", n.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if pc.PeerClosed() {
		t.Fatal("PeerClosed with the peer still there")
	}
	transport.Abort(client)
	<-sent
	deadline := time.Now().Add(10 * time.Second)
	for !pc.PeerClosed() {
		if time.Now().After(deadline) {
			t.Fatal("an aborted peer not seen gone in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
