package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gpufabric/gpufabric/internal/servertest"
	"github.com/gpufabric/gpufabric/pool"
)

var slotRE = regexp.MustCompile(`msg="pool: address slot" slot=(\d+)`)

// slotOf is the address slot a server's log says the pool gave it.
func slotOf(t *testing.T, s *servertest.Server) string {
	t.Helper()
	m := slotRE.FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("no address slot in the server's log:\n%s", s.Log())
	}
	return m[1]
}

// TestPoolAddressSlots starts servers in one pool: the pool gives each its
// own address slot, grants one asked for with --address-slot, refuses
// that slot to another server while its owner is in the pool, and gives a
// server that restarts the slot it had.
func TestPoolAddressSlots(t *testing.T) {
	requireBuild(t)
	e, err := pool.StartEmbedded(pool.EmbeddedConfig{Dir: t.TempDir(), Listen: "127.0.0.1:0", Peer: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	join := func(name string, args ...string) []string {
		return append([]string{"--devices", "1", "--pool", e.ClientURL, "--pool-name", name, "--pool-ttl", "2s"}, args...)
	}
	s0 := startServer(t, "256MiB", join("s0", "--address-slot", "7")...)
	s1 := startServer(t, "256MiB", join("s1")...)
	if a, b := slotOf(t, s0), slotOf(t, s1); a != "7" || b == "7" || b == "0" {
		t.Fatalf("s0 asked for slot 7 and got %s; s1 got %s", a, b)
	}
	s2, err := launchServer("256MiB", join("s2", "--address-slot", "7")...)
	if err == nil {
		s2.Stop()
		t.Fatalf("s2 started in s0's slot 7:\n%s", s2.Log())
	}
	if !strings.Contains(err.Error(), "slot 7 is server s0's, which is in the pool") {
		t.Fatalf("s2 asking for s0's slot: %v", err)
	}
	had := slotOf(t, s1)
	if err := s1.Stop(); err != nil {
		t.Fatal(err)
	}
	again := startServer(t, "256MiB", join("s1")...)
	if got := slotOf(t, again); got != had {
		t.Fatalf("s1 restarted in slot %s, had %s", got, had)
	}
}
