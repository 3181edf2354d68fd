package tcp_test

import (
	"flag"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/leakcheck"
)

// TestMain fails the run when tests leak goroutines or file descriptors: a
// TLS listener's accept loop and handshakes must end at its Close.
func TestMain(m *testing.M) {
	// Start the network poller (an epoll and an event descriptor, kept for
	// the life of the process) before counting.
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	before := leakcheck.Take()
	code := m.Run()
	// The fuzzing engine keeps goroutines of its own; check plain runs only.
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	if code == 0 && !fuzzing {
		if err := before.Check(os.Stderr, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
