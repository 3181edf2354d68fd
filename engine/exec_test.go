package engine_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/examples"
	"github.com/gpufabric/gpufabric/interpose"
)

func u32s(t *testing.T, dev *interpose.Device, p interpose.DevicePtr, n int) []uint32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := dev.CopyDtoH(b, p); err != nil {
		t.Fatal(err)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func TestGraphReplaysCapturedWork(t *testing.T) { overTransports(t, 1, 64<<20, testGraphReplays) }

func testGraphReplays(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	fill, scale := function(t, mod, "fill_u32"), function(t, mod, "scale_f32")
	const n = 1024
	p, _ := dev.Alloc(4 * n)
	q, _ := dev.Alloc(4 * n)
	st, _ := dev.NewStream(0, 0)
	if err := st.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	if _, active, _ := st.Capturing(); !active {
		t.Fatal("a capturing stream says it is not")
	}
	// fill with 1.0f, scale by 3 twice, copy to q, set q[0..3] to 5, and
	// write 42 over q[4].
	must(t, fill.Launch(st, interpose.D1(n/256), interpose.D1(256), 0, p, uint32(0x3f800000), uint64(n)))
	must(t, scale.Launch(st, interpose.D1(n/256), interpose.D1(256), 0, p, float32(3), uint64(n)))
	must(t, scale.Launch(st, interpose.D1(n/256), interpose.D1(256), 0, p, float32(3), uint64(n)))
	must(t, st.CopyDtoDAsync(q, p, 4*n))
	must(t, st.MemsetAsync(q, 5, 4, 4))
	must(t, st.WriteValue(q+16, 42, 4))
	g, err := st.EndCapture()
	if err != nil {
		t.Fatal(err)
	}
	if g.Nodes() != 6 {
		t.Fatalf("the graph holds %d nodes, want 6", g.Nodes())
	}
	// Captured work does not run.
	if v := u32s(t, dev, p, 1)[0]; v != 0 {
		t.Fatalf("p[0] = %#x after capture alone, want 0", v)
	}
	ge, err := g.Instantiate()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		must(t, ge.Launch(st))
		must(t, st.Synchronize())
		got := u32s(t, dev, q, n)
		nine := uint32(0x41100000)
		if got[0] != 5 || got[3] != 5 || got[4] != 42 || got[5] != nine || got[n-1] != nine {
			t.Fatalf("round %d: q = %#x %#x %#x %#x .. %#x", round, got[0], got[3], got[4], got[5], got[n-1])
		}
		must(t, dev.Memset(q, 0, 4, n)) // the next launch must do it all again
	}
	must(t, ge.Destroy())
	must(t, ge.Launch(st))
	if err := st.Synchronize(); !errors.Is(err, api.ErrInvalidHandle) {
		t.Fatalf("launch of a destroyed graph: %v, want CUDA_ERROR_INVALID_HANDLE", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCaptureRefusesWhatItCannotRecord(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, _ := attach(t, s, 1)
	p, _ := dev.Alloc(64)
	st, _ := dev.NewStream(0, 0)
	if err := dev.DefaultStream().BeginCapture(); !errors.Is(err, api.ErrStreamCaptureUnsupp) {
		t.Fatalf("capture of the default stream: %v", err)
	}
	must(t, st.BeginCapture())
	if err := st.CopyHtoDAsync(p, make([]byte, 64)); !errors.Is(err, api.ErrStreamCaptureUnsupp) {
		t.Fatalf("a host copy in capture: %v", err)
	}
	if _, err := st.EndCapture(); !errors.Is(err, api.ErrStreamCaptureInvalidated) {
		t.Fatalf("end of an invalidated capture: %v", err)
	}
	// The stream works as before.
	must(t, st.MemsetAsync(p, 3, 4, 16))
	must(t, st.Synchronize())
	if v := u32s(t, dev, p, 16)[15]; v != 3 {
		t.Fatalf("p[15] = %d after the capture, want 3", v)
	}
}

func TestHostFuncHoldsItsStream(t *testing.T) { overTransports(t, 1, 64<<20, testHostFuncHolds) }

func testHostFuncHolds(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	fill := function(t, mod, "fill_u32")
	p, _ := dev.Alloc(4 * 256)
	flag, _ := dev.Alloc(8)
	st, _ := dev.NewStream(0, 0)
	started, release := make(chan []uint32, 1), make(chan struct{})
	must(t, fill.Launch(st, interpose.D1(1), interpose.D1(256), 0, p, uint32(7), uint64(256)))
	must(t, st.LaunchHostFunc(func(err error) {
		if err != nil {
			t.Errorf("host function: %v", err)
		}
		started <- nil
		<-release
	}))
	must(t, st.WriteValue(flag, 1, 4))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the host function never ran")
	}
	// The kernel before the host function has run; the write after it
	// waits for it to return.
	if v := u32s(t, dev, p, 256)[255]; v != 7 {
		t.Fatalf("p[255] = %d while the host function runs, want 7", v)
	}
	if v := u32s(t, dev, flag, 1)[0]; v != 0 {
		t.Fatalf("the write after the host function ran before it returned: flag = %d", v)
	}
	close(release)
	must(t, st.Synchronize())
	if v := u32s(t, dev, flag, 1)[0]; v != 1 {
		t.Fatalf("flag = %d after the host function returned, want 1", v)
	}
}

// A host function on a stream that is gone runs with the failure, which
// the next synchronisation reports once; nothing else is disturbed.
func TestHostFuncOnADestroyedStream(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	s := f.dial(t)
	dev, _ := attach(t, s, 0.5)
	st, _ := dev.NewStream(0, 0)
	must(t, st.Destroy())
	got := make(chan error, 1)
	must(t, st.LaunchHostFunc(func(err error) { got <- err }))
	select {
	case err := <-got:
		if !errors.Is(err, api.ErrInvalidHandle) {
			t.Fatalf("host function got %v, want CUDA_ERROR_INVALID_HANDLE", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host function never ran")
	}
	if err := dev.Synchronize(); !errors.Is(err, api.ErrInvalidHandle) {
		t.Fatalf("synchronize: %v", err)
	}
	must(t, dev.Synchronize())
	by.check(6)
}

func TestStreamWaitValue(t *testing.T) { overTransports(t, 1, 64<<20, testStreamWaitValue) }

func testStreamWaitValue(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, _ := attach(t, s, 1)
	flag, _ := dev.Alloc(8)
	x, _ := dev.Alloc(64)
	a, _ := dev.NewStream(0, 0)
	b, _ := dev.NewStream(0, 0)
	must(t, a.WaitValue(flag, 5, 4, api.WaitGEQ))
	must(t, a.MemsetAsync(x, 7, 4, 16))
	if done, err := a.Query(); done || err != nil {
		t.Fatalf("a stream waiting on a word nobody wrote says done=%v, %v", done, err)
	}
	must(t, b.WriteValue(flag, 4, 4)) // not yet: 4 < 5
	must(t, b.Synchronize())
	if done, err := a.Query(); done || err != nil {
		t.Fatalf("a stream waiting for >= 5 on 4 says done=%v, %v", done, err)
	}
	must(t, b.WriteValue(flag, 6, 4))
	must(t, a.Synchronize())
	if v := u32s(t, dev, x, 16)[15]; v != 7 {
		t.Fatalf("x[15] = %d, want 7", v)
	}
	// 64-bit words and the other comparisons.
	must(t, b.WriteValue(flag, 1<<40|3, 8))
	for _, c := range []struct {
		v     uint64
		flags uint32
	}{{1<<40 | 3, api.WaitEQ}, {1 << 40, api.WaitAND}, {0, api.WaitNOR}} {
		must(t, a.WaitValue(flag, c.v, 8, c.flags))
	}
	must(t, a.Synchronize())
}

func TestExecBadInput(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	s := f.dial(t)
	dev, mod := attach(t, s, 0.5)
	fill := function(t, mod, "fill_u32")
	p, _ := dev.Alloc(4096)
	st, _ := dev.NewStream(0, 0)
	// A graph whose second node writes outside the session's memory: at
	// launch nothing of it runs, and the launch's failure is reported.
	must(t, st.BeginCapture())
	must(t, fill.Launch(st, interpose.D1(4), interpose.D1(256), 0, p, uint32(9), uint64(1024)))
	must(t, st.MemsetAsync(by.x, 0xbad, 4, 1024)) // the bystander's memory
	g, err := st.EndCapture()
	must(t, err)
	ge, err := g.Instantiate()
	must(t, err)
	must(t, ge.Launch(st))
	if err := st.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a graph naming another session's memory: %v", err)
	}
	if v := u32s(t, dev, p, 1)[0]; v != 0 {
		t.Fatalf("a refused graph ran its first node: p[0] = %d", v)
	}
	by.check(3)
	// Values: unaligned, of odd sizes, of another session's memory.
	must(t, st.WaitValue(by.x, 1, 4, api.WaitEQ))
	if err := st.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a wait on another session's memory: %v", err)
	}
	must(t, st.WriteValue(p+2, 1, 4))
	if err := st.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("an unaligned write: %v", err)
	}
	if err := st.WaitValue(p, 1, 2, 0); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a 2-byte wait: %v", err)
	}
	// The host backend's kernels have no registers to report.
	if _, err := fill.Attributes(); !errors.Is(err, api.ErrNotSupported) {
		t.Fatalf("function attributes on the host backend: %v", err)
	}

	// Raw calls: handles that are not the session's.
	r := f.raw(t)
	must(t, r.call(&api.Attach{Device: 0, ShareMillionths: 100_000}, &api.AttachReply{}))
	for _, c := range []struct {
		m    api.Message
		want api.Result
	}{
		{&api.GraphCreate{Graph: 1, Nodes: []api.GraphNode{{Kind: api.NodeLaunch, Function: 77, Grid: [3]uint32{1, 1, 1}, Block: [3]uint32{1, 1, 1}}}}, api.ErrInvalidHandle},
		{&api.GraphCreate{Graph: 2, Ordinal: 5}, api.ErrInvalidDevice},
		{&api.GraphCreate{Graph: api.DefaultStreamBase}, api.ErrInvalidHandle},
		{&api.GraphCreate{Graph: 3, Nodes: []api.GraphNode{{Kind: api.NodeMemset, ElemSize: 3}}}, api.ErrInvalidValue},
		{&api.GraphLaunch{Graph: 99, Stream: api.DefaultStream(0)}, api.ErrInvalidHandle},
		{&api.GraphDestroy{Graph: 99}, api.ErrInvalidHandle},
		{&api.HostFunc{Stream: 1234, Marker: 1}, api.ErrInvalidHandle},
		{&api.HostFuncDone{Marker: 1}, api.Success}, // it was not queued: nothing to release
		{&api.HostFuncDone{Marker: 2}, api.ErrInvalidValue},
		{&api.StreamWaitValue{Stream: api.DefaultStream(0), Ptr: uint64(by.x), Value: 1, Size: 4}, api.ErrInvalidValue},
		{&api.Link{Inputs: []api.LinkInput{{Type: api.LinkPTX, Size: 100}}}, api.ErrInvalidValue}, // no payload
		{&api.Link{Ordinal: 3}, api.ErrInvalidDevice},
		{&api.FuncAttributes{Function: 77}, api.ErrInvalidHandle},
	} {
		if err := r.call(c.m, nil); api.ResultOf(err) != c.want {
			t.Errorf("%v: %v, want %v", c.m.Op(), err, c.want)
		}
	}
	by.check(4)
}

// A session that ends while a stream of it is held, at a host function or
// at a value nobody will write, is released all the same.
func TestSessionEndReleasesHeldStreams(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	s := f.dial(t)
	dev, _ := attach(t, s, 0.75)
	flag, _ := dev.Alloc(8)
	a, _ := dev.NewStream(0, 0)
	b, _ := dev.NewStream(0, 0)
	must(t, a.WaitValue(flag, 1, 4, api.WaitEQ))
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	must(t, b.LaunchHostFunc(func(error) { close(started); <-release }))
	<-started
	must(t, s.Close())
	// The share is back: another session gets it.
	s2 := f.dial(t)
	if _, err := s2.Attach(0, interpose.Share{Fraction: 0.75}); err != nil {
		t.Fatalf("the ended session's share is still held: %v", err)
	}
	by.check(5)
}

func TestLinkLoadsAndRuns(t *testing.T) { overTransports(t, 1, 64<<20, testLink) }

func testLink(t *testing.T, f *fixture) {
	s := f.dial(t)
	dev, err := s.Attach(0, interpose.Share{Fraction: 0.5})
	must(t, err)
	src := string(examples.KernelsPTX)
	head := src[:strings.Index(src, ".visible .entry")]
	entry := func(name string) []byte {
		i := strings.Index(src, ".visible .entry "+name+"(")
		j := strings.Index(src[i:], "\n}\n")
		return []byte(head + src[i:i+j+3])
	}
	image, err := dev.Link([]interpose.LinkInput{
		{Type: api.LinkPTX, Name: "fill.ptx", Data: entry("fill_u32")},
		{Type: api.LinkPTX, Name: "scale.ptx", Data: entry("scale_f32")},
	})
	must(t, err)
	mod, err := dev.LoadModule(image)
	must(t, err)
	fill, scale := function(t, mod, "fill_u32"), function(t, mod, "scale_f32")
	p, _ := dev.Alloc(4 * 256)
	st := dev.DefaultStream()
	must(t, fill.Launch(st, interpose.D1(1), interpose.D1(256), 0, p, uint32(0x40000000), uint64(256))) // 2.0f
	must(t, scale.Launch(st, interpose.D1(1), interpose.D1(256), 0, p, float32(4), uint64(256)))
	if v := u32s(t, dev, p, 256)[255]; v != 0x41000000 { // 8.0f
		t.Fatalf("p[255] = %#x, want 8.0f", v)
	}
	// A bad input fails the link, and the session goes on.
	if _, err := dev.Link([]interpose.LinkInput{{Type: api.LinkPTX, Name: "bad", Data: []byte("not ptx")}}); !errors.Is(err, api.ErrInvalidImage) {
		t.Fatalf("a link of a bad input: %v", err)
	}
	if _, err := dev.Link([]interpose.LinkInput{{Type: api.LinkCubin, Name: "c", Data: []byte("\x7fELF")}}); !errors.Is(err, api.ErrNotSupported) {
		t.Fatalf("a link of a cubin on the host backend: %v", err)
	}
	must(t, dev.Synchronize())
}

// A graph is one device's: a function or stream of another device is
// refused, at instantiation and at launch.
func TestGraphOfTwoDevices(t *testing.T) {
	f := newFixture(t, 2, 64<<20)
	s := f.dial(t)
	d0, mod0 := attach(t, s, 0.5)
	d1, err := s.Attach(interpose.AnyDevice, interpose.Share{Fraction: 0.5})
	must(t, err)
	if d0.ServerIndex() == d1.ServerIndex() {
		t.Fatal("both attaches took one device")
	}
	fill := function(t, mod0, "fill_u32")
	p0, _ := d0.Alloc(1024)
	st1, _ := d1.NewStream(0, 0)
	must(t, st1.BeginCapture())
	must(t, fill.Launch(st1, interpose.D1(1), interpose.D1(256), 0, p0, uint32(1), uint64(256)))
	g, err := st1.EndCapture()
	must(t, err)
	if _, err := g.Instantiate(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a graph on device 1 of a function of device 0: %v", err)
	}
	// A graph of device 0, launched on a stream of device 1.
	st0, _ := d0.NewStream(0, 0)
	must(t, st0.BeginCapture())
	must(t, fill.Launch(st0, interpose.D1(1), interpose.D1(256), 0, p0, uint32(1), uint64(256)))
	g, err = st0.EndCapture()
	must(t, err)
	ge, err := g.Instantiate()
	must(t, err)
	must(t, ge.Launch(st1))
	if err := st1.Synchronize(); !errors.Is(err, api.ErrInvalidValue) {
		t.Fatalf("a graph of device 0 launched on device 1: %v", err)
	}
	must(t, ge.Launch(st0))
	must(t, st0.Synchronize())
	if v := u32s(t, d0, p0, 256)[255]; v != 1 {
		t.Fatalf("p0[255] = %d, want 1", v)
	}
}

// The graphs a session holds are bounded in the server's memory they take:
// past the bound an instantiation fails with CUDA_ERROR_OUT_OF_MEMORY, and
// a destroyed graph gives its bytes back.
func TestGraphMemoryIsBounded(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	by := newBystander(t, f)
	r := f.raw(t)
	must(t, r.call(&api.Attach{Device: 0, ShareMillionths: 100_000}, &api.AttachReply{}))
	// Graphs of memsets with long nodes: about 900 KiB each, as the server
	// keeps them.
	nodes := make([]api.GraphNode, 7000)
	for i := range nodes {
		nodes[i] = api.GraphNode{Kind: api.NodeMemset, ElemSize: 4, Count: 1}
	}
	var made int
	var err error
	for h := api.Handle(1); h < 200; h++ {
		if err = r.call(&api.GraphCreate{Graph: h, Nodes: nodes}, nil); err != nil {
			break
		}
		made++
	}
	if !errors.Is(err, api.ErrOutOfMemory) || made < 10 {
		t.Fatalf("after %d graphs: %v, want CUDA_ERROR_OUT_OF_MEMORY", made, err)
	}
	must(t, r.call(&api.GraphDestroy{Graph: 1}, nil))
	must(t, r.call(&api.GraphCreate{Graph: 1000, Nodes: nodes}, nil))
	by.check(8)
}

// A capture spans the streams its events fork it to, as the driver's
// does: the graph holds the work of every one, in an order that keeps the
// dependencies the events express.
func TestCaptureAcrossStreams(t *testing.T) {
	f := newFixture(t, 1, 64<<20)
	s := f.dial(t)
	dev, mod := attach(t, s, 1)
	fill, scale := function(t, mod, "fill_u32"), function(t, mod, "scale_f32")
	const n = 256
	p, _ := dev.Alloc(4 * n)
	q, _ := dev.Alloc(4 * n)
	a, _ := dev.NewStream(0, 0)
	b, _ := dev.NewStream(0, 0)
	fork, _ := dev.NewEvent(0)
	join, _ := dev.NewEvent(0)
	must(t, a.BeginCapture())
	must(t, fill.Launch(a, interpose.D1(1), interpose.D1(n), 0, p, uint32(0x3f800000), uint64(n))) // p = 1.0
	must(t, fork.Record(a))
	must(t, b.WaitEvent(fork)) // b joins the capture
	if id, active, _ := b.Capturing(); !active {
		t.Fatal("a stream that waited for an event of the capture is not capturing")
	} else if aid, _, _ := a.Capturing(); aid != id {
		t.Fatalf("b captures into %d, a into %d", id, aid)
	}
	must(t, scale.Launch(b, interpose.D1(1), interpose.D1(n), 0, p, float32(5), uint64(n))) // p = 5.0
	must(t, b.CopyDtoDAsync(q, p, 4*n))
	must(t, join.Record(b))
	must(t, a.WaitEvent(join))
	must(t, scale.Launch(a, interpose.D1(1), interpose.D1(n), 0, p, float32(2), uint64(n))) // p = 10.0
	if _, err := b.EndCapture(); !errors.Is(err, api.ErrStreamCaptureUnmatched) {
		t.Fatalf("the capture ended on a joined stream: %v", err)
	}
	g, err := a.EndCapture()
	must(t, err)
	if _, active, _ := b.Capturing(); active {
		t.Fatal("the joined stream still captures after the end")
	}
	if g.Nodes() != 4 {
		t.Fatalf("the graph holds %d nodes, want 4", g.Nodes())
	}
	ge, err := g.Instantiate()
	must(t, err)
	must(t, ge.Launch(a))
	must(t, a.Synchronize())
	if got := u32s(t, dev, p, n)[n-1]; got != 0x41200000 { // 10.0f
		t.Fatalf("p = %#x, want 10.0f", got)
	}
	if got := u32s(t, dev, q, n)[n-1]; got != 0x40a00000 { // 5.0f
		t.Fatalf("q = %#x, want 5.0f", got)
	}
	// A forked stream's work that the origin does not wait for: the end
	// is refused.
	must(t, a.BeginCapture())
	must(t, fork.Record(a))
	must(t, b.WaitEvent(fork))
	must(t, scale.Launch(b, interpose.D1(1), interpose.D1(n), 0, p, float32(5), uint64(n)))
	if _, err := a.EndCapture(); !errors.Is(err, api.ErrStreamCaptureUnjoined) {
		t.Fatalf("the end of a capture with a stream not joined back: %v", err)
	}
	if _, active, _ := b.Capturing(); active {
		t.Fatal("an unjoined stream still captures after the end")
	}

	// A capturing stream may not wait for work outside its capture.
	outside, _ := dev.NewEvent(0)
	must(t, outside.Record(b))
	must(t, a.BeginCapture())
	if err := a.WaitEvent(outside); !errors.Is(err, api.ErrStreamCaptureIsolation) {
		t.Fatalf("a wait outside the capture: %v", err)
	}
	if _, err := a.EndCapture(); !errors.Is(err, api.ErrStreamCaptureInvalidated) {
		t.Fatalf("the end of a capture that waited outside: %v", err)
	}
	must(t, a.Synchronize())
}
