package cuda

import (
	"testing"
)

func TestNormalizeBusID(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"0000:3B:00.0", "0000:3b:00.0", true},     // cuDeviceGetPCIBusId
		{"00000000:3B:00.0", "0000:3b:00.0", true}, // NVML
		{"0000:3b:00.0", "0000:3b:00.0", true},     // sysfs
		{"3b:00.0", "0000:3b:00.0", true},          // no domain
		{"10000:01:00.0", "10000:01:00.0", true},   // VMD domains are longer
		{" 0000:af:1f.7\n", "0000:af:1f.7", true},
		{"", "", false},
		{"0000:3b:00", "", false},     // no function
		{"0000:3b:20.0", "", false},   // device > 31
		{"0000:3b:00.8", "", false},   // function > 7
		{"0000:13b:00.0", "", false},  // bus > 255
		{"0000::00.0", "", false},     // empty bus
		{"zz:00:00.0", "", false},     // not hex
		{"0:0:0:00.0", "", false},     // too many parts
		{"GPU-1234", "", false},       // a UUID
		{"0000:3b:00.0.0", "", false}, // trailing junk
	}
	for _, tt := range tests {
		got, ok := normalizeBusID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("normalizeBusID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestUUID(t *testing.T) {
	u := [16]byte{0x6a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09}
	const s = "GPU-6a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"
	if got := formatUUID(u); got != s {
		t.Fatalf("formatUUID = %q, want %q", got, s)
	}
	tests := []struct {
		in string
		ok bool
	}{
		{s, true},
		{s[4:], true}, // without the prefix
		{"GPU-6A2B3C4D-5E6F-7081-92A3-B4C5D6E7F809", true},
		{"MIG-6a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809", false},
		{"GPU-6a2b3c4d", false},
		{"GPU-6a2b3c4d-5e6f-7081-92a3-b4c5d6e7f8zz", false},
		{"", false},
	}
	for _, tt := range tests {
		got, ok := parseNVMLUUID(tt.in)
		if ok != tt.ok || (ok && got != u) {
			t.Errorf("parseNVMLUUID(%q) = %x, %v; want %x, %v", tt.in, got, ok, u, tt.ok)
		}
	}
}

func TestImageKind(t *testing.T) {
	tests := []struct {
		image []byte
		want  string
	}{
		{[]byte("\x7fELF\x02\x01\x01"), "cubin"},
		{[]byte{0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0}, "fatbin"},
		{[]byte{0xb1, 0x43, 0x62, 0x46, 1, 0, 0, 0}, "fatbin wrapper"},
		{[]byte("//\n.version 7.0\n.target sm_50\n"), "PTX"},
		{[]byte(".visible .entry k()\n{ ret; }"), "PTX"},
		{[]byte("hello"), "text"},
		{[]byte{1, 2, 0, 4}, "binary"},
		{nil, "text"},
	}
	for _, tt := range tests {
		if got := imageKind(tt.image); got != tt.want {
			t.Errorf("imageKind(%q) = %q, want %q", tt.image, got, tt.want)
		}
	}
}

func TestClassifyXid(t *testing.T) {
	tests := []struct {
		xid      uint64
		critical bool
		what     string
	}{
		{13, false, "Xid 13 (graphics engine exception)"},
		{31, false, "Xid 31 (GPU memory page fault)"},
		{43, false, "Xid 43 (GPU stopped processing)"},
		{45, false, "Xid 45 (preemptive cleanup after previous errors)"},
		{68, false, "Xid 68 (video processor exception)"},
		{109, false, "Xid 109 (context switch timeout)"},
		{48, true, "Xid 48 (double-bit ECC error)"},
		{79, true, "Xid 79 (GPU has fallen off the bus)"},
		{95, true, "Xid 95 (uncontained ECC error)"},
		{999, true, "Xid 999"}, // unknown: assume the worst
	}
	for _, tt := range tests {
		critical, what := classifyXid(tt.xid)
		if critical != tt.critical || what != tt.what {
			t.Errorf("classifyXid(%d) = %v, %q; want %v, %q", tt.xid, critical, what, tt.critical, tt.what)
		}
	}
}
