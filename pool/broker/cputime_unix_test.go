//go:build unix

package broker

import (
	"syscall"
	"time"
)

// cpuTime is the CPU this process has used, user and system. The
// benchmark's store, servers, broker and clients all run in it, so CPU per
// reservation is the whole cycle's cost, and it holds still when other
// work loads the machine, as the latency does not.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
