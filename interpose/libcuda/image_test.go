package main

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		head [4]byte
		want imageKind
	}{
		{[4]byte{0x50, 0xED, 0x55, 0xBA}, imageFatbin},
		{[4]byte{0xB1, 0x43, 0x62, 0x46}, imageWrapper},
		{[4]byte{0x7f, 'E', 'L', 'F'}, imageELF},
		{[4]byte{'/', '/', ' ', 'x'}, imagePTX},
		{[4]byte{'.', 'v', 'e', 'r'}, imagePTX},
	} {
		if got := classify(tc.head); got != tc.want {
			t.Errorf("classify(%x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}

func TestFatbinSize(t *testing.T) {
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr, fatbinMagic)
	binary.LittleEndian.PutUint16(hdr[4:], 1)
	binary.LittleEndian.PutUint16(hdr[6:], 16)
	binary.LittleEndian.PutUint64(hdr[8:], 4096)
	if n, err := fatbinSize(hdr); err != nil || n != 16+4096 {
		t.Errorf("fatbinSize = %d, %v; want 4112", n, err)
	}
	binary.LittleEndian.PutUint64(hdr[8:], 1<<40)
	if _, err := fatbinSize(hdr); !errors.Is(err, errImage) {
		t.Errorf("huge fatbin: err = %v", err)
	}
	if _, err := fatbinSize(hdr[:8]); !errors.Is(err, errImage) {
		t.Errorf("short header: err = %v", err)
	}
}

// elfImage builds a minimal ELF64 image: header, one PROGBITS section whose
// data ends at dataEnd, one NOBITS section claiming more, and the section
// header table at shoff.
func elfImage(dataEnd, shoff uint64) []byte {
	img := make([]byte, shoff+3*64)
	copy(img, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
	le := binary.LittleEndian
	le.PutUint64(img[40:], shoff)
	le.PutUint16(img[52:], 64)
	le.PutUint16(img[58:], 64)
	le.PutUint16(img[60:], 3)
	sh := func(i int, typ uint32, off, size uint64) {
		b := img[shoff+uint64(i)*64:]
		le.PutUint32(b[4:], typ)
		le.PutUint64(b[24:], off)
		le.PutUint64(b[32:], size)
	}
	sh(1, 1, 64, dataEnd-64)
	sh(2, 8, dataEnd, 1<<20) // .bss-like: occupies no bytes in the file
	return img
}

func TestELFSize(t *testing.T) {
	read := func(img []byte) func(off, n uint64) []byte {
		return func(off, n uint64) []byte { return img[off : off+n] }
	}
	// Section headers last, as linkers place them.
	img := elfImage(1000, 1024)
	if n, err := elfSize(read(img)); err != nil || n != uint64(len(img)) {
		t.Errorf("headers last: %d, %v; want %d", n, err, len(img))
	}
	// Section data past the header table.
	img = elfImage(4000, 256)
	img = append(img, make([]byte, 4000-len(img))...)
	if n, err := elfSize(read(img)); err != nil || n != 4000 {
		t.Errorf("data last: %d, %v; want 4000", n, err)
	}
	img[4] = 1 // 32-bit
	if _, err := elfSize(read(img)); !errors.Is(err, errImage) {
		t.Errorf("32-bit ELF: err = %v", err)
	}
}
