//go:build linux

package shm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The region's layout. All multi-byte fields are little-endian; all control
// words are naturally aligned. See doc.go for the picture.
const (
	pageSize = 4096

	regionMagic   = 0x314d485346504721 // "!GPFSHM1" read as a little-endian u64
	regionVersion = 2

	// Header fields.
	offMagic    = 0  // u64
	offVersion  = 8  // u32
	offPage     = 12 // u32: the header's size
	offRingSize = 16 // u64
	offSlabSize = 24 // u64
	offTotal    = 32 // u64

	// Per-direction control blocks. Words written by different sides sit
	// 128 bytes apart, beyond the reach of adjacent-line prefetch.
	offControl      = 256
	controlSize     = 512
	ctlTail         = 128 // u64, consumer: ring bytes consumed
	ctlSlabTail     = 136 // u64, consumer: slab bytes freed
	ctlDataSeq      = 256 // u32 futex, consumer sleeps on it
	ctlDataWaiters  = 260 // u32, 1 while the consumer sleeps or is about to
	ctlSpaceSeq     = 384 // u32 futex, producer sleeps on it
	ctlSpaceWaiters = 388 // u32, 1 while the producer sleeps or is about to

	// Directions.
	dirCall  = 0 // client → server
	dirReply = 1 // server → client
)

// Records. Every record starts at a 64-byte aligned ring position (a cache
// line) and takes its length rounded up to 64, so a small frame is one line
// and its arrival one line's transfer. A record never wraps: the producer
// pads to the ring's end with a pad record when the record would not fit
// before it.
//
//	0  u32 seq      record sequence number, one more than the previous
//	                record's, never 0; written last, it commits the record
//	4  u32 len      record length including this header, before rounding
//	8  u16 kind     kindFrame, kindChunk, kindPad
//	10 u16 flags    zero
//	12 u32 bodyLen  frame: the body's length
//	16 u64 n        frame: the payload's length; chunk: the chunk's length
//	24 ...          frame: the inline bytes (body, then payload, both or the
//	                first part); chunk: u64 the chunk's offset in the slab
//
// The consumer polls the commit word where the next record will start.
// Before committing a record the producer clears the commit word of the
// slot after it, so the word a consumer polls holds 0 until the record
// there is committed: never a stale sequence number or an old record's
// bytes. Anything but 0 or the sequence number due is corruption.
//
// A frame's body and payload form one stream of bodyLen+payloadLen bytes:
// the first len-recHeader bytes travel inline, the rest in the chunk
// records that follow the frame, in order.
const (
	recHeader   = 24
	recChunk    = 32
	recOffSeq   = 0
	recOffLen   = 4
	recOffKind  = 8
	recOffBody  = 12
	recOffN     = 16
	recOffSlab  = 24
	kindFrame   = 1
	kindChunk   = 2
	kindPad     = 3
	recAlign    = 64
	maxChunkLen = 1 << 20
)

func alignRec(n uint64) uint64 { return (n + recAlign - 1) &^ (recAlign - 1) }

// nextSeq is the sequence number after seq; 0 is skipped, as it marks a
// slot not yet committed.
func nextSeq(seq uint32) uint32 {
	if seq++; seq == 0 {
		seq = 1
	}
	return seq
}

// geometry is the region's sizes, as the server chose them.
type geometry struct {
	ring, slab uint64
}

func (g geometry) total() uint64 { return pageSize + 2*g.ring + 2*g.slab }

func (g geometry) ringOff(dir int) uint64 { return pageSize + uint64(dir)*g.ring }
func (g geometry) slabOff(dir int) uint64 { return pageSize + 2*g.ring + uint64(dir)*g.slab }

// valid checks sizes read from a header: the client trusts nothing.
func (g geometry) valid() error {
	if g.ring < minRingSize || g.ring > maxRingSize || bits.OnesCount64(g.ring) != 1 {
		return fmt.Errorf("ring size %d is not a power of two in [%d, %d]", g.ring, minRingSize, maxRingSize)
	}
	if g.slab < minSlabSize || g.slab > maxSlabSize || g.slab%pageSize != 0 {
		return fmt.Errorf("slab size %d is not a multiple of %d in [%d, %d]", g.slab, pageSize, minSlabSize, maxSlabSize)
	}
	return nil
}

// writeHeader fills a fresh region's header page.
func writeHeader(mem []byte, g geometry) {
	le := binary.LittleEndian
	le.PutUint64(mem[offMagic:], regionMagic)
	le.PutUint32(mem[offVersion:], regionVersion)
	le.PutUint32(mem[offPage:], pageSize)
	le.PutUint64(mem[offRingSize:], g.ring)
	le.PutUint64(mem[offSlabSize:], g.slab)
	le.PutUint64(mem[offTotal:], g.total())
}

// readHeader checks a mapped region's header against its size.
func readHeader(mem []byte) (geometry, error) {
	if len(mem) < pageSize {
		return geometry{}, fmt.Errorf("region of %d bytes has no header page", len(mem))
	}
	le := binary.LittleEndian
	if m := le.Uint64(mem[offMagic:]); m != regionMagic {
		return geometry{}, fmt.Errorf("bad magic %#x", m)
	}
	if v := le.Uint32(mem[offVersion:]); v != regionVersion {
		return geometry{}, fmt.Errorf("version %d, want %d", v, regionVersion)
	}
	if p := le.Uint32(mem[offPage:]); p != pageSize {
		return geometry{}, fmt.Errorf("header of %d bytes, want %d", p, pageSize)
	}
	g := geometry{ring: le.Uint64(mem[offRingSize:]), slab: le.Uint64(mem[offSlabSize:])}
	if err := g.valid(); err != nil {
		return geometry{}, err
	}
	if t := le.Uint64(mem[offTotal:]); t != g.total() || t != uint64(len(mem)) {
		return geometry{}, fmt.Errorf("region of %d bytes, header says %d, sizes say %d", len(mem), t, g.total())
	}
	return g, nil
}
