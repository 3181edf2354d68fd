// Command saxpy-demo is the demo's client: it opens a session on a GPU
// server with a share of one device, runs saxpy on 64 Mi floats, checks the
// result, shows that the share refuses an allocation past it, and prints
// what it did with timings.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
)

func main() {
	server := flag.String("server", "127.0.0.1:7070", "GPU server address")
	share := flag.Float64("p", 0.25, "fraction of the device to hold")
	n := flag.Int("n", 64<<20, "elements")
	transport := flag.String("transport", "", "force a transport (tcp, shm); default: measure and choose")
	flag.Parse()
	if err := run(*server, *transport, *share, *n); err != nil {
		fmt.Fprintln(os.Stderr, "saxpy-demo:", err)
		os.Exit(1)
	}
}

func step(what string, start time.Time) {
	fmt.Printf("  %-44s %10.2f ms\n", what, float64(time.Since(start).Microseconds())/1000)
}

func run(server, transport string, share float64, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t := time.Now()
	s, err := interpose.Connect(ctx, server, interpose.Options{Client: "saxpy-demo", Transport: transport})
	if err != nil {
		return err
	}
	defer s.Close()
	dev, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: share})
	if err != nil {
		return fmt.Errorf("attach a %g share: %w", share, err)
	}
	info := dev.Info()
	fmt.Printf("session %d on %s over %s: device %d (%s), share %g = %s\n",
		s.ID(), s.Server().Server, s.Transport().Transport, dev.ServerIndex(), info.Name, share, humanize.IBytes(dev.Quota()))
	fmt.Printf("  transport: %s\n", s.Selection())
	step("connect (choosing the transport), attach", t)

	t = time.Now()
	mod, err := dev.LoadModule(examples.KernelsPTX)
	if err != nil {
		return err
	}
	saxpy, err := mod.Function("saxpy")
	if err != nil {
		return err
	}
	step("load kernels.ptx, look up saxpy", t)

	size := uint64(4 * n)
	t = time.Now()
	x, err := dev.Alloc(size)
	if err != nil {
		return err
	}
	y, err := dev.Alloc(size)
	if err != nil {
		return err
	}
	step(fmt.Sprintf("allocate x and y, %s each", humanize.IBytes(size)), t)

	hx, hy := make([]byte, size), make([]byte, size)
	for i := range n {
		binary.LittleEndian.PutUint32(hx[4*i:], math.Float32bits(float32(i%1000)))
		binary.LittleEndian.PutUint32(hy[4*i:], math.Float32bits(1))
	}
	t = time.Now()
	if err := dev.CopyHtoD(x, hx); err != nil {
		return err
	}
	if err := dev.CopyHtoD(y, hy); err != nil {
		return err
	}
	el := time.Since(t)
	step(fmt.Sprintf("copy x, y to the device (%s/s)", humanize.IBytes(uint64(float64(2*size)/el.Seconds()))), t)
	if info.Name == "gpufabric host emulation (CPU)" {
		fmt.Println("    (this first copy also faults in the emulated device's memory, which the host backs lazily)")
	}

	const a = 2.5
	t = time.Now()
	st := dev.DefaultStream()
	if err := saxpy.Launch(st, interpose.D1(uint32((n+255)/256)), interpose.D1(256), 0, int32(n), float32(a), x, y); err != nil {
		return err
	}
	if err := st.Synchronize(); err != nil {
		return err
	}
	step("saxpy y = 2.5*x + y, launch and synchronise", t)

	t = time.Now()
	if err := dev.CopyDtoH(hy, y); err != nil {
		return err
	}
	el = time.Since(t)
	step(fmt.Sprintf("copy y back (%s/s)", humanize.IBytes(uint64(float64(size)/el.Seconds()))), t)

	for i := range n {
		got := math.Float32frombits(binary.LittleEndian.Uint32(hy[4*i:]))
		if want := a*float32(i%1000) + 1; got != want {
			return fmt.Errorf("y[%d] = %g, want %g", i, got, want)
		}
	}
	fmt.Printf("  result checked: all %d elements correct\n", n)

	free, total, err := dev.MemGetInfo()
	if err != nil {
		return err
	}
	fmt.Printf("  memory the session sees: %s free of %s (its share, not the card)\n", humanize.IBytes(free), humanize.IBytes(total))
	_, err = dev.Alloc(free + 1)
	if !errors.Is(err, api.ErrOutOfMemory) {
		return fmt.Errorf("an allocation past the share was not refused: %v", err)
	}
	fmt.Printf("  an allocation of %s past the share is refused: %v\n", humanize.IBytes(free+1), err)
	dev.Free(x)
	dev.Free(y)
	return dev.Synchronize()
}
