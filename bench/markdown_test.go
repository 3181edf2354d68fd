package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateSection(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "benchmarks.md")

	// A file that does not exist is created with the markers.
	if err := UpdateSection(path, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n" + BeginMarker + "\nfirst\n" + EndMarker + "\n"
	if got := read(t, path); got != want {
		t.Errorf("created:\n%s\nwant:\n%s", got, want)
	}

	// Text outside the markers is someone's: it stays byte for byte.
	hand := "# Benchmarks\n\nWritten by hand, *with* | odd text.\n\n" + BeginMarker + "\nold\nlines\n" + EndMarker + "\n\n## After\n\nmore\n"
	os.WriteFile(path, []byte(hand), 0o644)
	for range 2 { // and again: idempotent
		if err := UpdateSection(path, []byte("\n\nnew section\n\n")); err != nil {
			t.Fatal(err)
		}
		want := strings.Replace(hand, "\nold\nlines\n", "\nnew section\n", 1)
		if got := read(t, path); got != want {
			t.Errorf("updated:\n%s\nwant:\n%s", got, want)
		}
	}

	// No markers, or only one: refused, the file untouched.
	for _, doc := range []string{"# Benchmarks\n\nno markers\n", "x\n" + BeginMarker + "\n", "x\n" + EndMarker + "\n" + BeginMarker + "\n"} {
		os.WriteFile(path, []byte(doc), 0o644)
		if err := UpdateSection(path, []byte("new")); !errors.Is(err, ErrNoMarkers) {
			t.Errorf("UpdateSection on %q: %v, want ErrNoMarkers", doc, err)
		}
		if got := read(t, path); got != doc {
			t.Errorf("refused file changed to %q", got)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
