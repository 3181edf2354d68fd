package leakcheck

import (
	"flag"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// Run is a TestMain's body: it runs the tests and, when they pass, fails
// the run if they left goroutines or file descriptors behind after wait.
// It starts the network poller first (an epoll and an event descriptor,
// kept for the life of the process), so that the first test to use the
// network is not taken for a leak. Fuzzing runs are not checked: the
// fuzzing engine keeps goroutines of its own.
func Run(m *testing.M, wait time.Duration) int {
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	before := Take()
	code := m.Run()
	if code != 0 || fuzzing() {
		return code
	}
	if err := before.Check(os.Stderr, wait); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" || w != nil && w.Value.String() == "true"
}
