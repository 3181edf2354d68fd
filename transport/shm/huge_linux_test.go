//go:build linux

package shm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBracketed(t *testing.T) {
	for in, want := range map[string]string{
		"always within_size advise [never] deny force\n": "never",
		"[advise] never\n": "advise",
		"always never\n":   "",
		"[unterminated":    "",
		"":                 "",
	} {
		if got := bracketed([]byte(in)); got != want {
			t.Errorf("bracketed(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPMDMapped(t *testing.T) {
	smaps := `7f0000000000-7f0004000000 rw-s 00000000 00:01 5 /memfd:gpufabric-pinned (deleted)
Size:              65536 kB
FilePmdMapped:         0 kB
ShmemPmdMapped:    63488 kB
7f0004000000-7f0008000000 rw-s 00000000 00:01 6 /memfd:other (deleted)
ShmemPmdMapped:     2048 kB
`
	for prefix, want := range map[string]int{"7f0000000000-": 63488, "7f0004000000-": 2048, "7f0008000000-": 0} {
		if got, err := pmdMapped(strings.NewReader(smaps), prefix); err != nil || got != want {
			t.Errorf("pmdMapped(%q) = %d, %v; want %d", prefix, got, err, want)
		}
	}
}

// TestHostRegionAdvisePath: a region shared through the path taken where
// the kernel gives shared memory huge pages only on request (mapped, asked,
// populated, then fallocated) is one memory on both sides, as through the
// default path, whatever the kernel then gives.
func TestHostRegionAdvisePath(t *testing.T) {
	old := adviseHuge
	adviseHuge = func() bool { return true }
	t.Cleanup(func() { adviseHuge = old })
	h, mem := takenRegion(t, 4<<20)
	cm, err := h.Map()
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(len(cm), 5)
	copy(cm, want)
	if !bytes.Equal(mem, want) {
		t.Fatal("the server does not see the client's writes")
	}
}

// TestHostRegionHugePages: where the kernel lets shared memory use
// transparent huge pages, a 64 MiB region the server takes is mapped with
// some; elsewhere the test says why it cannot tell.
func TestHostRegionHugePages(t *testing.T) {
	switch p := shmemHugePolicy(); p {
	case "always", "within_size", "advise", "force":
	default:
		t.Skipf("shmem_enabled is %q: this kernel keeps shared memory on 4 KiB pages", p)
	}
	_, mem := takenRegion(t, 64<<20)
	kb, err := pmdMappedKiB(strings.TrimPrefix(fmt.Sprintf("%p", &mem[0]), "0x") + "-")
	if err != nil {
		t.Fatal(err)
	}
	if kb == 0 {
		t.Fatalf("shmem_enabled is %q and no part of the region is mapped in huge pages", shmemHugePolicy())
	}
	t.Logf("%d KiB of 64 MiB in huge pages", kb)
}

// takenRegion shares a new host region of size bytes from a client and
// takes it on the server, and returns the client's handle and the server's
// mapping; both go at the end of the test.
func takenRegion(t *testing.T, size int) (*HostRegion, []byte) {
	t.Helper()
	c, s := pair(t, Options{})
	h, err := NewHostRegion(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := c.ShareRegion(1, h); err != nil {
		t.Fatal(err)
	}
	mem, unmap, err := s.TakeRegion(1, uint64(h.Size()), 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unmap)
	return h, mem
}

// pmdMappedKiB reads FilePmdMapped/ShmemPmdMapped of this process's
// mapping whose smaps line starts with prefix.
func pmdMappedKiB(prefix string) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return pmdMapped(f, prefix)
}

func pmdMapped(r io.Reader, prefix string) (int, error) {
	sc := bufio.NewScanner(r)
	in := false
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's first line: "start-end perms ..."
			in = strings.HasPrefix(line, prefix)
			continue
		}
		if in && len(fields) > 1 && (fields[0] == "FilePmdMapped:" || fields[0] == "ShmemPmdMapped:") {
			if n, err := strconv.Atoi(fields[1]); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, sc.Err()
}
