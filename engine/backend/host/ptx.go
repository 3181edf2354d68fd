package host

import (
	"bytes"
	"fmt"
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

// Magic numbers of the binary images the host backend cannot run.
const (
	elfMagic    = "\x7fELF"
	fatbinMagic = "\x50\xed\x55\xba" // 0xBA55ED50 little-endian
	wrapMagic   = "\xb1\x43\x62\x46" // 0x466243B1 little-endian
)

// Limits on what a module may declare. Every size, offset and alignment
// below comes from a tenant's image; each is computed in 64 bits and
// checked against these before it becomes an api.Param (32-bit fields) or
// an allocation.
const (
	// MaxParamBytes is the largest parameter buffer an entry may take:
	// CUDA's 32764 bytes (12.1 and later on Volta and later).
	MaxParamBytes = 32764
	// MaxParamAlign is the largest .align a parameter may ask. PTX allows
	// any power of two; none larger than this means anything in a
	// 32764-byte buffer, and 2^31 would wrap a 32-bit offset.
	MaxParamAlign = 4096
	// MaxGlobalAlign bounds a .global variable's .align: allocations are
	// aligned to allocAlign, and more cannot be given.
	MaxGlobalAlign = allocAlign
	// MaxModuleGlobals and MaxModuleGlobalBytes bound what one module's
	// .global variables may hold, in count and in bytes (rounded up to the
	// allocation granularity, as they are allocated). Loading allocates
	// them, so without a bound a small image could ask for the device.
	MaxModuleGlobals     = 1 << 16
	MaxModuleGlobalBytes = 1 << 30
)

// parsePTX reads the entries and globals of a PTX module. It reads
// declarations only: instruction bodies are the business of the built-in
// kernel an entry binds to.
//
// It is one pass over the image, linear in its length whatever its shape
// (comments, bodies, declarations), and allocates in proportion to the
// declarations it finds, not to the image: module-scope statements are
// gathered, comments removed, into one reused buffer, and function bodies
// are skipped by counting braces.
func parsePTX(image []byte) ([]ptxEntry, []ptxGlobal, error) {
	switch {
	case bytes.HasPrefix(image, []byte(elfMagic)):
		return nil, nil, api.Errorf(api.ErrNotSupported, "the host backend runs PTX modules only; this image is a cubin (ELF)")
	case bytes.HasPrefix(image, []byte(fatbinMagic)), bytes.HasPrefix(image, []byte(wrapMagic)):
		return nil, nil, api.Errorf(api.ErrNotSupported, "the host backend runs PTX modules only; this image is a fatbin")
	}
	src := bytes.TrimRight(image, "\x00")
	p := ptxParser{}
	if err := p.scan(src); err != nil {
		return nil, nil, err
	}
	if !p.version || !p.target {
		return nil, nil, api.Errorf(api.ErrInvalidImage, "not a PTX module: no .version and .target directives")
	}
	return p.entries, p.globals, nil
}

type ptxParser struct {
	stmt            []byte // the module-scope statement being gathered
	entries         []ptxEntry
	globals         []ptxGlobal
	globalBytes     uint64
	version, target bool
}

// scan walks src once. At module scope (depth 0) it gathers each statement
// (up to ';' or a body's '{') into p.stmt and hands it to statement; inside
// bodies it only counts braces. Comments and string literals are skipped
// wherever they are: a brace or a declaration inside one is not one.
func (p *ptxParser) scan(src []byte) error {
	depth := 0     // body nesting
	initDepth := 0 // braces of an initialiser ("= {1, 2}") in the statement
	inInit := false
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			j := bytes.IndexByte(src[i:], '\n')
			if j < 0 {
				i = len(src)
			} else {
				i += j
			}
			p.space(depth)
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			j := bytes.Index(src[i+2:], []byte("*/"))
			if j < 0 {
				return api.Errorf(api.ErrInvalidPTX, "a /* comment is never closed")
			}
			i += 2 + j + 2
			p.space(depth)
			continue
		case c == '"':
			j := bytes.IndexByte(src[i+1:], '"')
			if j < 0 {
				return api.Errorf(api.ErrInvalidPTX, "a string literal is never closed")
			}
			if depth == 0 {
				p.stmt = append(p.stmt, src[i:i+1+j+1]...)
			}
			i += 1 + j + 1
			continue
		}
		if depth > 0 {
			// Inside a body only braces and what hides them matter: jump
			// to the next one.
			j := bytes.IndexAny(src[i:], "{}/\"")
			if j < 0 {
				return api.Errorf(api.ErrInvalidPTX, "a function body is never closed")
			}
			i += j
			switch src[i] {
			case '{':
				depth++
			case '}':
				depth--
			default:
				if src[i] == '/' && (i+1 == len(src) || (src[i+1] != '/' && src[i+1] != '*')) {
					i++ // a lone slash (division is not PTX, but harmless)
				}
				continue
			}
			i++
			continue
		}
		switch {
		case c == '=' && !inInit:
			inInit = true
			p.stmt = append(p.stmt, c)
		case c == '{' && inInit:
			initDepth++
			p.stmt = append(p.stmt, c)
		case c == '}' && inInit && initDepth > 0:
			initDepth--
			p.stmt = append(p.stmt, c)
		case c == ';' && initDepth == 0:
			if err := p.statement(false); err != nil {
				return err
			}
			inInit = false
		case c == '{' && !inInit:
			if err := p.statement(true); err != nil {
				return err
			}
			depth = 1
		case c == '}':
			return api.Errorf(api.ErrInvalidPTX, "a '}' closes nothing")
		default:
			p.stmt = append(p.stmt, c)
		}
		i++
	}
	if depth > 0 {
		return api.Errorf(api.ErrInvalidPTX, "a function body is never closed")
	}
	if initDepth > 0 {
		return api.Errorf(api.ErrInvalidPTX, "an initialiser is never closed")
	}
	return p.statement(false)
}

// space stands in for a comment at module scope: it separates tokens.
func (p *ptxParser) space(depth int) {
	if depth == 0 {
		p.stmt = append(p.stmt, ' ')
	}
}

// statement reads the gathered module-scope statement: the directives
// before it (.version and .target end at a newline, not a ';', so they
// arrive glued to what follows), then an .entry header or a .global
// declaration. body says a '{' ended it.
func (p *ptxParser) statement(body bool) error {
	st := string(p.stmt) // one copy, of one statement
	p.stmt = p.stmt[:0]
	fields := strings.Fields(st)
	for i, f := range fields {
		switch f {
		case ".version":
			p.version = true
		case ".target":
			p.target = true
		case ".entry":
			return p.entry(st)
		case ".func":
			return nil // a device function: its parameters are its callers' business
		case ".global":
			if body {
				return nil // a .global qualifier in a header, not a variable
			}
			return p.global(fields, i)
		}
	}
	return nil
}

// entry reads ".entry name ( params )" from st, which has ".entry" as a
// field of its own: find that field in st itself, since the name and the
// parameter list may be glued ("k(.param ...") or spread over lines.
func (p *ptxParser) entry(st string) error {
	at := 0
	for {
		j := strings.Index(st[at:], ".entry")
		if j < 0 {
			return api.Errorf(api.ErrInvalidPTX, ".entry without a name")
		}
		at += j + len(".entry")
		before := at - len(".entry")
		if (before == 0 || isSpace(st[before-1])) && (at == len(st) || isSpace(st[at])) {
			break
		}
	}
	rest := strings.TrimSpace(st[at:])
	n := 0
	for n < len(rest) && isIdent(rest[n], n == 0) {
		n++
	}
	if n == 0 {
		return api.Errorf(api.ErrInvalidPTX, ".entry without a name")
	}
	e := ptxEntry{name: rest[:n]}
	rest = strings.TrimSpace(rest[n:])
	if strings.HasPrefix(rest, "(") {
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return api.Errorf(api.ErrInvalidPTX, "entry %s: the parameter list is never closed", e.name)
		}
		params, err := paramLayout(rest[1:end])
		if err != nil {
			return api.Errorf(api.ErrInvalidPTX, "entry %s: %v", e.name, err)
		}
		e.params = params
	}
	p.entries = append(p.entries, e)
	return nil
}

// paramLayout lays out a comma-separated list of .param declarations as
// nvcc does: each at the next offset aligned for it. Every quantity is
// 64-bit and bounded (MaxParamAlign, MaxParamBytes) before it is used, so
// no declaration can wrap an offset.
func paramLayout(list string) ([]api.Param, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return nil, nil
	}
	var params []api.Param
	var off uint64
	for decl := range strings.SplitSeq(list, ",") {
		size, align, err := parseDecl(strings.TrimSpace(decl), ".param")
		if err != nil {
			return nil, err
		}
		if align > MaxParamAlign {
			return nil, fmt.Errorf("%q: alignment %d exceeds %d", strings.TrimSpace(decl), align, MaxParamAlign)
		}
		off = (off + align - 1) &^ (align - 1) // off ≤ MaxParamBytes, align ≤ 4096: no wrap
		if size > MaxParamBytes || off > MaxParamBytes-size {
			return nil, fmt.Errorf("%q: parameters of more than %d bytes", strings.TrimSpace(decl), MaxParamBytes)
		}
		params = append(params, api.Param{Offset: uint32(off), Size: uint32(size)})
		off += size
	}
	return params, nil
}

// global reads a .global declaration; fields[i] is ".global".
func (p *ptxParser) global(fields []string, i int) error {
	for _, q := range fields[:i] {
		if q == ".extern" {
			return nil // declared here, defined elsewhere: no storage
		}
	}
	decl := strings.Join(fields[i+1:], " ")
	if j := strings.IndexByte(decl, '='); j >= 0 {
		decl = decl[:j] // initialisers are not supported: globals start zeroed
	}
	size, align, err := parseDecl(strings.TrimSpace(decl), "")
	if err != nil {
		return api.Errorf(api.ErrInvalidPTX, "global: %v", err)
	}
	name := lastName(decl)
	switch {
	case align > MaxGlobalAlign:
		return api.Errorf(api.ErrInvalidPTX, "global %s: alignment %d exceeds %d", name, align, MaxGlobalAlign)
	case len(p.globals) == MaxModuleGlobals:
		return api.Errorf(api.ErrInvalidPTX, "more than %d .global variables in one module", MaxModuleGlobals)
	}
	rounded, ok := roundUp(max(size, 1))
	if !ok || rounded > MaxModuleGlobalBytes-p.globalBytes {
		return api.Errorf(api.ErrInvalidPTX, "global %s: the module's .global variables exceed %d bytes", name, uint64(MaxModuleGlobalBytes))
	}
	p.globalBytes += rounded
	p.globals = append(p.globals, ptxGlobal{name: name, size: size, align: align})
	return nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isIdent(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '$', c == '%':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// parseDecl reads a declaration like ".param .align 8 .b8 p[16]" or
// ".u64 .ptr .global .align 4 x" and returns its size and alignment. The
// size is at most 2^32 elements of at most 8 bytes, so it cannot overflow;
// callers bound it further.
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
			if length, ok := arrayLength(name); ok {
				v, err := strconv.ParseUint(length, 10, 32)
				if err != nil {
					return 0, 0, fmt.Errorf("%q: array without a length, or longer than 2^32", decl)
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

// arrayLength returns the text between the brackets of "name[length]",
// and false if name is not an identifier followed by one pair of them.
func arrayLength(name string) (string, bool) {
	open := strings.IndexByte(name, '[')
	if open <= 0 || !strings.HasSuffix(name, "]") {
		return "", false
	}
	for i := range open {
		if !isIdent(name[i], i == 0) {
			return "", false
		}
	}
	length := name[open+1 : len(name)-1]
	for i := range len(length) {
		if length[i] < '0' || length[i] > '9' {
			return "", false
		}
	}
	return length, true
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
