package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/interpose"
	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// Floor names, as Latency.FloorName and CopyFloor.Description give them.
const (
	TCPPingPongFloor = "raw TCP ping-pong, 64-byte messages, loopback"
	ShmPingPongFloor = "raw shared-memory ping-pong, two goroutines spinning on atomic words in a memfd mapping"
	// ShmProcessesFloor is the shared-memory floor between two processes,
	// as a client and a server on one host are; ShmPingPongFloor stands in
	// where a second process cannot be started.
	ShmProcessesFloor = "raw shared-memory ping-pong between two processes spinning on atomic words in a memfd mapping"
	TCPTransferFloor  = "raw TCP over loopback: the size one way into a buffer of that size, then a 1-byte reply"
	MemcpyFloor       = "one copy() of the same size in this process"
)

// TenantOp is what one operation of the many-tenant scenario does.
const TenantOp = "4 KiB HtoD + spin(0) launch + 4 KiB DtoH on the client's own stream, then its Synchronize"

// pingFloors measures the round-trip floor of each transport measured.
func (r *runner) pingFloors() error {
	r.pingFloor, r.pingFloorName = map[string]Dist{}, map[string]string{}
	b := Budget{Time: r.cfg.Step / time.Duration(len(r.order)), Done: r.ctx.Done()}
	var errs []error
	for _, tr := range r.order {
		var samples []time.Duration
		var err error
		name := TCPPingPongFloor
		switch tr {
		case tcp.Name, TLS:
			samples, err = TCPPingPong(64, b)
		case shm.Name:
			name = ShmProcessesFloor
			if samples, err = ShmPingPongProcesses(b); err != nil {
				name = ShmPingPongFloor
				samples, err = ShmPingPong(b)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.pingFloor[tr], r.pingFloorName[tr] = Summarize(samples), name
	}
	return errors.Join(errs...)
}

// latency measures synchronous null calls for one step.
func (r *runner) latency(tr string) error {
	s := r.clients[tr].s
	for range 64 { // warm up
		if err := s.Ping(); err != nil {
			return err
		}
	}
	before, _ := s.Status()
	start := time.Now()
	samples, err := timeRounds(Budget{Time: r.cfg.Step, Done: r.ctx.Done()}.start(), s.Ping)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	l := Latency{Transport: tr, Call: Summarize(samples), CallsPerSecond: float64(len(samples)) / elapsed.Seconds()}
	if after, err := s.Status(); err == nil && before != nil {
		l.Breakdown = breakdown(*before, *after, s.ID(), l.Call.Mean)
	}
	l.FloorName = r.pingFloorName[tr]
	if f, ok := r.pingFloor[tr]; ok {
		l.Floor = f
		l.XFloor = ratio(l.Call.P50, f.P50)
	}
	r.res.Latency = append(r.res.Latency, l)
	return nil
}

// launch measures asynchronous launches of spin(0) for one step, ended by
// a Synchronize.
func (r *runner) launch(tr string) error {
	n, rate, err := r.clients[tr].launchRate(r.ctx, r.cfg.Step)
	if err != nil {
		return err
	}
	l := Launch{Transport: tr, Launches: n, LaunchesPerSecond: rate}
	for _, lat := range r.res.Latency {
		if lat.Transport == tr {
			l.SyncCallsPerSecond = lat.CallsPerSecond
			l.XSync = ratio(l.LaunchesPerSecond, lat.CallsPerSecond)
		}
	}
	r.res.Launch = append(r.res.Launch, l)
	return nil
}

// launchRate launches spin(0) asynchronously on the default stream for
// about d, then synchronizes: the launches, and their rate from the first
// to the end of the Synchronize.
func (c *client) launchRate(ctx context.Context, d time.Duration) (int, float64, error) {
	st := c.dev.DefaultStream()
	one := interpose.D1(1)
	for range 64 { // warm up
		if err := c.spin.Launch(st, one, one, 0, uint64(0)); err != nil {
			return 0, 0, err
		}
	}
	if err := st.Synchronize(); err != nil {
		return 0, 0, err
	}
	n := 0
	start := time.Now()
	end := start.Add(d)
	for {
		for range 64 {
			if err := c.spin.Launch(st, one, one, 0, uint64(0)); err != nil {
				return 0, 0, err
			}
		}
		n += 64
		if !time.Now().Before(end) || ctx.Err() != nil {
			break
		}
	}
	if err := st.Synchronize(); err != nil {
		return 0, 0, err
	}
	return n, float64(n) / time.Since(start).Seconds(), nil
}

// copyFloors measures the floors of the copy sweep at each size: a TCP
// transfer where TCP is measured, and memcpy always (shared memory and DtoD
// are set beside it).
func (r *runner) copyFloors() error {
	floors := []string{"memcpy"}
	if _, ok := r.clients[tcp.Name]; ok || r.clients[TLS] != nil {
		floors = append([]string{"tcp"}, floors...)
	}
	b := Budget{Time: r.cfg.Step / time.Duration(len(floors)*len(r.sizes)), Done: r.ctx.Done()}
	var errs []error
	for _, name := range floors {
		f := CopyFloor{Name: name}
		var dst, src []byte
		switch name {
		case "tcp":
			f.Description = TCPTransferFloor
		case "memcpy":
			f.Description = MemcpyFloor
			dst, src = r.buffers()
		}
		for _, size := range r.sizes {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			var bw float64
			var err error
			if name == "tcp" {
				bw, err = TCPTransfer(size, b)
			} else {
				bw = memcpyRate(dst[:size], src[:size], b)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s floor at %d bytes: %w", name, size, err))
				continue
			}
			f.Points = append(f.Points, FloorPoint{Bytes: int64(size), BytesPerSecond: bw})
		}
		r.res.CopyFloors = append(r.res.CopyFloors, f)
	}
	return errors.Join(errs...)
}

// copies sweeps the sizes in each direction, the step's time shared
// evenly among the points, each point at least one copy.
func (r *runner) copies(tr string) error {
	dev := r.clients[tr].dev
	max := r.sizes[len(r.sizes)-1]
	a, err := dev.Alloc(uint64(max))
	if err != nil {
		return err
	}
	defer dev.Free(a)
	b, err := dev.Alloc(uint64(max))
	if err != nil {
		return err
	}
	defer dev.Free(b)
	// Fault the pages in on both sides first, so that no point pays for
	// the first touch of its memory.
	if err := dev.Memset(a, 1, 1, uint64(max)); err != nil {
		return err
	}
	if err := dev.Memset(b, 2, 1, uint64(max)); err != nil {
		return err
	}
	host, _ := r.buffers()
	dirs := []struct {
		name string
		do   func(n int) error
	}{
		{"HtoD", func(n int) error { return dev.CopyHtoD(a, host[:n]) }},
		{"DtoH", func(n int) error { return dev.CopyDtoH(host[:n], a) }},
		{"DtoD", func(n int) error { return dev.CopyDtoD(b, a, uint64(n)) }},
	}
	// Pinned host memory, where the session shares it with the server
	// (shared memory): the copies name a range of it and the server copies
	// once. Elsewhere it is ordinary memory, measured above already.
	if h, err := r.clients[tr].s.AllocHost(max); err == nil {
		defer h.Free()
		if h.Shared() {
			pinned := h.Bytes()
			copy(pinned, host)
			dirs = append(dirs,
				struct {
					name string
					do   func(n int) error
				}{"HtoD pinned", func(n int) error { return dev.CopyHtoD(a, pinned[:n]) }},
				struct {
					name string
					do   func(n int) error
				}{"DtoH pinned", func(n int) error { return dev.CopyDtoH(pinned[:n], a) }})
		}
	}
	slot := r.cfg.Step / time.Duration(len(dirs)*len(r.sizes))
	for _, d := range dirs {
		cp := Copy{Transport: tr, Direction: d.name, Floor: "memcpy"}
		if (tr == tcp.Name || tr == TLS) && d.name != "DtoD" {
			cp.Floor = "tcp"
		}
		for _, size := range r.sizes {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			if size <= 16<<20 {
				if err := d.do(size); err != nil { // warm up
					return fmt.Errorf("%s %d bytes: %w", d.name, size, err)
				}
			}
			n := 0
			start := time.Now()
			for end := start.Add(slot); n == 0 || time.Now().Before(end); n++ {
				if err := d.do(size); err != nil {
					return fmt.Errorf("%s %d bytes: %w", d.name, size, err)
				}
			}
			p := CopyPoint{Bytes: int64(size), Copies: n, BytesPerSecond: float64(n) * float64(size) / time.Since(start).Seconds()}
			if f := r.copyFloor(cp.Floor, size); f > 0 {
				p.FloorBytesPerSecond, p.XFloor = f, ratio(p.BytesPerSecond, f)
			}
			cp.Points = append(cp.Points, p)
		}
		r.res.Copy = append(r.res.Copy, cp)
	}
	return nil
}

// buffers are two host buffers of the largest copy size, filled and so
// faulted in, shared by the memcpy floor and every copy sweep: the run's
// memory stays what one sweep needs.
func (r *runner) buffers() (a, b []byte) {
	if r.bufs[0] == nil {
		max := r.sizes[len(r.sizes)-1]
		for i := range r.bufs {
			r.bufs[i] = make([]byte, max)
			for j := range r.bufs[i] {
				r.bufs[i][j] = byte(j + i)
			}
		}
	}
	return r.bufs[0], r.bufs[1]
}

func (r *runner) copyFloor(name string, size int) float64 {
	for _, f := range r.res.CopyFloors {
		if f.Name != name {
			continue
		}
		for _, p := range f.Points {
			if p.Bytes == int64(size) {
				return p.BytesPerSecond
			}
		}
	}
	return 0
}

// tenants runs n clients at once over tr, each holding 1/n of the device
// and running TenantOp back to back for one step.
func (r *runner) tenants(tr string, n int) error {
	ts := TenantStep{Clients: n, Share: 1 / float64(n)}
	err := r.runTenants(tr, n, &ts)
	if err != nil {
		ts.Error = err.Error()
	}
	r.res.Tenants.Steps = append(r.res.Tenants.Steps, ts)
	return err
}

func (r *runner) runTenants(tr string, n int, ts *TenantStep) error {
	// Set up all the clients first, in parallel, so that they start
	// together.
	clients := make([]*client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := r.connect(tr)
			if err != nil {
				errs[i] = err
				return
			}
			clients[i] = &client{tr: tr, s: s}
			errs[i] = clients[i].attach(r.ctx, r.device, interpose.Share{Fraction: ts.Share})
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	type outcome struct {
		ops     int
		elapsed time.Duration
		samples []time.Duration
		err     error
	}
	outcomes := make([]outcome, n)
	start := make(chan struct{})
	var began time.Time
	for i, c := range clients {
		wg.Go(func() {
			o := &outcomes[i]
			st, err := c.dev.NewStream(0, 0)
			if err != nil {
				o.err = err
				return
			}
			ptr, err := c.dev.Alloc(4 << 10)
			if err != nil {
				o.err = err
				return
			}
			in, out := make([]byte, 4<<10), make([]byte, 4<<10)
			one := interpose.D1(1)
			op := func() error {
				if err := st.CopyHtoDAsync(ptr, in); err != nil {
					return err
				}
				if err := c.spin.Launch(st, one, one, 0, uint64(0)); err != nil {
					return err
				}
				if err := st.CopyDtoHAsync(out, ptr); err != nil {
					return err
				}
				return st.Synchronize()
			}
			if o.err = op(); o.err != nil { // warm up, and a failure found before the start
				return
			}
			<-start
			// One deadline for all: each client's window is the same.
			clk := clock{rounds: MaxSamples / n, end: began.Add(r.cfg.Step), cut: r.ctx.Done()}
			if o.samples, o.err = timeRounds(clk, op); o.err != nil {
				return
			}
			o.ops = len(o.samples)
			o.elapsed = time.Since(began)
		})
	}
	began = time.Now()
	close(start)
	wg.Wait()

	var all []time.Duration
	for i, o := range outcomes {
		if o.err != nil {
			errs[i] = fmt.Errorf("client %d: %w", i, o.err)
			continue
		}
		rate := float64(o.ops) / o.elapsed.Seconds()
		ts.PerClient = append(ts.PerClient, rate)
		ts.OpsPerSecond += rate
		all = append(all, o.samples...)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ts.MeanClient = ts.OpsPerSecond / float64(n)
	ts.MinClient, ts.MaxClient = ts.PerClient[0], ts.PerClient[0]
	for _, x := range ts.PerClient {
		ts.MinClient, ts.MaxClient = min(ts.MinClient, x), max(ts.MaxClient, x)
	}
	ts.FairnessMaxOverMin, ts.JainIndex = Fairness(ts.PerClient)
	ts.OpLatency = Summarize(all)
	ts.OpLatency.CDF = nil
	return nil
}

// ratio is a/b, or 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
