//go:build linux

package bench

// This file holds the package's unsafe code and system calls: the shared
// mapping of the spinning ping-pong floor.
//
// Why it is safe: the mapping is a MAP_SHARED page of a memfd that this
// process (and, for the two-process floor, its child, which never resizes
// it) holds, sized before it is mapped and never truncated, so no access
// inside it can fault. The words are 8-byte aligned offsets inside the
// page, taken from constants; the pointers refer to memory outside the Go
// heap, which the collector neither moves nor frees, and the page is
// unmapped only after everything using them has returned.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"syscall"
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
	readyOffset  = 256 // the child's "I am spinning"
)

// ShmPingPong measures round trips through a shared memory region (a
// memfd, mapped shared) between two goroutines spinning on two atomic
// sequence words: one writes the next sequence number into ping and spins
// until pong holds it, the other echoes ping into pong. It is the floor of
// a call through shared memory, no system call in the path; it wants two
// CPUs free, and yields to the scheduler when a spin runs long, so it ends
// on one CPU too, slowly. It returns one sample per round trip.
func ShmPingPong(b Budget) ([]time.Duration, error) {
	f, mem, err := floorRegion()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer unix.Munmap(mem)
	ping, pong := word(mem, pingOffset), word(mem, pongOffset)
	return spinPingPong(ping, pong, b), nil
}

// floorRegion creates the floor's shared page: a memfd, sized and mapped.
func floorRegion() (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate("gpufabric-bench-floor", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: shared-memory floor: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gpufabric-bench-floor")
	if err := f.Truncate(shmFloorSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("bench: shared-memory floor: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, shmFloorSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("bench: shared-memory floor: mmap: %w", err)
	}
	return f, mem, nil
}

// word is the atomic word at a constant offset of the floor's page.
func word(mem []byte, off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&mem[off])) }

// FloorChildEnv marks the process that ShmPingPongProcesses starts: the
// program itself again, which must call ServeFloorChild first thing.
const FloorChildEnv = "GPUFABRIC_BENCH_FLOOR_CHILD"

// stopFloor is the ping value that ends the echo.
const stopFloor = ^uint64(0)

// ShmPingPongProcesses is ShmPingPong with the echo in another process, as
// a client and a server on one host are: the program is started again
// (os.Executable) with FloorChildEnv set and the memfd as its descriptor 3,
// and its main (or TestMain) hands control to ServeFloorChild before
// anything else. It fails when the child cannot be started or does not
// start spinning within a few seconds.
func ShmPingPongProcesses(b Budget) ([]time.Duration, error) {
	f, mem, err := floorRegion()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer unix.Munmap(mem)
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: two-process floor: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), FloorChildEnv+"=1")
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: two-process floor: start %s: %w", self, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ping, pong, ready := word(mem, pingOffset), word(mem, pongOffset), word(mem, readyOffset)
	for deadline := time.Now().Add(5 * time.Second); ready.Load() == 0; runtime.Gosched() {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("bench: two-process floor: the child exited before it spun: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, errors.New("bench: two-process floor: the child did not start spinning in 5s (does the program call ServeFloorChild?)")
		}
	}
	samples := pingRounds(ping, pong, b)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	return samples, nil
}

// ServeFloorChild returns at once, unless this process is the child of
// ShmPingPongProcesses: then it echoes the parent's pings until told to
// stop, and exits. Programs that measure the two-process floor call it at
// the top of main, or of TestMain.
func ServeFloorChild() {
	if os.Getenv(FloorChildEnv) == "" {
		return
	}
	mem, err := unix.Mmap(3, 0, shmFloorSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: floor child: mmap:", err)
		os.Exit(1)
	}
	ping, pong, ready := word(mem, pingOffset), word(mem, pongOffset), word(mem, readyOffset)
	ready.Store(1)
	echo(ping, pong)
	os.Exit(0)
}

// spinPingPong runs the ping-pong on two words, the echo in a goroutine;
// it returns once the echo goroutine has.
func spinPingPong(ping, pong *atomic.Uint64, b Budget) []time.Duration {
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		echo(ping, pong)
	}()
	samples := pingRounds(ping, pong, b)
	<-echoed
	return samples
}

// pingRounds writes the next sequence number into ping and spins until
// pong holds it, for the budget's rounds after a warm-up; then it tells
// the echo to stop. It returns one sample per round trip.
func pingRounds(ping, pong *atomic.Uint64, b Budget) []time.Duration {
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
	ping.Store(stopFloor)
	return samples
}

// echo copies each new value of ping into pong until ping holds stopFloor.
func echo(ping, pong *atomic.Uint64) {
	var seen uint64
	for {
		v := spinUntil(ping, func(v uint64) bool { return v != seen })
		if v == stopFloor {
			return
		}
		seen = v
		pong.Store(v)
	}
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
