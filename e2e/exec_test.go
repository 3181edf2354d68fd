package e2e

import (
	"strings"
	"testing"
)

// TestConformanceExec runs examples/c/conf_exec.c, the execution
// families' conformance program (graphs, host functions, stream memory
// operations, occupancy), over TCP and shared memory.
func TestConformanceExec(t *testing.T) {
	requireBuild(t, "conf_exec")
	srv := sharedServer(t)
	for _, tr := range []string{"tcp", "shm"} {
		t.Run(tr, func(t *testing.T) {
			r := run(t, srv.Addr, []string{"-p", "0.1", "--transport", tr}, example("conf_exec"), kernels)
			if r.status != 0 {
				t.Fatalf("conf_exec over %s exited %d:\n%s", tr, r.status, r.out)
			}
			t.Logf("conf_exec over %s:\n%s", tr, r.out)
			for _, w := range []string{"graphs: ", "host functions: ", "stream memory operations: ", "occupancy: ", "context ownership: ", "JIT link: ", "conf_exec: ok"} {
				if !strings.Contains(r.out, w) {
					t.Errorf("conf_exec over %s: output lacks %q:\n%s", tr, w, r.out)
				}
			}
		})
	}
}
