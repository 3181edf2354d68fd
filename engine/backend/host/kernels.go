package host

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

// kernel is a built-in: the host's implementation of one PTX entry of
// examples/kernels.ptx. prepare checks the launch (arguments, the memory it
// will touch) when it is queued and returns the work to run in order.
type kernel struct {
	name    string
	sig     []uint32 // parameter sizes, in order
	prepare func(d *Device, g grid, a args, mem backend.Memory) (runFunc, error)
}

// runFunc runs a prepared launch. It polls stop between chunks of whole
// blocks and, once the stream is cancelled, returns errCancelled without
// finishing: a GPU cannot stop a block halfway either, and a chunk is
// small enough (chunkThreads) that a cancelled kernel frees its cores
// within about a millisecond.
type runFunc func(stop *stopper) error

// builtins are the kernels the host backend runs, by entry name.
var builtins = map[string]*kernel{}

func init() {
	for _, k := range []*kernel{
		{"vector_add", []uint32{8, 8, 8, 4}, prepareVectorAdd},
		{"saxpy", []uint32{4, 4, 8, 8}, prepareSaxpy},
		{"fill_u32", []uint32{8, 4, 8}, prepareFill},
		{"scale_f32", []uint32{8, 4, 8}, prepareScale},
		{"reduce_sum_f32", []uint32{8, 8, 4}, prepareReduce},
		{"spin", []uint32{8}, prepareSpin},
	} {
		builtins[k.name] = k
	}
}

// grid is a launch seen as CUDA's 1-D kernels see it: thread i =
// blockIdx.x*blockDim.x + threadIdx.x runs for i < xThreads, and every
// (y, z) coordinate repeats the x threads, replicas times.
type grid struct {
	xThreads uint64
	replicas uint64
	blockX   uint64 // threads per block along x, for chunking on block boundaries
}

func gridOf(cfg backend.LaunchConfig) grid {
	return grid{
		xThreads: uint64(cfg.Grid[0]) * uint64(cfg.Block[0]),
		replicas: uint64(cfg.Grid[1]) * uint64(cfg.Grid[2]) * uint64(cfg.Block[1]) * uint64(cfg.Block[2]),
		blockX:   uint64(cfg.Block[0]),
	}
}

// chunkThreads is about how many threads run between two polls of a
// stream's stop flag: enough that the poll (one atomic load) is lost in
// the work, few enough that a cancelled kernel ends within a millisecond.
const chunkThreads = 1 << 16

// chunk is the poll interval in threads: whole blocks, about chunkThreads.
func (g grid) chunk() uint64 {
	b := max(g.blockX, 1)
	return max(chunkThreads/b, 1) * b
}

// active is how many elements a kernel bounded by n touches.
func (g grid) active(n int64) uint64 {
	if n <= 0 {
		return 0
	}
	return min(uint64(n), g.xThreads)
}

// args reads a packed parameter buffer by the entry's layout.
type args struct {
	params []api.Param
	buf    []byte
}

func newArgs(f *function, buf []byte) args { return args{params: f.params, buf: buf} }

func (a args) raw(i int) []byte {
	p := a.params[i]
	return a.buf[p.Offset : p.Offset+p.Size]
}

func (a args) u64(i int) uint64  { return binary.LittleEndian.Uint64(a.raw(i)) }
func (a args) u32(i int) uint32  { return binary.LittleEndian.Uint32(a.raw(i)) }
func (a args) i32(i int) int32   { return int32(a.u32(i)) }
func (a args) f32(i int) float32 { return math.Float32frombits(a.u32(i)) }

// span maps the n bytes a kernel argument names, after checking that they
// belong to the launching session and are aligned for their element type.
func span(d *Device, mem backend.Memory, kernel, arg string, ptr, n, align uint64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if ptr%align != 0 {
		return nil, api.Errorf(api.ErrMisalignedAddress, "%s: %s = %#x is not %d-byte aligned", kernel, arg, ptr, align)
	}
	if mem != nil && !mem.Contains(ptr, n) {
		return nil, api.Errorf(api.ErrIllegalAddress, "%s: %s = %#x..+%d is not memory this session allocated", kernel, arg, ptr, n)
	}
	return d.bytes(ptr, n)
}

// parallel runs fn over [0, n) in chunks on all CPUs when n is large enough
// to pay for the goroutines. Each worker calls fn a chunk (g.chunk()
// threads, whole blocks) at a time and polls stop between chunks; parallel
// reports false if it stopped before covering [0, n).
func parallel(stop *stopper, g grid, n uint64, fn func(lo, hi uint64)) bool {
	const minChunk = 1 << 15
	step := g.chunk()
	work := func(lo, hi uint64) bool {
		for c := lo; c < hi; c += step {
			if stop.stopped() {
				return false
			}
			fn(c, min(c+step, hi))
		}
		return true
	}
	workers := uint64(runtime.GOMAXPROCS(0))
	if n < 2*minChunk || workers == 1 {
		return work(0, n)
	}
	workers = min(workers, n/minChunk)
	var wg sync.WaitGroup
	var stopped atomic.Bool
	per := (n + workers - 1) / workers
	for lo := uint64(0); lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !work(lo, hi) {
				stopped.Store(true)
			}
		}()
	}
	wg.Wait()
	return !stopped.Load()
}

// finished is a kernel's result: nil, or errCancelled if it stopped early.
func finished(complete bool) error {
	if !complete {
		return errCancelled()
	}
	return nil
}

// vector_add(const float* a, const float* b, float* c, int n): c[i] = a[i] + b[i]
func prepareVectorAdd(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	n := g.active(int64(a.i32(3)))
	x, err := span(d, mem, "vector_add", "a", a.u64(0), 4*n, 4)
	if err != nil {
		return nil, err
	}
	y, err := span(d, mem, "vector_add", "b", a.u64(1), 4*n, 4)
	if err != nil {
		return nil, err
	}
	z, err := span(d, mem, "vector_add", "c", a.u64(2), 4*n, 4)
	if err != nil {
		return nil, err
	}
	return func(stop *stopper) error {
		av, bv, cv := f32s(x), f32s(y), f32s(z)
		return finished(parallel(stop, g, n, func(lo, hi uint64) {
			for i := lo; i < hi; i++ {
				cv[i] = av[i] + bv[i]
			}
		}))
	}, nil
}

// saxpy(int n, float a, const float* x, float* y): y[i] = a*x[i] + y[i]
func prepareSaxpy(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	n := g.active(int64(a.i32(0)))
	alpha := a.f32(1)
	x, err := span(d, mem, "saxpy", "x", a.u64(2), 4*n, 4)
	if err != nil {
		return nil, err
	}
	y, err := span(d, mem, "saxpy", "y", a.u64(3), 4*n, 4)
	if err != nil {
		return nil, err
	}
	return func(stop *stopper) error {
		xv, yv := f32s(x), f32s(y)
		return finished(parallel(stop, g, n, func(lo, hi uint64) {
			for i := lo; i < hi; i++ {
				yv[i] = alpha*xv[i] + yv[i]
			}
		}))
	}, nil
}

// fill_u32(unsigned int* p, unsigned int v, unsigned long long n): p[i] = v
func prepareFill(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	n := g.active(int64(min(a.u64(2), math.MaxInt64)))
	p, err := span(d, mem, "fill_u32", "p", a.u64(0), 4*n, 4)
	if err != nil {
		return nil, err
	}
	v := a.u32(1)
	return func(stop *stopper) error {
		step := 4 * g.chunk()
		for off := uint64(0); off < uint64(len(p)); off += step {
			if stop.stopped() {
				return errCancelled()
			}
			fill(p[off:min(off+step, uint64(len(p)))], v, 4)
		}
		return nil
	}, nil
}

// scale_f32(float* p, float s, unsigned long long n): p[i] *= s
func prepareScale(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	n := g.active(int64(min(a.u64(2), math.MaxInt64)))
	p, err := span(d, mem, "scale_f32", "p", a.u64(0), 4*n, 4)
	if err != nil {
		return nil, err
	}
	s := a.f32(1)
	reps := g.replicas
	return func(stop *stopper) error {
		pv := f32s(p)
		// Replica after replica over each chunk, polling between them: a
		// launch with a huge y*z and a small n is all replicas, and must
		// stop as promptly as one with a huge n. Each element still sees
		// its multiplications in order, so the result is the same.
		return finished(parallel(stop, g, n, func(lo, hi uint64) {
			for range reps {
				if stop.stopped() {
					return
				}
				for i := lo; i < hi; i++ {
					pv[i] *= s
				}
			}
		}) && !stop.stopped())
	}, nil
}

// reduce_sum_f32(const float* in, float* out, int n): *out += sum of in[i].
// Each (y, z) replica adds its own sum, as atomicAdd on a GPU would.
func prepareReduce(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	n := g.active(int64(a.i32(2)))
	in, err := span(d, mem, "reduce_sum_f32", "in", a.u64(0), 4*n, 4)
	if err != nil {
		return nil, err
	}
	out, err := span(d, mem, "reduce_sum_f32", "out", a.u64(1), 4, 4)
	if err != nil {
		return nil, err
	}
	reps := g.replicas
	return func(stop *stopper) error {
		iv := f32s(in)
		var mu sync.Mutex
		var sum float64
		if !parallel(stop, g, n, func(lo, hi uint64) {
			var s float64
			for i := lo; i < hi; i++ {
				s += float64(iv[i])
			}
			mu.Lock()
			sum += s
			mu.Unlock()
		}) {
			return errCancelled()
		}
		f32s(out)[0] += float32(sum * float64(reps))
		return nil
	}, nil
}

// spin(unsigned long long ns): the stream is busy for ns nanoseconds. Short
// spins busy-wait, as a GPU thread would; long ones sleep, so an emulated
// device does not steal a CPU from the rest of the host, and wake early if
// the stream is cancelled.
func prepareSpin(d *Device, g grid, a args, mem backend.Memory) (runFunc, error) {
	ns := time.Duration(min(a.u64(0), math.MaxInt64))
	if ns == 0 {
		return func(*stopper) error { return nil }, nil
	}
	return func(stop *stopper) error {
		deadline := time.Now().Add(ns)
		if ns > 50*time.Microsecond {
			t := time.NewTimer(ns - 20*time.Microsecond)
			select {
			case <-t.C:
			case <-stop.done:
				t.Stop()
				return errCancelled()
			}
		}
		for time.Now().Before(deadline) {
			if stop.stopped() {
				return errCancelled()
			}
		}
		return nil
	}, nil
}
