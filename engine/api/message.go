package api

import (
	"encoding/binary"
	"fmt"
)

// Magic opens every Hello: "GPUF" in little-endian byte order.
const Magic uint32 = 0x46555047

// Version is the protocol version. A server refuses a client whose major
// version differs. Version 2 added the bulk lane (JoinBulk, the bulk flags,
// HelloReply.BulkKey); version 3, Goodbye.
const Version uint16 = 3

// Op identifies a call.
type Op uint16

// Flags qualify a message.
type Flags uint16

const (
	// FlagAsync marks a request that wants no reply. Its failure is latched
	// and returned by the session's next synchronising call.
	FlagAsync Flags = 1 << iota
	// FlagReply marks a reply.
	FlagReply
	// FlagBulkPayload marks a frame whose payload travels on the session's
	// bulk lane: the frame itself carries none, and the payload is that of
	// the next frame on the bulk lane, whose header repeats this one's op
	// and sequence number. Each side sends its bulk frames in the order of
	// the frames that announce them.
	FlagBulkPayload
	// FlagBulkReply asks, on a request, for the reply's payload to travel
	// on the bulk lane (the reply then carries FlagBulkPayload).
	FlagBulkReply
)

// HeaderSize is the size of the Header that opens every body.
const HeaderSize = 8

// Header opens every body: the call, its flags and the client's sequence
// number, which the reply echoes.
type Header struct {
	Op    Op
	Flags Flags
	Seq   uint32
}

// Message is one request or reply layout. Encode appends the fields; Decode
// reads them, recording failures in the Decoder. Slices a decoded message
// holds alias the body it was decoded from: copy what must outlive it.
type Message interface {
	Op() Op
	Encode(*Encoder)
	Decode(*Decoder)
}

// AppendRequest appends the body of request m to buf.
func AppendRequest(buf []byte, seq uint32, flags Flags, m Message) []byte {
	e := getEncoder(buf)
	e.Request(seq, flags, m)
	return e.release()
}

// Request appends the body of request m. A caller that keeps its own
// encoders (with their buffers) saves AppendRequest's trip to the pool.
func (e *Encoder) Request(seq uint32, flags Flags, m Message) {
	writeHeader(e, Header{Op: m.Op(), Flags: flags &^ FlagReply, Seq: seq})
	m.Encode(e)
}

// AppendReply appends the body of a reply to the request (op, seq): the
// Result of err, and then either m's fields (on success, when m is not nil)
// or the error's detail text, so a client sees why, not just what. flags
// are added to FlagReply.
func AppendReply(buf []byte, op Op, seq uint32, flags Flags, err error, m Message) []byte {
	// Only a message's fields need an encoder from the pool (see
	// encoders): most replies carry none, and this one stays on the stack.
	e := Encoder{buf: buf}
	if e.replyStatus(op, seq, flags, err) && m != nil {
		pe := getEncoder(e.buf)
		m.Encode(pe)
		return pe.release()
	}
	return e.buf
}

// Reply appends the body of a reply, as AppendReply does. A caller that
// keeps its own encoders (with their buffers) saves AppendReply's trip to
// the pool.
func (e *Encoder) Reply(op Op, seq uint32, flags Flags, err error, m Message) {
	if e.replyStatus(op, seq, flags, err) && m != nil {
		m.Encode(e)
	}
}

// replyStatus appends a reply's header and result, and the error's detail
// when err is not nil; it reports whether the call succeeded, when the
// reply's fields follow.
func (e *Encoder) replyStatus(op Op, seq uint32, flags Flags, err error) bool {
	writeHeader(e, Header{Op: op, Flags: flags | FlagReply, Seq: seq})
	status := ResultOf(err)
	e.U32(uint32(status))
	if status == Success {
		return true
	}
	var detail string
	if d, ok := err.(*Error); ok {
		detail = d.Detail
	} else if _, bare := err.(Result); !bare {
		detail = err.Error()
	}
	e.String(detail)
	return false
}

// AppendBulk appends the body of the bulk-lane frame that carries the
// payload of the frame whose header is h: a bare header repeating h's op
// and sequence number, marked FlagBulkPayload (and FlagReply for a reply's).
func AppendBulk(buf []byte, h Header) []byte {
	e := Encoder{buf: buf}
	writeHeader(&e, bulkHeader(h))
	return e.buf
}

func bulkHeader(h Header) Header {
	return Header{Op: h.Op, Flags: h.Flags&FlagReply | FlagBulkPayload, Seq: h.Seq}
}

// CheckBulk checks that body, read from the bulk lane, is the one AppendBulk
// makes for the frame whose header is h. A mismatch means the lanes are out
// of step.
func CheckBulk(body []byte, h Header) error {
	got, fields, err := ReadHeader(body)
	if err != nil {
		return fmt.Errorf("bulk lane: %w", err)
	}
	if want := bulkHeader(h); got != want || len(fields) != 0 {
		return fmt.Errorf("bulk lane out of step: frame (%v #%d, flags %#x, %d field bytes) for %v #%d",
			got.Op, got.Seq, got.Flags, len(fields), h.Op, h.Seq)
	}
	return nil
}

func writeHeader(e *Encoder, h Header) {
	e.U16(uint16(h.Op))
	e.U16(uint16(h.Flags))
	e.U32(h.Seq)
}

// ReadHeader splits a body into its header and the fields after it.
func ReadHeader(body []byte) (Header, []byte, error) {
	if len(body) < HeaderSize {
		return Header{}, nil, malformedf("body of %d bytes is shorter than a header", len(body))
	}
	le := binary.LittleEndian
	h := Header{Op: Op(le.Uint16(body)), Flags: Flags(le.Uint16(body[2:])), Seq: le.Uint32(body[4:])}
	return h, body[HeaderSize:], nil
}

// DecodeRequest decodes the fields of a request whose header is h.
func DecodeRequest(h Header, fields []byte) (Message, error) {
	d := getDecoder(nil)
	m, err := d.Request(h, fields)
	d.release()
	return m, err
}

// Request decodes, with d, the fields of a request whose header is h. A
// caller that keeps its own decoder saves DecodeRequest's trip to the pool.
func (d *Decoder) Request(h Header, fields []byte) (Message, error) {
	m := NewRequest(h.Op)
	if m == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownOp, uint16(h.Op))
	}
	if err := d.RequestInto(h, fields, m); err != nil {
		return nil, err
	}
	return m, nil
}

// RequestInto decodes, with d, the fields of a request whose header is h
// into m, a message of h's op, which it overwrites whole: a caller that is
// done with a message before the next arrives can decode every one of an
// op into the same.
func (d *Decoder) RequestInto(h Header, fields []byte, m Message) error {
	switch {
	case h.Flags&FlagReply != 0:
		return malformedf("reply flag on a request (%v)", h.Op)
	case m.Op() != h.Op:
		return fmt.Errorf("api: decoding a %v request into a %v", h.Op, m.Op())
	}
	d.buf, d.err = fields, nil
	m.Decode(d)
	err := d.Finish()
	d.buf, d.err = nil, nil
	if err != nil {
		return fmt.Errorf("%v: %w", h.Op, err)
	}
	return nil
}

// DecodeReply decodes a reply's fields. On success it fills into (when not
// nil) and returns nil, nil; a failed call comes back as callErr, a Result
// or an *Error with the server's detail; err reports a malformed reply.
func DecodeReply(fields []byte, into Message) (callErr, err error) {
	d := Decoder{buf: fields} // on the stack: see AppendReply
	status := Result(d.U32())
	switch {
	case status != Success:
		if detail := d.String(); detail != "" {
			callErr = &Error{Result: status, Detail: detail}
		} else {
			callErr = status
		}
	case into != nil:
		pd := getDecoder(d.buf)
		into.Decode(pd)
		if err := pd.release(); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return callErr, nil
}

// ErrUnknownOp is returned (wrapped, and matching ErrMalformed) for an
// opcode this side does not know.
var ErrUnknownOp = &malformedError{detail: "unknown opcode"}
