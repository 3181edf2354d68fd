//go:build linux

package bench

// This file holds the package's unsafe code and system calls: the shared
// mapping of the spinning ping-pong floor.
//
// Why it is safe: the mapping is a MAP_SHARED page of a memfd that only this
// process holds, sized before it is mapped and never truncated, so no
// access inside it can fault. The two words are 8-byte aligned offsets
// inside the page, taken from constants; the pointers refer to memory
// outside the Go heap, which the collector neither moves nor frees, and the
// page is unmapped only after both goroutines using them have returned.

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The two sequence words sit on separate cache lines, as a real
// shared-memory transport keeps producer and consumer words apart.
const (
	shmFloorSize = 4096
	pingOffset   = 0
	pongOffset   = 128
)

// ShmPingPong measures round trips through a shared memory region (a
// memfd, mapped shared) between two goroutines spinning on two atomic
// sequence words: one writes the next sequence number into ping and spins
// until pong holds it, the other echoes ping into pong. It is the floor of
// a call through shared memory, no system call in the path; it wants two
// CPUs free, and yields to the scheduler when a spin runs long, so it ends
// on one CPU too, slowly. It returns one sample per round trip.
func ShmPingPong(b Budget) ([]time.Duration, error) {
	fd, err := unix.MemfdCreate("gpufabric-bench-floor", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("bench: shared-memory floor: memfd_create: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, shmFloorSize); err != nil {
		return nil, fmt.Errorf("bench: shared-memory floor: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, shmFloorSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("bench: shared-memory floor: mmap: %w", err)
	}
	defer unix.Munmap(mem)
	ping := (*atomic.Uint64)(unsafe.Pointer(&mem[pingOffset]))
	pong := (*atomic.Uint64)(unsafe.Pointer(&mem[pongOffset]))
	return spinPingPong(ping, pong, b), nil
}

// spinPingPong runs the ping-pong on two words; it returns once the echo
// goroutine has.
func spinPingPong(ping, pong *atomic.Uint64, b Budget) []time.Duration {
	const stop = ^uint64(0)
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		var seen uint64
		for {
			v := spinUntil(ping, func(v uint64) bool { return v != seen })
			if v == stop {
				return
			}
			seen = v
			pong.Store(v)
		}
	}()
	var seq uint64
	round := func() error {
		seq++
		ping.Store(seq)
		spinUntil(pong, func(v uint64) bool { return v == seq })
		return nil
	}
	for range warmupRounds {
		round()
	}
	samples, _ := timeRounds(b.start(), round)
	ping.Store(stop)
	<-echoed
	return samples
}

// spinUntil polls w until ok accepts its value, yielding the processor
// every few thousand polls so that a peer without a CPU of its own still
// gets to run.
func spinUntil(w *atomic.Uint64, ok func(uint64) bool) uint64 {
	for i := 1; ; i++ {
		if v := w.Load(); ok(v) {
			return v
		}
		if i%4096 == 0 {
			runtime.Gosched()
		}
	}
}
