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
// Implementations: [FramedConn] frames any byte stream (transport/tcp uses
// it); transport/shm and transport/rdma bring their own. This package owns
// framing and the Conn contract; it knows nothing of what calls mean.
package transport
