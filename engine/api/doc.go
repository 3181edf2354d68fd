// Package api is the remoted call set: the opcodes, the layout of each
// request and reply, their binary encoding, and the CUDA driver result codes
// that every reply carries.
//
// Both sides import it; it imports nothing of theirs. It owns the bytes
// inside one frame's body. Framing (how bodies and bulk payloads travel) is
// the transport's; what a call does is the engine's.
//
// # Encoding
//
// A body starts with a fixed 8-byte [Header]: the opcode, flags and a
// sequence number chosen by the client. The fields of the call follow in
// little-endian order, as written by each message's encode method. Variable
// length fields carry a length prefix and are bounded, so a decoder never
// allocates more than the body it was given.
//
// Bulk data (copy payloads, module images) does not travel in the body: it
// is the frame's payload, which the transport may place directly in the
// caller's memory.
//
// # Results
//
// Errors are CUDA driver result codes ([Result], the values of CUresult), so
// the interposer can hand them to an application unchanged. A Result is an
// error; [Success] is never returned as one.
//
// # Asynchronous calls
//
// A request with [FlagAsync] gets no reply. If it fails, the server latches
// the error and returns it from the session's next synchronising call, as
// CUDA does for work that runs after the call that queued it returned.
package api
