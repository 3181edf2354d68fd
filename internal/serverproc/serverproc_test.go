package serverproc

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestBuffer: the log is read while it is written (run with -race).
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 1000 {
			fmt.Fprintf(&b, "line %d\n", i)
		}
	}()
	for range 100 {
		_ = b.String()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 1000 {
		t.Fatalf("%d lines, want 1000", n)
	}
}

func TestCleanEnv(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "GPUFABRIC_TOKEN=x", "HOME=/h", "GPUFABRIC_LISTEN=:1"})
	if want := []string{"PATH=/bin", "HOME=/h"}; !slices.Equal(got, want) {
		t.Fatalf("cleanEnv = %q, want %q", got, want)
	}
}

func TestLaunchFails(t *testing.T) {
	if _, err := Launch(Config{Bin: "/nonexistent/gpufabric"}); err == nil {
		t.Fatal("a missing binary launched")
	}
	// A process that exits at once is reported, not waited for until the
	// deadline.
	_, err := Launch(Config{Bin: "false"})
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("Launch of a process that exits: %v", err)
	}
}
