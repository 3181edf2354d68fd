package bench

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestMain fails the run when the tests leak goroutines or file
// descriptors: a run starts a server, many sessions, floors with their own
// sockets and mappings, and must leave nothing of them behind.
func TestMain(m *testing.M) {
	// Start the network poller (kept for the life of the process) before
	// counting.
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	fds0, g0 := openFDs(), runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		var fds, g int
		for range 150 {
			runtime.GC()
			fds, g = openFDs(), runtime.NumGoroutine()
			if fds <= fds0 && g <= g0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if fds > fds0 || g > g0 {
			fmt.Fprintf(os.Stderr, "leak: %d file descriptors open (%d before), %d goroutines (%d before)\n", fds, fds0, g, g0)
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "%s\n", buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs counts this process's open file descriptors where /proc says;
// elsewhere it is 0 and only goroutines are checked.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
