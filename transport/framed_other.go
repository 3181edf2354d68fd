//go:build !linux

package transport

import "net"

// writeNonblock writes nothing here: TrySend leaves every write to the
// writer goroutine.
func writeNonblock(rw net.Conn, bufs [][]byte) int { return 0 }
