package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// fixture is an in-process server on loopback with emulated devices.
type fixture struct {
	srv  *engine.Server
	addr string
}

func newFixture(t testing.TB, devices int, memory uint64) *fixture {
	t.Helper()
	var devs []backend.Device
	for i := range devices {
		d, err := host.New(host.Config{Index: i, MemorySize: memory})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	srv, err := engine.NewServer(engine.Config{Name: "test", Logger: log}, devs)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &fixture{srv: srv, addr: l.Addr()}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func (f *fixture) dial(t testing.TB) *interpose.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := interpose.Dial(ctx, f.addr, interpose.Options{Client: t.Name()})
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

func TestSaxpy(t *testing.T) {
	f := newFixture(t, 1, 256<<20)
	s := f.dial(t)
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
