package bench

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/leakcheck"
)

// TestMain fails the run when the tests leak goroutines or file
// descriptors: a run starts a server, many sessions, floors with their own
// sockets and mappings, and must leave nothing of them behind.
func TestMain(m *testing.M) {
	ServeFloorChild() // the echo side of TestShmPingPongProcesses
	// Start the network poller (kept for the life of the process) before
	// counting.
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	before := leakcheck.Take()
	code := m.Run()
	if code == 0 {
		if err := before.Check(os.Stderr, 3*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
