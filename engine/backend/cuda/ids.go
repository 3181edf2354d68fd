package cuda

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// The driver and NVML name the same GPU in different spellings: CUDA gives
// "0000:3B:00.0" and 16 raw UUID bytes, NVML "00000000:3B:00.0" and
// "GPU-6a2b...". Matching a CUDA device to its NVML device goes through the
// canonical forms below.

// normalizeBusID returns a PCI address in sysfs's spelling, "0000:3b:00.0":
// lower-case hex, the domain at least four digits (it can be longer where
// the platform has more than 65536 domains, as sysfs prints it), the
// domain optional on input. ok is false for anything else.
func normalizeBusID(s string) (id string, ok bool) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ":")
	var dom, bus, rest string
	switch len(parts) {
	case 3:
		dom, bus, rest = parts[0], parts[1], parts[2]
	case 2:
		dom, bus, rest = "0", parts[0], parts[1]
	default:
		return "", false
	}
	dev, fn, found := strings.Cut(rest, ".")
	if !found {
		return "", false
	}
	d, err1 := strconv.ParseUint(dom, 16, 32)
	b, err2 := strconv.ParseUint(bus, 16, 8)
	v, err3 := strconv.ParseUint(dev, 16, 5)
	f, err4 := strconv.ParseUint(fn, 16, 3)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || bus == "" || dev == "" || fn == "" {
		return "", false
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", d, b, v, f), true
}

// parseNVMLUUID reads NVML's "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
// (or the same without the prefix) into the 16 bytes cuDeviceGetUuid gives.
// MIG instances ("MIG-...") are not GPUs and do not parse.
func parseNVMLUUID(s string) (u [16]byte, ok bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "GPU-")
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 32 {
		return u, false
	}
	if _, err := hex.Decode(u[:], []byte(s)); err != nil {
		return u, false
	}
	return u, true
}

// formatUUID spells a CUDA UUID the way NVML and nvidia-smi do.
func formatUUID(u [16]byte) string {
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// imageKind names a module image's format from its first bytes, for error
// messages: a failed load says what was offered.
func imageKind(b []byte) string {
	switch {
	case len(b) >= 4 && b[0] == 0x7f && b[1] == 'E' && b[2] == 'L' && b[3] == 'F':
		return "cubin"
	case len(b) >= 4 && b[0] == 0x50 && b[1] == 0xed && b[2] == 0x55 && b[3] == 0xba:
		return "fatbin" // 0xBA55ED50, little-endian
	case len(b) >= 4 && b[0] == 0xb1 && b[1] == 0x43 && b[2] == 0x62 && b[3] == 0x46:
		return "fatbin wrapper" // 0x466243B1: a host-side wrapper, not loadable
	}
	for _, c := range b[:min(len(b), 4096)] {
		if c == 0 {
			return "binary"
		}
	}
	if strings.Contains(string(b[:min(len(b), 4096)]), ".version") || strings.Contains(string(b[:min(len(b), 4096)]), ".entry") {
		return "PTX"
	}
	return "text"
}
