package transport

import (
	"os"
	"testing"
	"time"

	"github.com/gpufabric/gpufabric/internal/leakcheck"
)

// TestMain fails the run when tests leak goroutines or file descriptors: a
// FramedConn's writer must end at Close, whichever path (Send, SendNow,
// TrySend's handoff) last held the writer role.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m, 5*time.Second)) }
