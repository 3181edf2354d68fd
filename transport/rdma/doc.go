// Package rdma carries frames over RDMA verbs: a reliable-connected queue
// pair per connection, set up over a TCP control connection.
//
// # Messages and credits
//
// Each side posts a fixed set of receive buffers (Config.RecvDepth slots
// of Config.SlotSize; no shared receive queue, which PVRDMA lacks) and
// sends a frame as one or more SENDs into the peer's, inline when small
// enough. A side may SEND only while it holds credits, one per buffer the
// peer has posted; every message returns the buffers its sender has
// posted again since its last, and a message of its own goes only when
// nothing else would carry them. The last credit is kept for such a grant,
// which is sent only with at least two buffers to give, so two peers
// cannot both run dry. One receive buffer more than was granted is posted:
// a peer that SENDs past its credits lands there and its connection fails
// with ErrCredits, rather than in receiver-not-ready retries.
//
// # Payloads
//
// Payloads up to Config.Rendezvous travel in the messages (two copies: into
// the send buffer, out of the receive buffer). Larger ones are
// RDMA-written: to a listener (the server), into staging it registered
// once per connection and announced per slot by a small SEND, so that a
// host-to-device copy costs the client no copy and the server one, out of
// staging; to a dialer (the client), straight into the buffer its reader
// names when it asks for the payload (a clear-to-send), so a
// device-to-host copy costs the client no copy at all. The memory a payload
// is written from or into is registered for the transfer, or once for all
// when it is pinned (Conn.Pin, until Conn.Forget: see RegCache for why
// only then); memory that will not register (the locked-memory limit) is
// copied through buffers registered at setup instead, and a log line says
// so. Each connection has its own protection domain, and only its staging
// and a reader's buffer during a request-to-send are remotely writable.
//
// # Completions and faults
//
// One goroutine per connection polls the completion queue, spins briefly
// when it is empty, then sleeps on the completion channel. A failed
// completion (a bad rkey or range, a peer that stopped answering) or a
// message that breaks the protocol fails that connection alone, with an
// error saying which, and closes its control connection, by which the
// peer learns it too.
//
// # Verbs
//
// The logic speaks to a small verbs interface (Device, MR, QP) with two
// implementations: libibverbs, opened with dlopen at run time through cgo
// with the project's own declarations of the verbs ABI (Open, Devices),
// and Emulation, an in-process fabric with RC semantics that the tests run
// on. Without the library, or without devices, Open and Devices say why,
// wrapping ErrUnavailable.
package rdma
