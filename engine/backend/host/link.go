package host

import (
	"bytes"

	"github.com/gpufabric/gpufabric/engine/api"
	"github.com/gpufabric/gpufabric/engine/backend"
)

var _ backend.Linker = (*Device)(nil)

// Link links PTX inputs into one PTX module: each input is parsed (a bad
// one fails the link, named), no entry or global may be defined twice, and
// the image is the inputs one after another, which the host backend's PTX
// reader loads as one module. Binary inputs (cubins, fatbins, objects,
// libraries) are refused: the host backend runs PTX only.
func (d *Device) Link(inputs []backend.LinkInput) ([]byte, error) {
	if len(inputs) == 0 {
		return nil, api.Errorf(api.ErrInvalidValue, "a link of no inputs")
	}
	defined := map[string]string{} // symbol -> the input that defines it
	var out bytes.Buffer
	out.WriteString("// linked by the gpufabric host backend\n")
	for _, in := range inputs {
		if in.Type != api.LinkPTX {
			return nil, api.Errorf(api.ErrNotSupported, "link input %q of type %d: the host backend links PTX only", in.Name, in.Type)
		}
		src := bytes.TrimRight(in.Data, "\x00")
		entries, globals, err := parsePTX(src)
		if err != nil {
			return nil, api.Errorf(api.ResultOf(err), "link input %q: %v", in.Name, err)
		}
		names := make([]string, 0, len(entries)+len(globals))
		for _, e := range entries {
			names = append(names, e.name)
		}
		for _, g := range globals {
			names = append(names, g.name)
		}
		for _, n := range names {
			if other, ok := defined[n]; ok {
				return nil, api.Errorf(api.ErrInvalidPTX, "link: %q is defined by both %q and %q", n, other, in.Name)
			}
			defined[n] = in.Name
		}
		out.Write(src)
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}
