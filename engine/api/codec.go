package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// ErrMalformed is returned (wrapped) for a body that cannot be decoded: too
// short, an unknown opcode, a length past the end, trailing bytes.
var ErrMalformed = errors.New("malformed message")

// Encoder appends little-endian fields to a byte slice. The zero value is
// ready; Bytes returns what was written. An Encoder never fails: limits are
// the decoder's to enforce.
type Encoder struct {
	buf []byte
	_   [40]byte // to a cache line of its own: see encoders
}

// NewEncoder starts writing at the end of buf, reusing its capacity.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes returns the encoded message. It aliases the encoder's buffer.
func (e *Encoder) Bytes() []byte { return e.buf }

// Reset empties the encoder, keeping its buffer's capacity.
func (e *Encoder) Reset() { e.buf = e.buf[:0] }

func (e *Encoder) U8(v uint8)    { e.buf = append(e.buf, v) }
func (e *Encoder) U16(v uint16)  { e.buf = binary.LittleEndian.AppendUint16(e.buf, v) }
func (e *Encoder) U32(v uint32)  { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }
func (e *Encoder) U64(v uint64)  { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }
func (e *Encoder) I32(v int32)   { e.U32(uint32(v)) }
func (e *Encoder) F32(v float32) { e.U32(math.Float32bits(v)) }
func (e *Encoder) F64(v float64) { e.U64(math.Float64bits(v)) }

func (e *Encoder) Bool(v bool) {
	if v {
		e.U8(1)
	} else {
		e.U8(0)
	}
}

// Blob writes a u32 length and the bytes.
func (e *Encoder) Blob(b []byte) {
	e.U32(uint32(len(b)))
	e.buf = append(e.buf, b...)
}

// String writes a u16 length and the bytes; longer strings are cut at
// MaxString, which the decoder would refuse anyway.
func (e *Encoder) String(s string) {
	if len(s) > MaxString {
		s = s[:MaxString]
	}
	e.U16(uint16(len(s)))
	e.buf = append(e.buf, s...)
}

// MaxString bounds every string field: names, tokens, identities.
const MaxString = 4096

// Decoder reads little-endian fields from a body. The first failure sticks:
// later reads return zero values, and Err reports it, so message decoders
// read every field and check once.
type Decoder struct {
	buf []byte
	err error
	_   [24]byte // to a cache line of its own: see encoders
}

// NewDecoder reads from b. Slices returned by Blob alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Encoders and decoders handed to a Message escape to the heap (the
// compiler cannot see through the interface); every call and reply needs
// one of each, so they are recycled: over shared memory a call costs about
// a microsecond, and four allocations were a tenth of it. Each fills a
// cache line (64 bytes, a size class whose objects are line-aligned):
// smaller, a client's and a server's in one process shared lines, and each
// encode waited 40 ns for the other side's core to give its line back.
var (
	encoders = sync.Pool{New: func() any { return new(Encoder) }}
	decoders = sync.Pool{New: func() any { return new(Decoder) }}
)

func getEncoder(buf []byte) *Encoder {
	e := encoders.Get().(*Encoder)
	e.buf = buf
	return e
}

// release returns the encoded bytes and recycles e.
func (e *Encoder) release() []byte {
	b := e.buf
	e.buf = nil
	encoders.Put(e)
	return b
}

func getDecoder(b []byte) *Decoder {
	d := decoders.Get().(*Decoder)
	d.buf, d.err = b, nil
	return d
}

// release finishes decoding (see Finish), recycles d and returns the
// result.
func (d *Decoder) release() error {
	err := d.Finish()
	d.buf, d.err = nil, nil
	decoders.Put(d)
	return err
}

// Err is the first failure, wrapping ErrMalformed, or nil.
func (d *Decoder) Err() error { return d.err }

// Finish checks that every byte was consumed.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.buf) != 0 {
		d.err = malformedf("%d trailing bytes", len(d.buf))
	}
	return d.err
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.buf) < n {
		d.err = malformedf("need %d bytes, have %d", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *Decoder) U8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *Decoder) U16() uint16 {
	if b := d.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *Decoder) U32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *Decoder) U64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *Decoder) I32() int32   { return int32(d.U32()) }
func (d *Decoder) F32() float32 { return math.Float32frombits(d.U32()) }
func (d *Decoder) F64() float64 { return math.Float64frombits(d.U64()) }

func (d *Decoder) Bool() bool {
	switch v := d.U8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		if d.err == nil {
			d.err = malformedf("bool byte %d", v)
		}
		return false
	}
}

// Blob reads a u32 length and that many bytes, aliasing the input.
func (d *Decoder) Blob() []byte {
	n := d.U32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.buf)) {
		d.err = malformedf("blob of %d bytes, %d left", n, len(d.buf))
		return nil
	}
	return d.take(int(n))
}

// String reads a u16 length and that many bytes, at most MaxString.
func (d *Decoder) String() string {
	n := int(d.U16())
	if d.err != nil {
		return ""
	}
	if n > MaxString {
		d.err = malformedf("string of %d bytes exceeds %d", n, MaxString)
		return ""
	}
	return string(d.take(n))
}

// Count reads a u32 element count and checks that count elements of at
// least minSize bytes each could fit in what is left, so a hostile count
// cannot make the caller allocate more than the body's size.
func (d *Decoder) Count(minSize int) int {
	n := d.U32()
	if d.err != nil {
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(d.buf)) {
		d.err = malformedf("count %d of %d-byte elements, %d bytes left", n, minSize, len(d.buf))
		return 0
	}
	return int(n)
}

type malformedError struct{ detail string }

func (e *malformedError) Error() string   { return "malformed message: " + e.detail }
func (e *malformedError) Is(t error) bool { return t == ErrMalformed }

func malformedf(format string, args ...any) error {
	return &malformedError{detail: fmt.Sprintf(format, args...)}
}
