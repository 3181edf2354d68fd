// Package servertest starts `gpufabric server` processes for tests: the
// end-to-end tests of e2e/ and cmd/gpufabric run real servers, clients and
// smi as separate processes over loopback, and this is the one harness
// they share. The processes are internal/serverproc's; Start ties one to a
// test's lifetime.
package servertest

import (
	"testing"

	"github.com/gpufabric/gpufabric/internal/serverproc"
)

type (
	// Config says how to start a server.
	Config = serverproc.Config
	// Server is a running `gpufabric server` process.
	Server = serverproc.Server
	// Buffer is a bytes.Buffer safe for one writer and many readers, for
	// the output of other processes a test runs.
	Buffer = serverproc.Buffer
)

// Launch starts a server and waits until it accepts connections. The
// caller stops it.
func Launch(cfg Config) (*Server, error) { return serverproc.Launch(cfg) }

// Start launches a server for t and stops it at t's cleanup, printing its
// log when t failed.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := serverproc.Launch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	return s
}
