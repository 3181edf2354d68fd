package rdma

import (
	"os"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/leakcheck"
)

// TestMain fails the run when tests leak goroutines or file descriptors:
// a connection's poller and watcher must end at its Close.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m, 5*time.Second)) }
