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
