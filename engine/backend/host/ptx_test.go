package host

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

const ptxHead = ".version 7.0\n.target sm_80\n"

// TestParsePTXTenantArithmetic feeds the parser the sizes, offsets and
// alignments a tenant can name, at and past every limit: each past one is
// refused with CUDA_ERROR_INVALID_PTX and says why, none panics or wraps.
func TestParsePTXTenantArithmetic(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		err    api.Result // 0: loads
		say    string
		params []api.Param
	}{
		{"align 2^31 wrapped the offsets", ".entry k(.param .align 2147483648 .b8 a[4], .param .u32 b) { ret; }",
			api.ErrInvalidPTX, "alignment 2147483648 exceeds 4096", nil},
		{"align past 2^32", ".entry k(.param .align 8589934592 .b8 a[4]) { ret; }", api.ErrInvalidPTX, "bad alignment", nil},
		{"align at the limit", ".entry k(.param .u8 a, .param .align 4096 .b8 b[16]) { ret; }",
			0, "", []api.Param{pa(0, 1), pa(4096, 16)}},
		{"buffer at CUDA's limit", ".entry k(.param .b8 a[32764]) { ret; }", 0, "", []api.Param{pa(0, 32764)}},
		{"buffer one past", ".entry k(.param .b8 a[32764], .param .u8 b) { ret; }", api.ErrInvalidPTX, "more than 32764 bytes", nil},
		{"alignment pushes past the limit", ".entry k(.param .align 4096 .b8 a[32000], .param .align 4096 .b8 b[1]) { ret; }",
			api.ErrInvalidPTX, "more than 32764 bytes", nil},
		{"array of 2^32-1 u64", ".entry k(.param .b64 a[4294967295]) { ret; }", api.ErrInvalidPTX, "more than 32764 bytes", nil},
		{"array of 2^32", ".entry k(.param .b8 a[4294967296]) { ret; }", api.ErrInvalidPTX, "longer than 2^32", nil},
		{"4095 u64 parameters", ".entry k(" + strings.Repeat(".param .u64 p, ", 4094) + ".param .u64 p) { ret; }",
			0, "", nil},
		{"4096 u64 parameters", ".entry k(" + strings.Repeat(".param .u64 p, ", 4095) + ".param .u64 p) { ret; }",
			api.ErrInvalidPTX, "more than 32764 bytes", nil},
		{"global of 2^32-1 u64", ".global .b64 big[4294967295];\n.entry k() { ret; }", api.ErrInvalidPTX, "exceed 1073741824 bytes", nil},
		{"globals summing past the limit", ".global .b8 a[600000000];\n.global .b8 b[600000000];\n.entry k() { ret; }",
			api.ErrInvalidPTX, "global b: the module's .global variables exceed", nil},
		{"global at the limit", ".global .b8 a[1073741824];\n.entry k() { ret; }", 0, "", nil},
		{"global over-aligned", ".global .align 4096 .b8 a[4];\n.entry k() { ret; }", api.ErrInvalidPTX, "alignment 4096 exceeds 512", nil},
		{"unclosed comment", "/* .entry k() { ret; }", api.ErrInvalidPTX, "never closed", nil},
		{"unclosed body", ".entry k() { { ret; }", api.ErrInvalidPTX, "never closed", nil},
		{"stray brace", "} .entry k() { ret; }", api.ErrInvalidPTX, "closes nothing", nil},
		{"unnamed entry", ".entry (.param .u32 a) { ret; }", api.ErrInvalidPTX, "without a name", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, _, err := parsePTX([]byte(ptxHead + tt.src))
			if tt.err != 0 {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.say) {
					t.Fatalf("err = %v, want %v saying %q", err, tt.err, tt.say)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("entries %v", entries)
			}
			if tt.params != nil && !equalParams(entries[0].params, tt.params) {
				t.Fatalf("params %v, want %v", entries[0].params, tt.params)
			}
			checkLayout(t, entries[0].params)
		})
	}
}

func equalParams(a, b []api.Param) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestParsePTXScopes covers what the one-pass scanner must tell apart:
// declarations in comments and strings, braces of initialisers and nested
// blocks, .global as a pointer qualifier in prototypes, directives glued
// to the next statement.
func TestParsePTXScopes(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		entries []string
		globals []ptxGlobal
	}{
		{"initialiser braces", ".visible .global .align 4 .u32 tbl[2] = {1, 2};\n.entry k(.param .u64 p) { ret; }",
			[]string{"k"}, []ptxGlobal{{"tbl", 8, 4}}},
		{"prototypes", ".extern .func (.param .b32 r) f(.param .u64 .ptr .global .align 8 p);\n" +
			".func g(.param .u64 .ptr .global q)\n{ ret; }\n.entry k() { ret; }", []string{"k"}, nil},
		{"strings and comments", ".file 1 \"a/*b.cu\"\n/* .entry x() { */ // }\n" +
			".entry k(.param .u32 a /* , .param .u64 b */) { ld.global.u32 %r1, [a]; { } }", []string{"k"}, nil},
		{"glued", ".entry a(.param .u8 x,.param .f64 y){ret;}.entry b(){ret;}", []string{"a", "b"}, nil},
		{"global after a body", ".entry k() { ret; }\n.global .f32 x;", []string{"k"}, []ptxGlobal{{"x", 4, 4}}},
		{"entry without body", ".entry k(.param .u32 a);", []string{"k"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, globals, err := parsePTX([]byte(ptxHead + tt.src))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.name)
			}
			if strings.Join(names, ",") != strings.Join(tt.entries, ",") {
				t.Errorf("entries %v, want %v", names, tt.entries)
			}
			if len(globals) != len(tt.globals) {
				t.Fatalf("globals %v, want %v", globals, tt.globals)
			}
			for i := range globals {
				if globals[i] != tt.globals[i] {
					t.Errorf("global %v, want %v", globals[i], tt.globals[i])
				}
			}
		})
	}
}

// checkLayout checks what every accepted layout must satisfy for the
// engine and the kernels to use it without overflow: parameters in order,
// not overlapping, inside CUDA's buffer.
func checkLayout(t *testing.T, params []api.Param) {
	t.Helper()
	var end uint64
	for i, p := range params {
		off, size := uint64(p.Offset), uint64(p.Size)
		if size == 0 || off < end || off+size > MaxParamBytes {
			t.Fatalf("parameter %d at %d+%d after %d: not a layout (%v)", i, off, size, end, params)
		}
		end = off + size
	}
}

// FuzzParsePTX feeds the module parser arbitrary images (seeds in
// testdata/fuzz/FuzzParsePTX and the examples' module): it must never
// panic, and what it accepts must be within every limit.
func FuzzParsePTX(f *testing.F) {
	if b, err := os.ReadFile("../../../examples/kernels.ptx"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, image []byte) {
		entries, globals, err := parsePTX(image)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) && !errors.Is(err, api.ErrInvalidImage) && !errors.Is(err, api.ErrInvalidPTX) {
				t.Fatalf("error %v is not an api Result", err)
			}
			return
		}
		for _, e := range entries {
			checkLayout(t, e.params)
		}
		if len(globals) > MaxModuleGlobals {
			t.Fatalf("%d globals", len(globals))
		}
		var sum uint64
		for _, g := range globals {
			r, _ := roundUp(max(g.size, 1))
			sum += r
			if g.align > MaxGlobalAlign || sum > MaxModuleGlobalBytes {
				t.Fatalf("global %v: align or total %d past the limits", g, sum)
			}
		}
	})
}

// FuzzParamLayout fuzzes the parameter-list layout alone, where the
// arithmetic is (seeds in testdata/fuzz/FuzzParamLayout).
func FuzzParamLayout(f *testing.F) {
	f.Add(".param .u64 a, .param .align 16 .b8 b[24], .param .f32 c")
	f.Fuzz(func(t *testing.T, list string) {
		params, err := paramLayout(list)
		if err != nil {
			return
		}
		checkLayout(t, params)
	})
}
