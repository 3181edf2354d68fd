//go:build linux

package shm

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMeminfoKiB(t *testing.T) {
	meminfo := []byte("MemTotal:       24684000 kB\nHugePages_Free:        3\nHugepagesize:       2048 kB\n")
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"Hugepagesize:", 2048},
		{"MemTotal:", 24684000},
		{"HugePages_Free:", 3}, // a count, no unit
		{"Hugetlb:", 0},        // missing
	} {
		if got := meminfoKiB(meminfo, tc.key); got != tc.want {
			t.Errorf("meminfoKiB(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// isHugeTLBFS reports whether fd is a file of hugetlbfs.
func isHugeTLBFS(t *testing.T, fd int) bool {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.HUGETLBFS_MAGIC
}

// TestHostRegionSmallNotHugeTLB: a region smaller than a huge page stays
// in ordinary shared memory, in whole 4 KiB pages, pool or no pool.
func TestHostRegionSmallNotHugeTLB(t *testing.T) {
	h, err := NewHostRegion(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.HugeTLB() || isHugeTLBFS(t, h.fd) || h.Size() != 64<<10 {
		t.Fatalf("64 KiB region: hugetlb %v, size %d", h.HugeTLB(), h.Size())
	}
}

// TestHostRegionFallback: with reserved huge pages out of its reach (none
// reserved, too few free, or turned off) a region is ordinary shared
// memory, shared and placed as before.
func TestHostRegionFallback(t *testing.T) {
	old := useHugeTLB
	useHugeTLB = false
	t.Cleanup(func() { useHugeTLB = old })
	size := 4<<20 + 1
	h, mem := takenRegion(t, size)
	if h.HugeTLB() || isHugeTLBFS(t, h.fd) || h.Size() != 4<<20+pageSize {
		t.Fatalf("hugetlb %v, size %d", h.HugeTLB(), h.Size())
	}
	checkShared(t, h, mem)
}

// TestHostRegionHugeTLB: where the operator reserved huge pages
// (vm.nr_hugepages), a region of a few huge pages is made of them, rounded
// up to whole ones, and is one memory on both sides; one larger than the
// free pool falls back. Skipped, saying why, where no pool is reserved.
func TestHostRegionHugeTLB(t *testing.T) {
	page := hugeTLBPageSize()
	free := hugeTLBFree(page)
	if page == 0 || free < 3 {
		t.Skipf("%d huge pages of %d KiB free, 3 needed: reserve some (sysctl vm.nr_hugepages=64) to run this", free, page>>10)
	}
	h, mem := takenRegion(t, 2*page+1)
	if !h.HugeTLB() || !isHugeTLBFS(t, h.fd) || h.Size() != 3*page {
		t.Fatalf("hugetlb %v, size %d; want a hugetlbfs file of %d", h.HugeTLB(), h.Size(), 3*page)
	}
	checkShared(t, h, mem)

	big, err := NewHostRegion((hugeTLBFree(page) + 1) * page)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if big.HugeTLB() {
		t.Fatal("a region larger than the free pool was put in it")
	}
}

// checkShared maps h on the client side and checks that both sides see
// each other's writes through it and the server's mapping mem.
func checkShared(t *testing.T, h *HostRegion, mem []byte) {
	t.Helper()
	cm, err := h.Map()
	if err != nil {
		t.Fatal(err)
	}
	if len(cm) != len(mem) {
		t.Fatalf("client maps %d bytes, server %d", len(cm), len(mem))
	}
	want := pattern(len(cm), 9)
	copy(cm, want)
	if !bytes.Equal(mem, want) {
		t.Fatal("the server does not see the client's writes")
	}
	copy(mem[len(mem)-20:], "from the server")
	if string(cm[len(cm)-20:len(cm)-5]) != "from the server" {
		t.Fatal("the client does not see the server's writes")
	}
}
