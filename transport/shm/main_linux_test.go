//go:build linux

package shm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/leakcheck"
)

// childEnv names the socket a re-executed test binary dials as the child
// in TestPeerProcessDeath.
const childEnv = "GPUFABRIC_SHM_TEST_CHILD"

// TestMain runs the child of TestPeerProcessDeath when asked to, and fails
// the run when tests leak goroutines or file descriptors (a Conn owns a
// socket, a mapping and a watcher goroutine; all must go at Close).
func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	if path := os.Getenv(tokenChildEnv); path != "" {
		os.Exit(runTokenChild(path, os.Getenv(tokenEnv)))
	}
	os.Exit(leakcheck.Run(m, 2*time.Second))
}

// runChild dials path, says it is ready and holds the connection until it
// is killed.
func runChild(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	if err := c.Send([]byte("ready"), nil); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	// Hold the connection without reading: the parent fills our ring.
	time.Sleep(time.Minute)
	return 0
}

// testPath returns a fresh abstract socket name.
func testPath(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("@gpufabric-shm-test-%d-%s-%d", os.Getpid(), name, time.Now().UnixNano())
}
