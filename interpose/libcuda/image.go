package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Module images arrive as bare pointers (cuModuleLoadData takes no size), so
// the interposer finds each image's length from its format before shipping
// it to the server as it is:
//
//   - a fatbin wrapper (what cudart registers) points at a fatbin;
//   - a fatbin says its header size and the size of its entries;
//   - an ELF cubin ends where its last header table or section ends;
//   - anything else is PTX text, NUL-terminated.

const (
	fatbinMagic  = 0xBA55ED50
	wrapperMagic = 0x466243B1
	maxImageSize = 1 << 30
)

type imageKind int

const (
	imagePTX imageKind = iota
	imageELF
	imageFatbin
	imageWrapper
)

func (k imageKind) String() string {
	return [...]string{"PTX", "ELF cubin", "fatbin", "fatbin wrapper"}[k]
}

var errImage = errors.New("malformed module image")

// classify names an image's format from its first four bytes.
func classify(head [4]byte) imageKind {
	switch {
	case binary.LittleEndian.Uint32(head[:]) == fatbinMagic:
		return imageFatbin
	case binary.LittleEndian.Uint32(head[:]) == wrapperMagic:
		return imageWrapper
	case head == [4]byte{0x7f, 'E', 'L', 'F'}:
		return imageELF
	}
	return imagePTX
}

// fatbinSize reads a fatbin's length from its 16-byte header: u32 magic,
// u16 version, u16 header size, u64 size of the entries that follow.
func fatbinSize(hdr []byte) (uint64, error) {
	if len(hdr) < 16 || binary.LittleEndian.Uint32(hdr) != fatbinMagic {
		return 0, fmt.Errorf("%w: fatbin header", errImage)
	}
	hsize := uint64(binary.LittleEndian.Uint16(hdr[6:]))
	body := binary.LittleEndian.Uint64(hdr[8:])
	if hsize < 16 || body > maxImageSize {
		return 0, fmt.Errorf("%w: fatbin of %d+%d bytes", errImage, hsize, body)
	}
	return hsize + body, nil
}

// elfSize finds the length of a 64-bit little-endian ELF image; read returns
// n bytes at offset off of the image.
func elfSize(read func(off, n uint64) []byte) (uint64, error) {
	h := read(0, 64)
	if h[4] != 2 || h[5] != 1 {
		return 0, fmt.Errorf("%w: only 64-bit little-endian ELF cubins are supported", errImage)
	}
	le := binary.LittleEndian
	phoff, shoff := le.Uint64(h[32:]), le.Uint64(h[40:])
	ehsize := uint64(le.Uint16(h[52:]))
	phentsize, phnum := uint64(le.Uint16(h[54:])), uint64(le.Uint16(h[56:]))
	shentsize, shnum := uint64(le.Uint16(h[58:])), uint64(le.Uint16(h[60:]))
	if phoff > maxImageSize || shoff > maxImageSize || (shnum > 0 && shentsize < 40) {
		return 0, fmt.Errorf("%w: ELF header", errImage)
	}
	end := max(ehsize, 64)
	if phnum > 0 {
		end = max(end, phoff+phnum*phentsize)
	}
	if shnum > 0 {
		end = max(end, shoff+shnum*shentsize)
		for i := range shnum {
			sh := read(shoff+i*shentsize, 40)
			const shtNobits = 8
			if le.Uint32(sh[4:]) == shtNobits {
				continue
			}
			off, size := le.Uint64(sh[24:]), le.Uint64(sh[32:])
			if off > maxImageSize || size > maxImageSize {
				return 0, fmt.Errorf("%w: ELF section %d", errImage, i)
			}
			end = max(end, off+size)
		}
	}
	if end > maxImageSize {
		return 0, fmt.Errorf("%w: ELF image of %d bytes", errImage, end)
	}
	return end, nil
}
