package host

import (
	"errors"
	"strings"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/examples"
)

// ptxOf cuts the examples' module down to the entries named, with its
// header: a module of its own per entry, as separate compilations give.
func ptxOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	src := string(examples.KernelsPTX)
	head := src[:strings.Index(src, ".visible .entry")]
	var b strings.Builder
	b.WriteString(head)
	for _, e := range entries {
		i := strings.Index(src, ".visible .entry "+e+"(")
		if i < 0 {
			t.Fatalf("no entry %s in the examples", e)
		}
		j := strings.Index(src[i:], "\n}\n")
		b.WriteString(src[i : i+j+3])
	}
	return []byte(b.String())
}

func TestLink(t *testing.T) {
	d, err := New(Config{MemorySize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, b := ptxOf(t, "fill_u32"), ptxOf(t, "scale_f32", "saxpy")
	image, err := d.Link([]backend.LinkInput{{Type: api.LinkPTX, Name: "a", Data: a}, {Type: api.LinkPTX, Name: "b", Data: append(b, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.LoadModule(image)
	if err != nil {
		t.Fatalf("the linked image does not load: %v", err)
	}
	defer m.Unload()
	for _, e := range []string{"fill_u32", "scale_f32", "saxpy"} {
		if _, err := m.Function(e); err != nil {
			t.Errorf("linked module: %s: %v", e, err)
		}
	}
	if _, err := m.Function("vector_add"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("an entry of no input: %v", err)
	}

	for _, c := range []struct {
		name   string
		inputs []backend.LinkInput
		want   api.Result
	}{
		{"nothing", nil, api.ErrInvalidValue},
		{"twice defined", []backend.LinkInput{{Type: api.LinkPTX, Data: a}, {Type: api.LinkPTX, Data: a}}, api.ErrInvalidPTX},
		{"a cubin", []backend.LinkInput{{Type: api.LinkCubin, Data: []byte("\x7fELF")}}, api.ErrNotSupported},
		{"not PTX", []backend.LinkInput{{Type: api.LinkPTX, Data: []byte("hello")}}, api.ErrInvalidImage},
		{"an open body", []backend.LinkInput{{Type: api.LinkPTX, Data: []byte(".version 8.0\n.target sm_80\n.entry f() {")}}, api.ErrInvalidPTX},
	} {
		if _, err := d.Link(c.inputs); api.ResultOf(err) != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
