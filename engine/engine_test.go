package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// fixture is an in-process server on loopback with emulated devices,
// listening on TCP and on shared memory; dial uses f.transport.
type fixture struct {
	srv       *engine.Server
	addr      string
	transport string // "" or "tcp": TCP; "shm": shared memory; "tcp+shm": TCP with a shared-memory bulk lane
}

// transports are what the end-to-end tests of the spine run over.
var transports = []string{"tcp", "shm", "tcp+shm"}

// overTransports runs test once per transport, each with a fresh fixture.
func overTransports(t *testing.T, devices int, memory uint64, test func(t *testing.T, f *fixture)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			f := newFixture(t, devices, memory)
			f.transport = tr
			test(t, f)
		})
	}
}

func newFixture(t testing.TB, devices int, memory uint64) *fixture {
	t.Helper()
	return newFixtureWith(t, engine.Config{}, devices, memory)
}

// newFixtureWith is newFixture with cfg for the server (its name, logger
// and offers are the fixture's) and, when wrap is given, the listeners it
// returns in place of the TCP and shared-memory ones.
func newFixtureWith(t testing.TB, cfg engine.Config, devices int, memory uint64, wrap ...func(transport.Listener) transport.Listener) *fixture {
	t.Helper()
	var devs []backend.Device
	for i := range devices {
		d, err := host.New(host.Config{Index: i, MemorySize: memory})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	return newFixtureOn(t, cfg, devs, wrap...)
}

// newFixtureOn is newFixtureWith on the given devices.
func newFixtureOn(t testing.TB, cfg engine.Config, devs []backend.Device, wrap ...func(transport.Listener) transport.Listener) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := shm.Listen(shmPath(l.Addr()), shm.Options{})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	cfg.Name, cfg.Logger = "test", log
	cfg.Offers = []string{"tcp:" + l.Addr(), "shm:" + shmPath(l.Addr())}
	srv, err := engine.NewServer(cfg, devs)
	if err != nil {
		t.Fatal(err)
	}
	listeners := []transport.Listener{l, sl}
	for _, w := range wrap {
		for i := range listeners {
			listeners[i] = w(listeners[i])
		}
	}
	for _, l := range listeners {
		go srv.Serve(l)
	}
	t.Cleanup(func() { srv.Close() })
	return &fixture{srv: srv, addr: l.Addr()}
}

func shmPath(tcpAddr string) string {
	_, port, _ := net.SplitHostPort(tcpAddr)
	return "@gpufabric-test-" + port
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (f *fixture) dial(t testing.TB) *interpose.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s *interpose.Session
	var err error
	switch f.transport {
	case "tcp+shm": // calls over TCP, large payloads over shared memory
		s, err = interpose.Connect(ctx, f.addr, interpose.Options{Client: t.Name(), Transport: "tcp", BulkTransport: "shm"})
	case "shm":
		var conn transport.Conn
		if conn, err = shm.Dial(ctx, shmPath(f.addr), shm.Options{}); err == nil {
			s, err = interpose.Open(ctx, conn, interpose.Options{Client: t.Name()})
		}
	default:
		s, err = interpose.Dial(ctx, f.addr, interpose.Options{Client: t.Name()})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func floats(n int, f func(i int) float32) []byte {
	b := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f(i)))
	}
	return b
}

func floatAt(b []byte, i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
}

func TestSaxpy(t *testing.T) { overTransports(t, 1, 256<<20, testSaxpy) }

func testSaxpy(t *testing.T, f *fixture) {
	s := f.dial(t)
	call, bulk, _ := strings.Cut(f.transport, "+")
	if got := s.Transport().Transport; got != call {
		t.Fatalf("session over %s, want %s", got, call)
	}
	if got := s.Selection().BulkLane; bulk != "" && got != bulk {
		t.Fatalf("bulk lane %s, want %s", got, bulk)
	}
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dev.Quota(), uint64(64<<20); got != want {
		t.Fatalf("quota %d, want %d", got, want)
	}
	mod, err := dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		t.Fatal(err)
	}
	saxpy, err := mod.Function("saxpy")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1 << 20
	x, err := dev.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := dev.Alloc(4 * n)
	if err := dev.CopyHtoD(x, floats(n, func(i int) float32 { return float32(i) })); err != nil {
		t.Fatal(err)
	}
	if err := dev.CopyHtoD(y, floats(n, func(i int) float32 { return 1 })); err != nil {
		t.Fatal(err)
	}
	st := dev.DefaultStream()
	if err := saxpy.Launch(st, interpose.D1(n/256), interpose.D1(256), 0, int32(n), float32(2), x, y); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4*n)
	if err := dev.CopyDtoH(out, y); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 12345, n - 1} {
		if got, want := floatAt(out, i), 2*float32(i)+1; got != want {
			t.Fatalf("y[%d] = %g, want %g", i, got, want)
		}
	}
	// The share refuses what would pass it.
	if _, err := dev.Alloc(60 << 20); !errors.Is(err, api.ErrOutOfMemory) {
		t.Fatalf("allocation past the share: err = %v, want CUDA_ERROR_OUT_OF_MEMORY", err)
	}
}
