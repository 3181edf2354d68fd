package engine

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/probe"
)

// shard owns one device: one goroutine runs every call into the device, so
// sessions' tasks run in order; for a backend that binds a context to a
// thread (CUDA) that goroutine is locked to its own OS thread, pinned near
// the device.
type shard struct {
	index int
	dev   backend.Device
	info  backend.Info

	queue *fairQueue
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	// pin, when set, runs first on the shard's thread: NUMA placement.
	pin func() error
	// node is the device's NUMA node, negative when unknown.
	node int
	log  *slog.Logger
	// locked: the shard's goroutine keeps its own OS thread, for a backend
	// that binds a context to a thread; the probes then know it by it.
	locked bool
	probes *probe.Probes

	ledger ledger
}

// ledger is the memory reserved on a device by sessions' shares.
type ledger struct {
	mu       sync.Mutex
	total    uint64
	reserved uint64
	sessions int
}

func (l *ledger) reserve(n uint64) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n > l.total-l.reserved {
		return l.total - l.reserved, false
	}
	l.reserved += n
	l.sessions++
	return 0, true
}

func (l *ledger) release(n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved -= n
	l.sessions--
}

func (l *ledger) unreserved() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total - l.reserved
}

func newShard(index int, dev backend.Device, pin func() error, log *slog.Logger) *shard {
	info := dev.Info()
	sh := &shard{
		index: index,
		dev:   dev,
		info:  info,
		queue: newFairQueue(),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		pin:   pin,
		node:  -1,
		log:   log,
	}
	sh.ledger.total = info.TotalMem
	return sh
}

// submit queues t to run on the shard's thread in order with the session's
// other tasks.
func (sh *shard) submit(sessionID uint64, quantum int, t task) {
	sh.queue.push(sessionID, quantum, t)
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) run(errs chan<- error) {
	defer close(sh.done)
	if sh.locked {
		// The thread stays locked until the goroutine exits, and then dies
		// with it, which is what a thread holding a device context should do.
		runtime.LockOSThread()
		if sh.pin != nil {
			if err := sh.pin(); err != nil {
				errs <- err
			}
		}
		if tid := gettid(); tid > 0 && sh.probes != nil {
			if err := sh.probes.Track(tid, ShardRole); err != nil {
				sh.log.Warn("the probes do not see this shard's thread", "device", sh.index, "err", err)
			}
		}
	}
	close(errs)
	batch := make([]task, 0, 64)
	for {
		batch = sh.queue.pop(batch[:0], cap(batch))
		if len(batch) == 0 && sh.locked {
			batch = sh.poll(batch)
		}
		if len(batch) == 0 {
			select {
			case <-sh.wake:
				continue
			case <-sh.stop:
				return
			}
		}
		for i, t := range batch {
			sh.runTask(t)
			if t.done != nil {
				t.done.Add(-1)
			}
			batch[i] = task{}
		}
	}
}

// lockedSpin is how long a thread-locked shard polls its queue before it
// sleeps. Waking a goroutine locked to its own thread means handing a P
// between threads; on a 2-vCPU VM that was measured at about 100 µs per
// wake (BenchmarkCopy/*/DtoH/4KiB, locked against unlocked), against a few
// µs for a poll that finds the next call. GPU servers have the cores.
const lockedSpin = 50 * time.Microsecond

// poll looks for tasks for up to lockedSpin. It does not yield: a locked
// goroutine that yields hands its P to another thread and sleeps, which is
// the very wake-up cost the poll is there to avoid.
func (sh *shard) poll(batch []task) []task {
	deadline := time.Now().Add(lockedSpin)
	for time.Now().Before(deadline) {
		if sh.queue.pending() {
			return sh.queue.pop(batch, cap(batch))
		}
	}
	return batch
}

// runTask runs one task. A panic is a bug of ours, but it is one client's
// call that hit it: log it with its stack and keep serving the others.
func (sh *shard) runTask(t task) {
	defer func() {
		if r := recover(); r != nil {
			sh.log.Error("task panicked; the shard goes on", "device", sh.index, "panic", r, "stack", string(debug.Stack()))
			if c, ok := t.work.(call); ok {
				c.abort(api.Errorf(api.ErrUnknown, "internal error: %v", r))
			}
		}
	}()
	t.run()
}

// memInfo is the device's free and total memory as the backend reports it.
func (sh *shard) memInfo() (free, total uint64) {
	free, total, err := sh.dev.MemInfo()
	if err != nil {
		return 0, sh.info.TotalMem
	}
	return free, total
}

func shareBytes(a *api.Attach, total uint64, minShare float64) (uint64, uint32, error) {
	switch {
	case a.ShareBytes > 0 && a.ShareMillionths > 0:
		return 0, 0, api.Errorf(api.ErrInvalidValue, "a share is a fraction or a size, not both")
	case a.ShareBytes > 0:
		if a.ShareBytes > total {
			return 0, 0, api.Errorf(api.ErrOutOfMemory, "share of %d bytes exceeds the device's %d", a.ShareBytes, total)
		}
		if a.ShareBytes < 1<<20 {
			return 0, 0, api.Errorf(api.ErrInvalidValue, "share of %d bytes is below 1 MiB", a.ShareBytes)
		}
		// In float64: bytes times a million overflows 64 bits past 18 TB.
		fraction := float64(a.ShareBytes) / float64(total)
		if fraction < minShare-1e-9 {
			return 0, 0, api.Errorf(api.ErrInvalidValue, "share of %d bytes is %g of the device, below the smallest share, %g", a.ShareBytes, fraction, minShare)
		}
		return a.ShareBytes, uint32(fraction * 1_000_000), nil
	case a.ShareMillionths == 0 || a.ShareMillionths > 1_000_000:
		return 0, 0, api.Errorf(api.ErrInvalidValue, "share fraction %g is outside (0, 1]", float64(a.ShareMillionths)/1e6)
	case float64(a.ShareMillionths)/1e6 < minShare-1e-9:
		return 0, 0, api.Errorf(api.ErrInvalidValue, "share fraction %g is below the smallest share, %g", float64(a.ShareMillionths)/1e6, minShare)
	}
	// Exact for devices below 18 TB, which is all of them.
	return total * uint64(a.ShareMillionths) / 1_000_000, a.ShareMillionths, nil
}
