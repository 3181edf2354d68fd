package numa

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sharedMapping returns a MAP_SHARED mapping of a memfd of size bytes whose
// pages are allocated (fallocate) but not yet mapped by this process: the
// shape of a shared-memory transport's region.
func sharedMapping(t *testing.T, size int) []byte {
	t.Helper()
	fd, err := unix.MemfdCreate("numa-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		t.Fatalf("ftruncate: %v", err)
	}
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// policyOrSkip is PolicyOf, skipping the test where the kernel will not
// report policies (no NUMA: ENOSYS; a seccomp profile: EPERM).
func policyOrSkip(t *testing.T, b []byte) (int, []int) {
	t.Helper()
	mode, nodes, err := PolicyOf(b)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("the kernel does not report memory policies: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return mode, nodes
}

// mbindRefused reports whether the kernel refuses to set a policy at all,
// as a probe mbind on a scratch page shows; then MoveToNode is a no-op.
func mbindRefused(t *testing.T) bool {
	t.Helper()
	probe, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if err := mbind(probe, unix.MPOL_PREFERRED, []uint64{1}, 0); err != nil {
		t.Logf("the kernel refuses mbind (%v); MoveToNode sets no policy", err)
		return true
	}
	return false
}

// rss is the resident size this process maps of the mapping starting at
// b's first byte, from /proc/self/smaps; -1 where it cannot be read.
func rss(t *testing.T, b []byte) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Logf("cannot read smaps: %v", err)
		return -1
	}
	prefix := strings.TrimPrefix(fmt.Sprintf("%p", &b[0]), "0x") + "-"
	in := false
	for line := range strings.Lines(string(smaps)) {
		if !in {
			in = strings.HasPrefix(line, prefix)
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("smaps: %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Logf("mapping %s not in smaps", prefix)
	return -1
}

func TestMoveToNode(t *testing.T) {
	const size = 4 << 20
	tests := []struct {
		name      string
		node      int
		wantMode  int
		wantNodes []int
	}{
		{name: "node 0", node: 0, wantMode: unix.MPOL_PREFERRED, wantNodes: []int{0}},
		{name: "unknown node leaves the policy alone", node: UnknownNode, wantMode: unix.MPOL_DEFAULT},
		{name: "absent node is a hint refused", node: 1000, wantMode: unix.MPOL_DEFAULT},
		{name: "node beyond any mask is no preference", node: maxNodes, wantMode: unix.MPOL_DEFAULT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sharedMapping(t, size)
			if mode, nodes := policyOrSkip(t, b); mode != unix.MPOL_DEFAULT || len(nodes) != 0 {
				t.Fatalf("policy before the move = %d %v, want MPOL_DEFAULT []", mode, nodes)
			}
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i * 7)
			}
			copy(b, want)

			if err := MoveToNode(b, tt.node); err != nil {
				t.Fatal(err)
			}
			wantMode, wantNodes := tt.wantMode, tt.wantNodes
			if wantMode != unix.MPOL_DEFAULT && mbindRefused(t) {
				wantMode, wantNodes = unix.MPOL_DEFAULT, nil
			}
			mode, nodes := policyOrSkip(t, b)
			if mode != wantMode || fmt.Sprint(nodes) != fmt.Sprint(wantNodes) {
				t.Errorf("policy after MoveToNode(%d) = %d %v, want %d %v", tt.node, mode, nodes, wantMode, wantNodes)
			}
			if !bytes.Equal(b, want) {
				t.Error("data changed across the move")
			}
		})
	}
}

// TestMoveToNodePopulates: pages allocated by fallocate but never touched
// here are mapped by MoveToNode, which mbind needs to migrate them.
func TestMoveToNodePopulates(t *testing.T) {
	const size = 1 << 20
	b := sharedMapping(t, size)
	if got := rss(t, b); got != 0 {
		t.Skipf("fresh mapping already has %d bytes resident (or smaps unreadable)", got)
	}
	if err := MoveToNode(b, 0); err != nil {
		t.Fatal(err)
	}
	if got := rss(t, b); got != -1 && got != size {
		t.Errorf("resident after MoveToNode = %d bytes, want %d", got, size)
	}
}

// TestTouchPages checks the fallback for kernels without
// MADV_POPULATE_READ, whatever this kernel has.
func TestTouchPages(t *testing.T) {
	page := os.Getpagesize()
	for _, size := range []int{1, page, page + 1, 3 * page} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			b := sharedMapping(t, size)
			if got := rss(t, b); got != 0 {
				t.Skipf("fresh mapping already has %d bytes resident (or smaps unreadable)", got)
			}
			touchPages(b)
			want := (size + page - 1) / page * page
			if got := rss(t, b); got != -1 && got != want {
				t.Errorf("resident after touchPages = %d bytes, want %d", got, want)
			}
		})
	}
}

func TestMoveToNodeUnaligned(t *testing.T) {
	b := sharedMapping(t, 2*os.Getpagesize())
	if err := MoveToNode(b[1:], 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("MoveToNode of an unaligned slice = %v, want EINVAL", err)
	}
}

func TestPolicyOfEmpty(t *testing.T) {
	if _, _, err := PolicyOf(nil); err == nil {
		t.Error("PolicyOf(nil) succeeded")
	}
}
