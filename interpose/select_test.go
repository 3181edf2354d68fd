package interpose_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// server starts an in-process server offering TCP and, unless shmOffer is
// "", the shared-memory endpoint shmOffer (which need not be real).
func server(t *testing.T, shmListen bool, shmOffer string) (addr string, srv *engine.Server) {
	t.Helper()
	dev, err := host.New(host.Config{MemorySize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr())
	if shmOffer == "auto" {
		shmOffer = "@gpufabric-select-test-" + port
	}
	offers := []string{"tcp:" + l.Addr()}
	if shmOffer != "" {
		offers = append(offers, "shm:"+shmOffer)
	}
	srv, err = engine.NewServer(engine.Config{Offers: offers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []backend.Device{dev})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	if shmListen {
		sl, err := shm.Listen(shmOffer, shm.Options{})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(sl)
	}
	t.Cleanup(func() { srv.Close() })
	return l.Addr(), srv
}

func connect(t *testing.T, addr, tr string) (*interpose.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Transport: tr})
	if s != nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func TestConnectChoosesByMeasurement(t *testing.T) {
	addr, srv := server(t, true, "auto")
	s, err := connect(t, addr, "")
	if err != nil {
		t.Fatal(err)
	}
	sel := s.Selection()
	if len(sel.Candidates) != 2 {
		t.Fatalf("candidates %+v, want tcp and shm measured", sel.Candidates)
	}
	var fastest interpose.Candidate
	for _, c := range sel.Candidates {
		if c.Err != nil || c.Latency.Samples == 0 || c.Bandwidth <= 0 {
			t.Fatalf("candidate %+v not measured", c)
		}
		if fastest.Transport == "" || c.Latency.P50 < fastest.Latency.P50 {
			fastest = c
		}
	}
	if sel.CallLane != fastest.Transport || s.Transport().Transport != sel.CallLane {
		t.Fatalf("call lane %s over %s; the lowest p50 was %s", sel.CallLane, s.Transport().Transport, fastest.Transport)
	}
	// The server keeps the choice with the session.
	waitFor(t, func() bool {
		st := srv.Status()
		return len(st.Sessions) == 1 && strings.Contains(st.Sessions[0].Selection, "call lane "+sel.CallLane)
	})
	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}
}

func TestConnectForced(t *testing.T) {
	addr, _ := server(t, true, "auto")
	for _, tr := range []string{"tcp", "shm"} {
		s, err := connect(t, addr, tr)
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		if got := s.Transport().Transport; got != tr {
			t.Fatalf("forced %s, got %s", tr, got)
		}
		if sel := s.Selection(); sel.Reason != "forced" || sel.CallLane != tr {
			t.Fatalf("selection %+v", sel)
		}
	}
	t.Setenv("GPUFABRIC_TRANSPORT", "tcp")
	if s, err := connect(t, addr, ""); err != nil || s.Transport().Transport != "tcp" {
		t.Fatalf("GPUFABRIC_TRANSPORT=tcp: %v", err)
	}
	if _, err := connect(t, addr, "carrier-pigeon"); !errors.Is(err, interpose.ErrUnknownTransport) {
		t.Fatalf("unknown transport: %v", err)
	}
}

func TestConnectFallsBackToTCP(t *testing.T) {
	tests := []struct {
		name     string
		listen   bool
		offer    string
		wantWhy  string
		forceErr bool
	}{
		{"no shm offered", false, "", "offers no shared memory", true},
		{"shm offered but dead", false, "@gpufabric-select-test-nobody-listens", "connect", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := server(t, tt.listen, tt.offer)
			s, err := connect(t, addr, "")
			if err != nil {
				t.Fatal(err)
			}
			sel := s.Selection()
			if s.Transport().Transport != "tcp" || sel.CallLane != "tcp" {
				t.Fatalf("over %s, selection %+v", s.Transport().Transport, sel)
			}
			var shmErr error
			for _, c := range sel.Candidates {
				if c.Transport == "shm" {
					shmErr = c.Err
				}
			}
			if shmErr == nil || !strings.Contains(shmErr.Error(), tt.wantWhy) {
				t.Fatalf("shm candidate error %v, want it to say %q", shmErr, tt.wantWhy)
			}
			if _, err := connect(t, addr, "shm"); err == nil {
				t.Fatal("forced shm succeeded where it cannot")
			}
		})
	}
}

// A bulk lane on another transport than the call lane's is a second
// connection that the server counts as part of the session, not as one of
// its own.
func TestConnectBulkLaneForced(t *testing.T) {
	addr, srv := server(t, true, "auto")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Connect(ctx, addr, interpose.Options{Transport: "tcp", BulkTransport: "shm"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sel := s.Selection(); sel.CallLane != "tcp" || sel.BulkLane != "shm" || !strings.Contains(sel.Reason, "bulk lane forced") {
		t.Fatalf("selection %+v", sel)
	}
	waitFor(t, func() bool {
		st := srv.Status()
		return len(st.Sessions) == 1 && strings.Contains(st.Sessions[0].Selection, "bulk lane shm")
	})
	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("GPUFABRIC_BULK_TRANSPORT", "shm")
	if s, err := connect(t, addr, "tcp"); err != nil || s.Selection().BulkLane != "shm" {
		t.Fatalf("GPUFABRIC_BULK_TRANSPORT=shm: %+v, %v", s.Selection(), err)
	}
	t.Setenv("GPUFABRIC_BULK_TRANSPORT", "carrier-pigeon")
	if _, err := connect(t, addr, "tcp"); !errors.Is(err, interpose.ErrUnknownTransport) {
		t.Fatalf("unknown bulk transport: %v", err)
	}
}

// A forced bulk lane that cannot be had is an error, as a forced call lane is.
func TestConnectBulkLaneUnavailable(t *testing.T) {
	addr, _ := server(t, false, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := interpose.Connect(ctx, addr, interpose.Options{BulkTransport: "shm"}); err == nil {
		s.Close()
		t.Fatal("forced shared-memory bulk lane on a server without shared memory succeeded")
	}
}

func TestProbe(t *testing.T) {
	addr, srv := server(t, true, "auto")
	sel, err := interpose.Probe(context.Background(), addr, interpose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Candidates) != 2 || sel.CallLane == "" || sel.BulkLane == "" {
		t.Fatalf("probe %+v", sel)
	}
	waitFor(t, func() bool { return len(srv.Status().Sessions) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
