// Package tcp is the TCP transport: framed connections with TCP_NODELAY,
// batched gathered writes, and payloads written from the caller's memory.
// It is the transport that always works; see package transport for the
// contract.
package tcp
