// Package tcp is the TCP transport: framed connections with TCP_NODELAY,
// batched gathered writes, and payloads written from the caller's memory.
// It is the transport that always works; see package transport for the
// contract.
//
// [ListenTLS] and [DialTLS] carry the same frames over TLS, for networks
// that are not trusted: the server is authenticated by its certificate,
// and clients too when the server asks for theirs (see [ServerTLSConfig]);
// the connection's Info says Secure and names the verified peer
// certificate's subject. A TLS listener runs handshakes off its accept
// loop, so a slow peer stalls no other.
//
// Info.Peer is "tcp:IP", the remote address without its port, for limits
// per peer.
package tcp
