package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// A GPU server with one emulated device, and a client that holds a quarter
// of it, fills memory with a kernel and reads it back.
func Example() {
	dev, err := host.New(host.Config{MemorySize: 64 << 20})
	if err != nil {
		panic(err)
	}
	srv, err := engine.NewServer(engine.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, []backend.Device{dev})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	l, err := tcp.Listen("127.0.0.1:0", transport.Options{})
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)

	s, err := interpose.Dial(context.Background(), l.Addr(), interpose.Options{Client: "example"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	gpu, err := s.Attach(0, interpose.Share{Fraction: 0.25})
	if err != nil {
		panic(err)
	}
	mod, err := gpu.LoadModule(examples.KernelsPTX)
	if err != nil {
		panic(err)
	}
	fill, err := mod.Function("fill_u32")
	if err != nil {
		panic(err)
	}
	p, err := gpu.Alloc(4 * 1024)
	if err != nil {
		panic(err)
	}
	st := gpu.DefaultStream()
	fill.Launch(st, interpose.D1(4), interpose.D1(256), 0, p, uint32(7), uint64(1024)) // sent without waiting
	out := make([]byte, 4*1024)
	if err := gpu.CopyDtoH(out, p); err != nil { // in order after the launch
		panic(err)
	}
	free, total, _ := gpu.MemGetInfo()
	fmt.Println("share:", total>>20, "MiB; free:", free>>10, "KiB; last word:", out[4*1023])
	// Output: share: 16 MiB; free: 16380 KiB; last word: 7
}
