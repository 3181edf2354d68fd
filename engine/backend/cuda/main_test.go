package cuda

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"testing"
	"time"
)

// cleanups run after all tests (the fake drivers' build directory).
var cleanups []func()

// TestMain fails the run if one of the backend's goroutines outlives the
// tests: stream workers and waiters exit when their queues drain, Notify
// goroutines when their event completes, the NVML watcher when the last
// device closes. One that does not is a leak in a long-running server.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

var ours = regexp.MustCompile(`engine/backend/cuda\.\(\*(stream|event|fleet)\)`)

func leakedGoroutines(patience time.Duration) string {
	deadline := time.Now().Add(patience)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !ours.Match(buf) {
			return ""
		}
		if time.Now().After(deadline) {
			return string(buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
