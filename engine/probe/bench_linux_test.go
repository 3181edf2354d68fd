//go:build linux

package probe

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// timeSyscalls times n getppid(2) calls on the calling (locked) thread.
func timeSyscalls(n int) time.Duration {
	start := time.Now()
	for range n {
		unix.Getppid()
	}
	return time.Since(start)
}

// BenchmarkSyscallOverhead measures what a thread pays per system call
// with the probes on: the same loop of getppid(2), b.N calls each, with no
// probes, with the probes attached and the thread tracked, and with the
// probes attached and the thread not tracked (what every other thread on
// the machine pays). Reported as ns/syscall-off, -tracked, -untracked and
// their differences.
func BenchmarkSyscallOverhead(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.StopTimer()
	off := timeSyscalls(b.N)

	p := openOrSkip(b, Options{Skip: []string{"tcp_probe", "tcp_retransmit_skb"}})
	needProgs(b, p, "sys_enter", "sys_exit")
	untracked := timeSyscalls(b.N)
	tid := unix.Gettid()
	if err := p.Track(tid, "bench"); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	tracked := timeSyscalls(b.N)
	b.StopTimer()
	p.Untrack(tid)
	p.Close()

	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(per(off), "ns/syscall-off")
	b.ReportMetric(per(tracked), "ns/syscall-tracked")
	b.ReportMetric(per(untracked), "ns/syscall-untracked")
	b.ReportMetric(per(tracked)-per(off), "ns-overhead/syscall-tracked")
	b.ReportMetric(per(untracked)-per(off), "ns-overhead/syscall-untracked")
}

// pingPong bounces a byte n times between this thread and another locked
// thread over two blocking pipes: each round trip is two wake-ups, two
// context switches and four system calls, what a shard handed work by a
// reader pays. It returns the other thread's id and a function that runs
// n rounds.
func pingPong(b *testing.B) (peer int, rounds func(n int), stop func()) {
	var ab, ba [2]int
	if err := unix.Pipe2(ab[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	if err := unix.Pipe2(ba[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	tids := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		pin(1)
		tids <- unix.Gettid()
		buf := make([]byte, 1)
		for {
			if n, err := unix.Read(ab[0], buf); err != nil || n == 0 {
				return
			}
			if _, err := unix.Write(ba[1], buf); err != nil {
				return
			}
		}
	}()
	peer = <-tids
	buf := make([]byte, 1)
	rounds = func(n int) {
		for range n {
			unix.Write(ab[1], buf)
			unix.Read(ba[0], buf)
		}
	}
	stop = func() {
		unix.Close(ab[1])
		<-done
		unix.Close(ab[0])
		unix.Close(ba[0])
		unix.Close(ba[1])
	}
	return peer, rounds, stop
}

// pin pins the calling thread to the i-th CPU it may use, if there is one.
func pin(i int) {
	var set, one unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return
	}
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			if i == 0 {
				one.Set(c)
				unix.SchedSetaffinity(0, &one)
				return
			}
			i--
		}
	}
}

// unpin lets the calling thread run on every CPU again.
func unpin() {
	var all unix.CPUSet
	for c := 0; c < runtime.NumCPU(); c++ {
		all.Set(c)
	}
	unix.SchedSetaffinity(0, &all)
}

// BenchmarkWakeupOverhead measures what the scheduler and system-call
// probes cost a pair of tracked threads handing work to each other: ns per
// round trip (two wake-ups, four system calls) with the probes off and on,
// the two threads pinned to two CPUs (as a reader and a shard would be).
func BenchmarkWakeupOverhead(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.StopTimer()
	pin(0)
	defer unpin()
	peer, rounds, stop := pingPong(b)
	defer stop()
	timeRounds := func() time.Duration {
		start := time.Now()
		rounds(b.N)
		return time.Since(start)
	}
	rounds(100) // warm up
	off := timeRounds()

	p := openOrSkip(b, Options{Skip: []string{"tcp_probe", "tcp_retransmit_skb"}})
	needProgs(b, p, "sched_wakeup", "sched_switch", "sys_enter", "sys_exit")
	if err := p.Track(unix.Gettid(), "bench"); err != nil {
		b.Fatal(err)
	}
	if err := p.Track(peer, "bench"); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	on := timeRounds()
	b.StopTimer()
	p.Close()

	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(per(off), "ns/roundtrip-off")
	b.ReportMetric(per(on), "ns/roundtrip-on")
	b.ReportMetric(per(on)-per(off), "ns-overhead/roundtrip")
}
