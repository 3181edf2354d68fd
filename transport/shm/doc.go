// Package shm is the shared-memory transport, for a client and a GPU server
// on the same host.
//
// # Connecting
//
// The server listens on a Unix socket ([Listen]; a path starting with "@"
// is in Linux's abstract namespace). The client speaks first ([Dial]): a
// preamble of 16 bytes (u64 magic "GFSHMCLI", u32 handshake version, u32
// token length) and its token, at most 4 KiB, empty when it has none. The
// server reads the peer's credentials from the kernel (SO_PEERCRED): a
// peer running as the server's user or as root is admitted; one of another
// user only when the listener has [Options.Token] and the peer presented
// it (compared in constant time). Only then does the server create a
// memfd-backed region, seal its size, map it and pass the file descriptor
// to the client with its greeting (u64 magic "GFSHELLO", u32 handshake
// version, u32 zero, u64 region size; SCM_RIGHTS); the client checks the
// seals and the header and maps it too. The region's sizes are the
// server's: a client's [Options.RingSize] and [Options.SlabSize] are
// ignored. The handshake version is 3 since the preamble.
//
// A listener survives anything a peer does: handshakes run off its accept
// loop, concurrently, each under [Options.HandshakeTimeout] and at most
// [Options.MaxHandshakes] at once; a peer that closes, stalls, sends
// garbage or is not admitted is closed and reported to [Options.OnReject],
// and [Listener.Accept] fails only when the listener is closed or cannot
// accept at all (out of file descriptors).
//
// The socket stays open for the life of the connection as its liveness
// channel: only host regions' files are written on it (below), and when
// either process closes the connection or dies, the kernel closes its end
// and the other side's blocked Recv and Send return at once (io.EOF, or an
// error matching transport.ErrClosed).
//
// # The region
//
//	page 0        header: magic, version, sizes; then per direction the
//	              control words, each group on its own cache lines: tail
//	              and slab tail (consumer), and two futex words with their
//	              waiter flags (data, space)
//	ring 0, 1     client→server calls, server→client replies: single-producer
//	              single-consumer byte rings of records on cache-line
//	              boundaries
//	slab 0, 1     one per direction, for large payloads
//
// A record opens with its commit word: the producer writes the record, then
// its sequence number there, and the consumer polls that word, so a small
// frame reaches the consumer as one cache line's transfer, as in a raw
// ping-pong, with no separate counter to fetch. The consumer clears the
// commit words of the space it hands back (tail), so the word it polls
// reads 0 until the record there is committed, whatever was there a lap
// before. It hands space back lazily, in batches or when it finds the ring
// empty, so that a small frame costs it no store the producer must fetch.
//
// A record is a frame (its body, and its payload when that is small: one
// copy in, one copy out), a chunk (the offset and length of payload bytes
// the producer wrote straight into its slab: no copy beyond that one and the
// consumer's ReadPayload) or padding at the ring's end. The slab is a ring
// allocator freed in order by the consumer; a payload larger than the slab
// goes as several chunks, which the consumer gathers while the producer is
// still writing, so a 256 MiB copy flows through a 16 MiB slab.
//
// # Waiting
//
// A consumer with nothing to read polls for a while, yielding the
// processor every 256 polls ([Options.Spin] yields, 200 by default: about
// 100-150 µs on an idle machine, longer but cheap on a busy one), then
// announces that it sleeps in a waiter flag and sleeps on a futex word in the region (the shared, not the private, futex: the
// waker is another process). A producer wakes it only when the flag is set,
// so a busy connection makes no system calls. A producer that finds the ring
// or slab full waits the same way: back-pressure, never loss.
//
// A reply whose arrival can be predicted need not cost a wake-up of a
// thread whose vCPU has gone idle (35-200 µs on a VM). A server about to
// send such a record calls [Conn.Soon], which wakes a sleeping client
// receive so that it polls, for at most a millisecond, instead of sleeping
// on (only a client polls after such a wake-up, so no client can make a
// server poll). A client that knows when its reply is due calls
// [Conn.ExpectIn]: its receive sleeps on a timed futex wait until shortly
// before, then polls for a bounded window, then sleeps as usual. An idle
// connection neither polls nor wakes.
//
// # Host regions
//
// A client can share memory of its own with the server: page-locked host
// memory that the server then reads and writes in place ([NewHostRegion],
// [Conn.ShareRegion], [Conn.TakeRegion], [HostRegion.Map]). The client
// creates a memfd of whole pages, sealed against shrinking and growing,
// and passes it on the socket: a record of u32 magic "GFRG" and u32
// region id with the descriptor attached. The peer's watcher keeps the
// descriptors by id (at most 4096 unclaimed) until TakeRegion claims one;
// TakeRegion checks the seals and size, allocates the pages, maps the file
// and places it on a NUMA node before the client maps it, so the pages are
// the server's to place. Where the host has reserved huge pages
// (vm.nr_hugepages), a region of at least one is a hugetlbfs memfd whose
// pages the client allocates at creation, so that a shortage falls back to
// an ordinary region instead of faulting later ([HostRegion.HugeTLB]).
// Anything else on the socket closes the connection.
//
// # Trust
//
// Everything the peer can write is checked before it is used: tail
// counters against the ring and slab sizes, each record's sequence number
// (0 means not yet written; anything but 0 or the number due is
// corruption), kind and length, each chunk's offset and length. A violation fails the
// call with an error matching [ErrCorrupt] and closes the connection; it
// never panics or reads outside the region. Bodies are copied out of the
// ring before Recv returns them, so the peer cannot change a body while it
// is being decoded.
//
// The package's unsafe code and its futex and mmap system calls sit in
// region_linux.go. On other systems Listen and Dial return an error matching
// transport.ErrNotSupported.
package shm
