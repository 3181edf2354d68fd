package host

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/gpufabric/gpufabric/engine/api"
)

// ptxEntry is a kernel entry point of a PTX module and its parameters.
type ptxEntry struct {
	name   string
	params []api.Param
}

// ptxGlobal is a module-scope .global variable.
type ptxGlobal struct {
	name  string
	size  uint64
	align uint64
}

var (
	ptxComment    = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)
	ptxEntryDecl  = regexp.MustCompile(`\.entry\s+([A-Za-z_$%][\w$%]*)\s*(\(([^)]*)\))?`)
	ptxGlobalDecl = regexp.MustCompile(`(?m)^\s*((?:\.(?:visible|weak|common|extern)\s+)*)\.global\s+([^;{]*);`)
	ptxArray      = regexp.MustCompile(`^([A-Za-z_$%][\w$%]*)\s*\[\s*(\d*)\s*\]$`)
)

// Magic numbers of the binary images the host backend cannot run.
const (
	elfMagic    = "\x7fELF"
	fatbinMagic = "\x50\xed\x55\xba" // 0xBA55ED50 little-endian
	wrapMagic   = "\xb1\x43\x62\x46" // 0x466243B1 little-endian
)

// parsePTX reads the entries and globals of a PTX module. It reads
// declarations only: instruction bodies are the business of the built-in
// kernel an entry binds to.
func parsePTX(image []byte) ([]ptxEntry, []ptxGlobal, error) {
	switch {
	case bytes.HasPrefix(image, []byte(elfMagic)):
		return nil, nil, api.Errorf(api.ErrNotSupported, "the host backend runs PTX modules only; this image is a cubin (ELF)")
	case bytes.HasPrefix(image, []byte(fatbinMagic)), bytes.HasPrefix(image, []byte(wrapMagic)):
		return nil, nil, api.Errorf(api.ErrNotSupported, "the host backend runs PTX modules only; this image is a fatbin")
	}
	src := string(bytes.TrimRight(image, "\x00"))
	src = ptxComment.ReplaceAllString(src, " ")
	if !strings.Contains(src, ".version") || !strings.Contains(src, ".target") {
		return nil, nil, api.Errorf(api.ErrInvalidImage, "not a PTX module: no .version and .target directives")
	}
	var entries []ptxEntry
	for _, m := range ptxEntryDecl.FindAllStringSubmatch(src, -1) {
		e := ptxEntry{name: m[1]}
		var off uint32
		if list := strings.TrimSpace(m[3]); list != "" {
			for _, decl := range strings.Split(list, ",") {
				size, align, err := parseDecl(strings.TrimSpace(decl), ".param")
				if err != nil {
					return nil, nil, api.Errorf(api.ErrInvalidPTX, "entry %s: %v", e.name, err)
				}
				off = (off + uint32(align) - 1) &^ (uint32(align) - 1)
				e.params = append(e.params, api.Param{Offset: off, Size: uint32(size)})
				off += uint32(size)
			}
		}
		entries = append(entries, e)
	}
	var globals []ptxGlobal
	for _, m := range ptxGlobalDecl.FindAllStringSubmatch(src, -1) {
		if strings.Contains(m[1], ".extern") {
			continue // declared here, defined elsewhere: no storage
		}
		decl := m[2]
		if i := strings.IndexByte(decl, '='); i >= 0 {
			decl = decl[:i] // initialisers are not supported: globals start zeroed
		}
		size, align, err := parseDecl(strings.TrimSpace(decl), "")
		if err != nil {
			return nil, nil, api.Errorf(api.ErrInvalidPTX, "global: %v", err)
		}
		globals = append(globals, ptxGlobal{name: lastName(decl), size: size, align: align})
	}
	return entries, globals, nil
}

// parseDecl reads a declaration like ".param .align 8 .b8 p[16]" or
// ".u64 .ptr .global .align 4 x" and returns its size and alignment.
func parseDecl(decl, space string) (size, align uint64, err error) {
	fields := strings.Fields(decl)
	if space != "" {
		if len(fields) == 0 || fields[0] != space {
			return 0, 0, fmt.Errorf("%q is not a %s declaration", decl, space)
		}
		fields = fields[1:]
	}
	var elem uint64
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		switch {
		case f == ".align":
			if i+1 == len(fields) {
				return 0, 0, fmt.Errorf("%q: .align without a value", decl)
			}
			i++
			a, err := strconv.ParseUint(fields[i], 10, 32)
			if err != nil || a == 0 || a&(a-1) != 0 {
				return 0, 0, fmt.Errorf("%q: bad alignment %q", decl, fields[i])
			}
			align = a
		case typeSize(f) > 0:
			elem = typeSize(f)
		case strings.HasPrefix(f, "."):
			// .ptr and state spaces qualify the pointee, not the storage.
		default:
			n := uint64(1)
			name := strings.Join(fields[i:], "")
			if m := ptxArray.FindStringSubmatch(name); m != nil {
				v, err := strconv.ParseUint(m[2], 10, 32)
				if err != nil {
					return 0, 0, fmt.Errorf("%q: array without a length", decl)
				}
				n = v
			}
			if elem == 0 {
				return 0, 0, fmt.Errorf("%q: no type", decl)
			}
			return elem * n, max(align, elem), nil
		}
	}
	if elem == 0 {
		return 0, 0, fmt.Errorf("%q: no type", decl)
	}
	// An unnamed parameter, as in a prototype.
	return elem, max(align, elem), nil
}

func typeSize(t string) uint64 {
	switch t {
	case ".u8", ".s8", ".b8", ".pred":
		return 1
	case ".u16", ".s16", ".b16", ".f16":
		return 2
	case ".u32", ".s32", ".b32", ".f32", ".f16x2", ".bf16x2":
		return 4
	case ".u64", ".s64", ".b64", ".f64":
		return 8
	}
	return 0
}

func lastName(decl string) string {
	fields := strings.Fields(decl)
	if len(fields) == 0 {
		return ""
	}
	name := fields[len(fields)-1]
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	return name
}

// baseName returns the identifier of an Itanium-mangled C++ name
// ("_Z10vector_addPKfS1_Pfi" → "vector_add"), or name itself, so kernels
// compiled without extern "C" bind to their built-ins too.
func baseName(name string) string {
	if !strings.HasPrefix(name, "_Z") {
		return name
	}
	rest := name[2:]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(rest[:i])
	if err != nil || n <= 0 || i+n > len(rest) {
		return name
	}
	return rest[i : i+n]
}
