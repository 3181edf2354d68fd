// Package leakcheck lets a test binary fail when its tests leak goroutines
// or file descriptors: TestMain takes a Snapshot before m.Run and checks it
// after. It is test support, kept out of the packages it checks.
package leakcheck

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// Snapshot is how many goroutines and file descriptors the process had.
type Snapshot struct{ fds, goroutines int }

// Take counts this process's goroutines and open file descriptors (where
// /proc tells; elsewhere only goroutines are counted).
func Take() Snapshot { return Snapshot{openFDs(), runtime.NumGoroutine()} }

// Check waits up to wait for the counts to fall back to the snapshot's,
// since closed things finish going in the background. If they do not, it
// writes the open descriptors and every goroutine's stack to w and returns
// an error saying what leaked.
func (s Snapshot) Check(w io.Writer, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	now := Take()
	for now.fds > s.fds || now.goroutines > s.goroutines {
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir("/proc/self/fd")
			for _, e := range ents {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				fmt.Fprintf(w, "fd %s -> %s\n", e.Name(), target)
			}
			buf := make([]byte, 1<<20)
			fmt.Fprintf(w, "%s\n", buf[:runtime.Stack(buf, true)])
			return fmt.Errorf("leak: %d file descriptors open (%d before), %d goroutines (%d before)",
				now.fds, s.fds, now.goroutines, s.goroutines)
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		now = Take()
	}
	return nil
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
