package cuda

import (
	"errors"
	"reflect"
	"testing"

	"github.com/gpufabric/gpufabric/engine/api"
)

// driverLayout answers cuFuncGetParamInfo as a driver does: the layout's
// entries, then CUDA_ERROR_INVALID_VALUE; fail, when set, is returned for
// index failAt instead.
func driverLayout(layout [][2]uint64, failAt int, fail api.Result) paramQuery {
	return func(i int) (uint64, uint64, api.Result) {
		if fail != api.Success && i == failAt {
			return 0, 0, fail
		}
		if i >= len(layout) {
			return 0, 0, api.ErrInvalidValue
		}
		return layout[i][0], layout[i][1], api.Success
	}
}

func TestParamLayout(t *testing.T) {
	tests := []struct {
		name  string
		query paramQuery
		want  []api.Param
	}{
		{
			name:  "vector_add(float*, float*, float*, int)",
			query: driverLayout([][2]uint64{{0, 8}, {8, 8}, {16, 8}, {24, 4}}, 0, api.Success),
			want:  layoutOf(0, 8, 8, 8, 16, 8, 24, 4),
		},
		{
			name:  "padding between parameters",
			query: driverLayout([][2]uint64{{0, 4}, {8, 8}, {16, 1}, {20, 4}}, 0, api.Success),
			want:  layoutOf(0, 4, 8, 8, 16, 1, 20, 4),
		},
		{
			name:  "no parameters: empty, not nil",
			query: driverLayout(nil, 0, api.Success),
			want:  []api.Param{},
		},
		{
			name:  "driver before 12.4: unknown",
			query: driverLayout(nil, 0, missing),
			want:  nil,
		},
		{
			name:  "error midway: unknown",
			query: driverLayout([][2]uint64{{0, 8}, {8, 8}}, 1, api.ErrInvalidContext),
			want:  nil,
		},
		{
			name:  "a size that wraps off+size: unknown",
			query: driverLayout([][2]uint64{{8, ^uint64(0) - 4}}, 0, api.Success),
			want:  nil,
		},
		{
			name:  "an offset past the buffer: unknown",
			query: driverLayout([][2]uint64{{1 << 40, 8}}, 0, api.Success),
			want:  nil,
		},
		{
			name:  "at CUDA's limit",
			query: driverLayout([][2]uint64{{0, 8}, {8, maxParamBytes - 8}}, 0, api.Success),
			want:  layoutOf(0, 8, 8, maxParamBytes-8),
		},
		{
			name:  "overlapping parameters: unknown",
			query: driverLayout([][2]uint64{{0, 8}, {4, 8}}, 0, api.Success),
			want:  nil,
		},
		{
			name:  "zero-sized parameter: unknown",
			query: driverLayout([][2]uint64{{0, 0}}, 0, api.Success),
			want:  nil,
		},
		{
			name:  "past the parameter space: unknown",
			query: driverLayout([][2]uint64{{32760, 8}}, 0, api.Success),
			want:  nil,
		},
		{
			name:  "a driver that never says stop: unknown",
			query: func(i int) (uint64, uint64, api.Result) { return uint64(i), 1, api.Success },
			want:  nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := paramLayout(tt.query)
			if !reflect.DeepEqual(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("paramLayout = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestCheckParamBuffer(t *testing.T) {
	layout := layoutOf(0, 8, 8, 8, 16, 8, 24, 4)
	tests := []struct {
		name   string
		layout []api.Param
		n      int
		err    error
	}{
		{"exact", layout, 28, nil},
		{"padded to 32", layout, 32, nil},
		{"short", layout, 24, api.ErrInvalidValue},
		{"empty for a kernel with parameters", layout, 0, api.ErrInvalidValue},
		{"no parameters", []api.Param{}, 0, nil},
		{"unknown layout accepts any size", nil, 100, nil},
		{"over CUDA's limit", nil, maxParamBytes + 1, api.ErrInvalidValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkParamBuffer("k", tt.layout, make([]byte, tt.n))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("checkParamBuffer(%d bytes) = %v, want %v", tt.n, err, tt.err)
			}
		})
	}
}

func TestCheckGeometry(t *testing.T) {
	tests := []struct {
		grid, block [3]uint32
		ok          bool
	}{
		{[3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, true},
		{[3]uint32{1 << 20, 1, 1}, [3]uint32{1024, 1, 1}, true},
		{[3]uint32{0, 1, 1}, [3]uint32{1, 1, 1}, false},
		{[3]uint32{1, 1, 1}, [3]uint32{32, 0, 1}, false},
	}
	for _, tt := range tests {
		err := checkGeometry("k", tt.grid, tt.block)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, api.ErrInvalidValue)) {
			t.Errorf("checkGeometry(%v, %v) = %v, want ok=%v", tt.grid, tt.block, err, tt.ok)
		}
	}
}

// layoutOf builds a layout from (offset, size) pairs.
func layoutOf(pairs ...uint32) []api.Param {
	l := []api.Param{}
	for i := 0; i+1 < len(pairs); i += 2 {
		l = append(l, api.Param{Offset: pairs[i], Size: pairs[i+1]})
	}
	return l
}
