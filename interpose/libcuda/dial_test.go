//go:build linux

package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// hostServer serves one emulated device in address slot slot on loopback.
func hostServer(t *testing.T, slot int) (string, *engine.Server) {
	t.Helper()
	dev, err := host.New(host.Config{MemorySize: 1 << 20, Slot: slot})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(engine.Config{Offers: []string{"tcp:" + l.Addr()}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr(), srv
}

// sessionsGone waits until srv holds no session.
func sessionsGone(t *testing.T, srv *engine.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(srv.Status().Sessions) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the server still holds %d sessions", len(srv.Status().Sessions))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDialSeveralServers: GPUFABRIC_SERVER with two servers gives a
// session each, their devices numbered in the list's order; servers whose
// address ranges meet are refused, and so is a list with a server that
// does not answer, leaving nothing held on the one that did.
func TestDialSeveralServers(t *testing.T) {
	a, srvA := hostServer(t, 1)
	b, srvB := hostServer(t, 2)
	t.Setenv("GPUFABRIC_TRANSPORT", "tcp")
	t.Setenv("GPUFABRIC_SERVER", a+","+b)
	c, r, err := dial()
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, r)
	}
	if len(c.devs) != 2 || len(c.sessions) != 2 || c.devs[0].Session() != c.sessions[0] || c.devs[1].Session() != c.sessions[1] || c.s != c.sessions[0] {
		t.Fatalf("devices %d, sessions %d: want one device of each server, in order", len(c.devs), len(c.sessions))
	}
	for i, srv := range []*engine.Server{srvA, srvB} {
		if n := len(srv.Status().Sessions); n != 1 {
			t.Errorf("server %d holds %d sessions, want 1", i, n)
		}
	}
	if lo0, _ := c.devs[0].AddressRange(); lo0 == 0 {
		t.Error("device 0 reports no address range")
	}
	// Device 0's memory, named on device 1's stream: refused (elsewhere);
	// on its own device's, not.
	p, err := c.devs[0].Alloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	live.Store(c)
	devMem.add(&region{base: uint64(p), size: 4096, dev: 0})
	if !elsewhere(uint64(p)+100, 1) || elsewhere(uint64(p), 0) || elsewhere(uint64(p)+4096, 1) {
		t.Error("elsewhere: device 0's memory is not told from device 1's")
	}
	devMem.remove(uint64(p), nil)
	live.Store(nil)
	for _, s := range c.sessions {
		s.Close()
	}

	same, srvSame := hostServer(t, 1)
	t.Setenv("GPUFABRIC_SERVER", a+","+same)
	_, _, err = dial()
	t.Log(err)
	if !errors.Is(err, interpose.ErrAddressOverlap) {
		t.Fatalf("two servers in one slot: %v, want ErrAddressOverlap", err)
	}
	sessionsGone(t, srvA)
	sessionsGone(t, srvSame)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there: the dial is refused
	t.Setenv("GPUFABRIC_SERVER", a+","+dead)
	_, _, err = dial()
	t.Log(err)
	if err == nil {
		t.Fatal("a server that does not answer was accepted")
	}
	sessionsGone(t, srvA)
}
