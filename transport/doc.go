// Package transport carries frames between a client and a GPU server.
//
// A frame is a small body (one encoded call, see engine/api) and an optional
// bulk payload: the bytes of a copy or a module image. The split is the
// eager/rendezvous split of HPC transports: bodies are always copied into
// the connection's send queue, so a caller can fire many asynchronous calls
// without waiting; payloads up to [Options.EagerLimit] are copied too, and
// larger ones are written from the caller's memory, with Send returning only
// once they have left it.
//
// Writers batch without timers: a connection's writer drains everything that
// queued while its previous write was in flight, in one gathered write.
// There is no Nagle delay and no flush call; a lone call is written at once.
//
// A server thread that must never wait on a client (a GPU shard) sends
// with [TrySend]: the frame is queued or written without waiting, or
// refused with [ErrWouldBlock] and nothing sent, so that a client that
// stops reading stalls only itself.
//
// Receiving costs a peer no more memory than it has sent: a FramedConn's
// buffers grow as bytes arrive, not to the sizes a header announces, so
// that connections announcing large frames and trickling them, before
// anyone knows who they are, cannot exhaust the server.
//
// Implementations: [FramedConn] frames any byte stream (transport/tcp uses
// it); transport/shm and transport/rdma bring their own. This package owns
// framing and the Conn contract; it knows nothing of what calls mean.
package transport
