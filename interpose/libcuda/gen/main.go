// Command gen writes the generated files of the interposer from the
// committed lists in this directory:
//
//   - names.txt: every cu* name libcuda.so.1 exports;
//   - versions.txt: from which CUDA version cuGetProcAddress answers a base
//     name with each versioned symbol;
//   - nvml_names.txt: every nvml* name of the NVML header that go-nvml (the
//     version go.mod pins) ships, itself generated from that header when the
//     module is in the module cache.
//
// It reads the package's hand-written C files for the names they implement
// (functions defined with GF_EXPORT) and writes, next to them:
//
//   - stubs_gen.c: a stub for every other name, returning
//     CUDA_ERROR_NOT_SUPPORTED through gf_stub, and gf_symbols, the address
//     of every name, in names.txt order;
//   - procaddr_gen.go: the same names in the same order, and the table
//     cuGetProcAddress resolves base names with;
//   - nvml_stubs_gen.c: a stub for every NVML name the package does not
//     implement, returning NVML_ERROR_NOT_SUPPORTED through gf_nvml_stub.
//
// Run it with `go generate ./interpose/libcuda`; `gen -check` fails when the
// committed files differ from what it would write (the test does this).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func main() {
	dir := flag.String("dir", ".", "the interpose/libcuda directory")
	check := flag.Bool("check", false, "compare with the committed files instead of writing them")
	flag.Parse()
	if err := run(*dir, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string, check bool) error {
	files, err := generate(dir)
	if err != nil {
		return err
	}
	var stale []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if check {
			old, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(old, f.data) {
				stale = append(stale, f.name)
			}
			continue
		}
		if err := os.WriteFile(path, f.data, 0o644); err != nil {
			return err
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("%s out of date: run go generate ./interpose/libcuda", strings.Join(stale, ", "))
	}
	return nil
}

type file struct {
	name string
	data []byte
}

// generate builds the generated files' contents.
func generate(dir string) ([]file, error) {
	names, err := readNames(filepath.Join(dir, "gen", "names.txt"))
	if err != nil {
		return nil, err
	}
	versions, aliases, err := readVersions(filepath.Join(dir, "gen", "versions.txt"))
	if err != nil {
		return nil, err
	}
	impl, err := implemented(dir)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	for n := range impl {
		if _, ok := index[n]; !ok && strings.HasPrefix(n, "cu") {
			return nil, fmt.Errorf("%s is implemented but not in names.txt", n)
		}
	}
	table, err := procTable(names, index, versions, aliases)
	if err != nil {
		return nil, err
	}
	goSrc, err := format.Source(writeGo(names, index, table))
	if err != nil {
		return nil, err
	}
	nvmlList, nvmlNames, err := nvmlNameList(dir)
	if err != nil {
		return nil, err
	}
	nvmlIndex := map[string]bool{}
	for _, n := range nvmlNames {
		nvmlIndex[n] = true
	}
	for n := range impl {
		if !nvmlIndex[n] && strings.HasPrefix(n, "nvml") {
			return nil, fmt.Errorf("%s is implemented but not in nvml_names.txt (nor in NVML's header)", n)
		}
	}
	return []file{
		{"stubs_gen.c", writeC(names, impl)},
		{"procaddr_gen.go", goSrc},
		{filepath.Join("gen", "nvml_names.txt"), nvmlList},
		{"nvml_stubs_gen.c", writeNVMLStubs(nvmlNames, impl)},
	}, nil
}

func readLines(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if fields := strings.Fields(line); len(fields) > 0 {
			out = append(out, fields)
		}
	}
	return out, sc.Err()
}

var identRE = regexp.MustCompile(`^cu[A-Za-z0-9_]+$`)

func readNames(path string) ([]string, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, l := range lines {
		n := l[0]
		if len(l) != 1 || !identRE.MatchString(n) {
			return nil, fmt.Errorf("names.txt: bad line %q", strings.Join(l, " "))
		}
		if seen[n] {
			return nil, fmt.Errorf("names.txt: %s twice", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type alias struct {
	base, symbol string
	version      int
}

func readVersions(path string) (map[string]int, []alias, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, nil, err
	}
	versions := map[string]int{}
	var aliases []alias
	for _, l := range lines {
		switch {
		case l[0] == "alias" && len(l) == 4:
			v, err := strconv.Atoi(l[2])
			if err != nil {
				return nil, nil, fmt.Errorf("versions.txt: %q: %w", strings.Join(l, " "), err)
			}
			aliases = append(aliases, alias{base: l[1], version: v, symbol: l[3]})
		case len(l) == 2 || len(l) == 3 && l[2] == "inferred":
			v, err := strconv.Atoi(l[1])
			if err != nil {
				return nil, nil, fmt.Errorf("versions.txt: %q: %w", strings.Join(l, " "), err)
			}
			versions[l[0]] = v
		default:
			return nil, nil, fmt.Errorf("versions.txt: bad line %q", strings.Join(l, " "))
		}
	}
	return versions, aliases, nil
}

// exportRE finds the functions the package defines itself: the hand-written
// C files start each exported definition at a line's start with GF_EXPORT,
// or with the macros GF_API(name, ...), GF_API2(name, twin, ...) and
// GF_NVML(name, ...) that expand to one.
var exportRE = regexp.MustCompile(`(?m)^(?:GF_EXPORT\s+(?:[A-Za-z_]+\s+)+\**\s*|GF_API\(\s*|GF_NVML\(\s*|GF_API2\(\s*)((?:cu|nvml)[A-Za-z0-9_]+)\s*[(,]`)

// twinRE finds the second name of GF_API2(name, twin, ...).
var twinRE = regexp.MustCompile(`(?m)^GF_API2\(\s*[A-Za-z0-9_]+\s*,\s*(cu[A-Za-z0-9_]+)\s*,`)

func implemented(dir string) (map[string]bool, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.c"))
	if err != nil {
		return nil, err
	}
	impl := map[string]bool{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_gen.c") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		matches := append(exportRE.FindAllSubmatch(src, -1), twinRE.FindAllSubmatch(src, -1)...)
		for _, m := range matches {
			name := string(m[1])
			if impl[name] {
				return nil, fmt.Errorf("%s: %s defined twice", filepath.Base(p), name)
			}
			impl[name] = true
		}
	}
	if len(impl) == 0 {
		return nil, errors.New("no GF_EXPORT definitions found: wrong -dir?")
	}
	return impl, nil
}

var suffixRE = regexp.MustCompile(`^(.*?)(_v[0-9]+)?(_ptds|_ptsz)?$`)

// split returns a symbol's base name, its _vN version suffix and its
// per-thread suffix.
func split(name string) (base, ver, pt string) {
	m := suffixRE.FindStringSubmatch(name)
	return m[1], m[2], m[3]
}

// variant is one answer for a base name: the symbol from a version on.
type variant struct {
	version int
	symbol  int
}

func procTable(names []string, index map[string]int, versions map[string]int, aliases []alias) (map[string][]variant, error) {
	table := map[string][]variant{}
	for i, n := range names {
		base, ver, pt := split(n)
		switch {
		case pt != "":
			// Per-thread twins are found from the symbol they shadow.
			continue
		case ver == "":
			table[n] = append(table[n], variant{0, i})
		default:
			v, ok := versions[n]
			if !ok {
				return nil, fmt.Errorf("%s has no line in versions.txt", n)
			}
			if _, ok := index[base]; !ok {
				return nil, fmt.Errorf("%s: base name %s is not in names.txt", n, base)
			}
			table[base] = append(table[base], variant{v, i})
		}
	}
	for n := range versions {
		if _, ok := index[n]; !ok {
			return nil, fmt.Errorf("versions.txt names %s, which is not in names.txt", n)
		}
	}
	for _, a := range aliases {
		sym, ok := index[a.symbol]
		if _, base := index[a.base]; !ok || !base {
			return nil, fmt.Errorf("alias %s -> %s: both must be in names.txt", a.base, a.symbol)
		}
		table[a.base] = append(table[a.base], variant{a.version, sym})
	}
	for base, vs := range table {
		slices.SortFunc(vs, func(a, b variant) int { return a.version - b.version })
		for i := 1; i < len(vs); i++ {
			if vs[i].version == vs[i-1].version {
				return nil, fmt.Errorf("%s: two symbols from version %d", base, vs[i].version)
			}
		}
	}
	return table, nil
}

const header = "Code generated by interpose/libcuda/gen from gen/names.txt and gen/versions.txt; DO NOT EDIT."

func writeC(names []string, impl map[string]bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "//go:build linux && cgo\n\n// %s\n\n", header)
	b.WriteString("// Stubs for the driver API names the interposer does not implement: each\n")
	b.WriteString("// returns CUDA_ERROR_NOT_SUPPORTED through gf_stub, which logs the name once.\n")
	b.WriteString("// Arguments are ignored, so one parameterless definition fits every\n")
	b.WriteString("// signature under the x86-64 and AArch64 C calling conventions. This file\n")
	b.WriteString("// includes no prototypes on purpose: the implemented names are declared here\n")
	b.WriteString("// only to take their addresses.\n\n")
	b.WriteString("#include \"gf_stub.h\"\n\n")
	writeStubs(&b, "gf_stub", "GF_STUB", names, impl)
	b.WriteString("\n")
	for _, n := range names {
		if impl[n] {
			fmt.Fprintf(&b, "extern void %s(void);\n", n)
		}
	}
	fmt.Fprintf(&b, "\nconst int gf_symbol_count = %d;\n\n", len(names))
	b.WriteString("// Every driver API name, in the order of symbolNames in procaddr_gen.go.\n")
	b.WriteString("void *const gf_symbols[] = {\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t(void *)%s,\n", n)
	}
	b.WriteString("};\n")
	return b.Bytes()
}

// writeStubs writes PREFIX_count, PREFIX_names (the names not in impl, in
// order) and a MACRO(name, index) stub for each.
func writeStubs(b *bytes.Buffer, prefix, macro string, names []string, impl map[string]bool) {
	var stubs []string
	for _, n := range names {
		if !impl[n] {
			stubs = append(stubs, n)
		}
	}
	fmt.Fprintf(b, "const int %s_count = %d;\n\n", prefix, len(stubs))
	fmt.Fprintf(b, "const char *const %s_names[] = {\n", prefix)
	for _, n := range stubs {
		fmt.Fprintf(b, "\t\"%s\",\n", n)
	}
	b.WriteString("};\n\n")
	for i, n := range stubs {
		fmt.Fprintf(b, "%s(%s, %d)\n", macro, n, i)
	}
}

func writeGo(names []string, index map[string]int, table map[string][]variant) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// %s\n\npackage main\n\n", header)
	b.WriteString("// symbolNames are the driver API names libcuda.so.1 exports, in the order\n")
	b.WriteString("// of gf_symbols in stubs_gen.c.\n")
	b.WriteString("var symbolNames = [...]string{\n")
	for i, n := range names {
		fmt.Fprintf(&b, "\t%q, // %d\n", n, i)
	}
	b.WriteString("}\n\n")
	b.WriteString("// perThreadTwin is, for each symbol, the index of its _ptds or _ptsz\n")
	b.WriteString("// twin, or -1.\n")
	b.WriteString("var perThreadTwin = [...]int16{\n")
	for i, n := range names {
		twin := -1
		if _, _, pt := split(n); pt == "" {
			for _, s := range []string{"_ptds", "_ptsz"} {
				if j, ok := index[n+s]; ok {
					twin = j
				}
			}
		}
		fmt.Fprintf(&b, "\t%d, // %d\n", twin, i)
	}
	b.WriteString("}\n\n")
	b.WriteString("// procTable maps a base name to its symbols, oldest version first.\n")
	b.WriteString("var procTable = map[string][]procVariant{\n")
	bases := make([]string, 0, len(table))
	for k := range table {
		bases = append(bases, k)
	}
	sort.Strings(bases)
	for _, base := range bases {
		fmt.Fprintf(&b, "\t%q: {", base)
		for j, v := range table[base] {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{%d, %d}", v.version, v.symbol)
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}
