package numa

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseCPUList parses the kernel's list format ("0-3,8,10-11", as in
// cpulist, cpu/online and cpuset files) into ascending, distinct CPU
// numbers. An empty list (a memory-only node) gives an empty result.
func ParseCPUList(s string) ([]int, error) {
	cpus, err := parseCPUList(s)
	if err != nil {
		return nil, fmt.Errorf("numa: %w", err)
	}
	return cpus, nil
}

// parseCPUList is ParseCPUList with errors its callers put in context.
func parseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("%w %q: bad CPU %q", ErrInvalidCPUList, s, lo)
		}
		last := first
		if isRange {
			last, err = strconv.Atoi(hi)
			if err != nil || last < first {
				return nil, fmt.Errorf("%w %q: bad range %q", ErrInvalidCPUList, s, part)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// FormatCPUList writes CPUs in the kernel's list format, the inverse of
// ParseCPUList. The argument is not modified.
func FormatCPUList(cpus []int) string {
	sorted := slices.Compact(slices.Sorted(slices.Values(cpus)))
	var b strings.Builder
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1] == sorted[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(sorted[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(sorted[j]))
		}
		i = j + 1
	}
	return b.String()
}
