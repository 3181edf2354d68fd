package numa

import (
	"errors"
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "0-3,8,10-11\n", want: []int{0, 1, 2, 3, 8, 10, 11}},
		{in: "5", want: []int{5}},
		{in: "0-0", want: []int{0}},
		{in: "", want: nil},   // memory-only node
		{in: "\n", want: nil}, // as read from sysfs
		{in: "3,1,2", want: []int{1, 2, 3}},
		{in: "1-3,2-4", want: []int{1, 2, 3, 4}},
		{in: "a", wantErr: true},
		{in: "3-1", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "1-", wantErr: true},
		{in: "0,,1", wantErr: true},
		{in: "0-31:2", wantErr: true}, // group syntax: input-only, never written by the kernel
	}
	for _, tt := range tests {
		got, err := ParseCPUList(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidCPUList) {
				t.Errorf("ParseCPUList(%q) error = %v, want ErrInvalidCPUList", tt.in, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
		{[]int{11, 10, 3, 2, 1, 0, 8, 8}, "0-3,8,10-11"},
		{[]int{1, 3, 5}, "1,3,5"},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		got := FormatCPUList(in)
		if got != tt.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("FormatCPUList modified its argument: %v", in)
		}
		back, err := ParseCPUList(got)
		if err != nil || FormatCPUList(back) != got {
			t.Errorf("round trip of %q: %v, %v", got, back, err)
		}
	}
}
