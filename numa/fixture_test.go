package numa

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// The sysfs fixtures are kept as txtar archives, testdata/NAME.txtar, not
// as trees: sysfs names hold colons ("0000:3b:00.0"), which module zips
// and Windows checkouts refuse, and its class and bus entries are
// symlinks, which module zips leave out. In an archive each file is an
// entry named by its path under the fixture root, and a symlink is an
// entry with no content named "PATH -> TARGET", as ls -l shows it, TARGET
// relative to the directory holding PATH. Directories are implied.

// UnpackSysfs lets the examples in package numa_test unpack a fixture.
var UnpackSysfs = unpackSysfs

// sysfsFixture unpacks testdata/NAME.txtar into a new temporary directory
// and returns it, to be passed to Discover as the root. The directory is
// the test's own; it is removed when the test ends.
func sysfsFixture(tb testing.TB, name string) string {
	tb.Helper()
	if runtime.GOOS == "windows" {
		tb.Skip("sysfs fixtures need colons in file names and symlinks, which Windows does not allow a test")
	}
	root := tb.TempDir()
	if err := unpackSysfs(filepath.Join("testdata", name+".txtar"), root); err != nil {
		tb.Fatal(err)
	}
	return root
}

// unpackSysfs writes the tree in the txtar archive at the path archive
// into dir, which must exist.
func unpackSysfs(archive, dir string) error {
	a, err := txtar.ParseFile(archive)
	if err != nil {
		return err
	}
	if err := writeTree(a, dir); err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	return nil
}

// writeTree writes the files of a and makes its symlinks under dir.
// It refuses a path or link target that would leave dir, so a fixture
// can only describe a tree that Discover's root check would accept.
func writeTree(a *txtar.Archive, dir string) error {
	type link struct{ name, target string }
	var links []link
	seen := make(map[string]bool, len(a.Files))
	for _, f := range a.Files {
		name, target, isLink := strings.Cut(f.Name, " -> ")
		if !fs.ValidPath(name) || name == "." {
			return fmt.Errorf("entry %q: not a relative path inside the tree", f.Name)
		}
		if seen[name] {
			return fmt.Errorf("entry %q: %s appears twice", f.Name, name)
		}
		seen[name] = true
		if !isLink {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				return err
			}
			continue
		}
		if len(f.Data) != 0 {
			return fmt.Errorf("entry %q: a symlink has no content", f.Name)
		}
		if target == "" || path.IsAbs(target) || !fs.ValidPath(path.Join(path.Dir(name), target)) {
			return fmt.Errorf("entry %q: target %q is not a relative path inside the tree", f.Name, target)
		}
		links = append(links, link{name, target})
	}
	// Links last, so no file is written through one: a file under a
	// link's path makes a directory there, and the link then fails.
	for _, l := range links {
		p := filepath.Join(dir, filepath.FromSlash(l.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(filepath.FromSlash(l.target), p); err != nil {
			return err
		}
	}
	return nil
}

func TestWriteTree(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("makes symlinks, which Windows does not allow a test")
	}
	dir := t.TempDir()
	a := txtar.Parse([]byte(`comment
-- sys/devices/pci0000:00/0000:00:01.0/vendor --
0x10de
-- sys/bus/pci/devices/0000:00:01.0 -> ../../../devices/pci0000:00/0000:00:01.0 --
`))
	if err := writeTree(a, dir); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "sys/bus/pci/devices/0000:00:01.0")
	if target, err := os.Readlink(link); err != nil || target != filepath.FromSlash("../../../devices/pci0000:00/0000:00:01.0") {
		t.Errorf("Readlink = %q, %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(link, "vendor")); err != nil || string(b) != "0x10de\n" {
		t.Errorf("vendor through the link = %q, %v", b, err)
	}
}

func TestWriteTreeErrors(t *testing.T) {
	tests := []struct {
		name, archive, want string
	}{
		{"absolute path", "-- /sys/x --\n", "not a relative path"},
		{"dot dot", "-- sys/../../x --\n", "not a relative path"},
		{"twice", "-- sys/x --\n-- sys/x -> y --\n", "appears twice"},
		{"link with content", "-- sys/x -> y --\nz\n", "has no content"},
		{"absolute target", "-- sys/x -> /sys/y --\n", "not a relative path inside the tree"},
		{"target out of the tree", "-- sys/x -> ../../y --\n", "not a relative path inside the tree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeTree(txtar.Parse([]byte(tt.archive)), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("writeTree error %v, want it to say %q", err, tt.want)
			}
		})
	}
}
