package e2e

import (
	"cmp"
	"strings"
	"testing"
)

// TestConformanceMemory runs the conformance check of the memory families
// (examples/c/conf_memory.c: pitched and 2D/3D memory, stream-ordered
// allocation, virtual memory management, peers, IPC with a child process
// of its own) under `gpufabric run`
// against a host-backend server of two devices, both in the session, over
// TCP, shared memory, and TCP with a shared-memory bulk lane.
func TestConformanceMemory(t *testing.T) {
	requireBuild(t, "conf_memory")
	srv := startServer(t, "256MiB", "--devices", "2")
	for _, tr := range []string{"tcp", "shm", "tcp+shm"} {
		t.Run(tr, func(t *testing.T) {
			call, bulk, _ := strings.Cut(tr, "+")
			args := []string{"--transport", call, "--bulk-transport", cmp.Or(bulk, "auto"), "-m", "64MiB", "-n", "2"}
			r := run(t, srv.Addr, args, example("conf_memory"))
			if r.status != 0 || !strings.Contains(r.out, " checks passed") || !strings.Contains(r.out, "ipc child ok") {
				t.Fatalf("conf_memory over %s exited %d:\n%s", tr, r.status, r.out)
			}
			t.Log(strings.TrimSpace(r.out))
		})
	}
}
