package rdma

import "encoding/binary"

// A message is one SEND: a 16-byte header and, for frame data, bytes.
//
//	u8 kind | u8 flags | u16 grants | u32 a | u64 b | data...
//
// grants returns receive buffers the sender has posted again since its
// last message: the peer may send that many more. Every message carries
// them, so credits flow back with traffic and a message of their own
// (kindGrant) is needed only when there is none.
const hdrSize = 16

const (
	// Frame data, delivered in order to Recv and ReadPayload.
	kindFrame  = 1 // a: body length, b: payload length; flags: mode; data: body, then eager payload
	kindFrag   = 2 // data: the frame's next bytes
	kindStaged = 3 // a: length, b: offset in the receiver's staging of a payload piece written there
	kindDone   = 4 // the payload has been written where the receiver's CTS said

	// Control, handled as it arrives.
	kindGrant   = 5 // only grants
	kindRelease = 6 // a: staging slots the receiver has emptied
	kindCTS     = 7 // a: rkey, b: address to write the payload to; flags: ctsFragments, ctsDiscard
)

// Frame modes: how a frame's payload travels.
const (
	modeEager  = 0 // in the frame's messages, copied through receive buffers
	modeStaged = 1 // RDMA-written by the sender into the receiver's staging
	modeRTS    = 2 // written by the sender where the receiver's CTS says
	modeMask   = 3

	// flagLow says the sender has too few credits left to send anything but
	// a grant: the receiver should grant what it can now.
	flagLow = 0x80
)

// CTS answers.
const (
	ctsWrite     = 0 // write to (b, a)
	ctsFragments = 1 // the receiver could not register: send the payload as messages
	ctsDiscard   = 2 // the receiver does not want the payload
)

type header struct {
	kind, flags byte
	grants      uint16
	a           uint32
	b           uint64
}

func (h header) put(p []byte) {
	p[0], p[1] = h.kind, h.flags
	binary.LittleEndian.PutUint16(p[2:], h.grants)
	binary.LittleEndian.PutUint32(p[4:], h.a)
	binary.LittleEndian.PutUint64(p[8:], h.b)
}

func parseHeader(p []byte) (header, bool) {
	if len(p) < hdrSize {
		return header{}, false
	}
	return header{
		kind:   p[0],
		flags:  p[1],
		grants: binary.LittleEndian.Uint16(p[2:]),
		a:      binary.LittleEndian.Uint32(p[4:]),
		b:      binary.LittleEndian.Uint64(p[8:]),
	}, true
}
