// Package engine is the GPU server: it accepts connections, runs one
// session per connection, and multiplexes sessions onto devices through one
// shard per device.
//
// # The path of a call
//
// A session's reader goroutine decodes each request in arrival order. It
// answers what needs no device (Ping, device descriptions) at once, keeps the
// session's handle tables (streams, events, modules and functions get
// client-chosen handles, registered here so that a later call can name them
// before the device has even created them), and hands everything else to the
// shard of the device it names. A shard is a goroutine locked to its own OS
// thread, which owns the device's context; it runs each session's tasks in
// order, sessions served fairly in proportion to their share (fair.go). A
// task checks what the client named (handles, device ranges) and queues the
// work on a backend stream; the stream runs it and the reply, if the call
// wants one, leaves when it is done.
//
// # Who writes replies
//
// The shard never waits on a client. A reply is written by the goroutine
// that has it (the reader, the shard, a stream's worker, a callback) only
// when the transport takes it without waiting (transport.TrySend) and
// nothing is queued ahead of it; otherwise a small reply is copied into the
// session's outbox and the session's own writer goroutine sends it. A reply
// with a large payload (a device-to-host copy) is never copied: it is
// written, waiting if it must, by the goroutine that has it, which is the
// session's reader or one of its own streams' workers, never a shard. A
// session whose replies have waited for its client past Config.SlowConsumer,
// or whose outbox passes 64 MiB, is cut off, as nats-server cuts off a slow
// consumer: its connection closes, its queued work is dropped, its memory
// freed. See outbox.go.
//
// # Isolation
//
// One tenant cannot stop, stall, starve or read another:
//   - an accept loop survives any error a peer can cause, backing off on
//     the rest; connections are capped in total and per peer, and one that
//     has not said Hello within Config.HandshakeTimeout is closed;
//   - a session's work in flight (tasks on shards, operations on its
//     streams) is bounded by Config.MaxInflight: past it the reader stops
//     reading the session's connection, so the client's next call blocks on
//     the transport's flow control, and nobody else notices. Host-to-device
//     payloads and module images share a per-session staging budget;
//   - the fair queue weighs work in cost units (one per task, one more per
//     64 KiB it moves), so a large copy is not served as a null launch;
//   - when a session ends, its streams are cancelled: work not started is
//     dropped and a running kernel of the host backend stops at its next
//     block boundary (a real GPU's runs to its end), then its memory is
//     freed and its shares return;
//   - memory handed to a session never holds another's bytes (the
//     backends scrub it), module globals are charged to the share, and
//     streams, events and modules are capped per session.
//
// # Shares
//
// A session attaches to a device with a share: a fraction of the device's
// memory or a size. The sum of the shares on a device never exceeds the
// device. Every allocation is accounted to its session; the one that would
// pass the share fails with CUDA_ERROR_OUT_OF_MEMORY, and the memory a
// session is told about (total, free) is its share. Every device range a
// copy, memset or built-in kernel names must lie inside one of the session's
// own allocations.
//
// # Errors
//
// Calls sent asynchronously get no reply; their errors are latched and
// returned by the session's next synchronising call. A client's bad input
// gets a CUDA error, or for framing errors a closed connection; it is logged
// with the session named, and it never touches another session.
//
// The lock order is in locks.md.
package engine
