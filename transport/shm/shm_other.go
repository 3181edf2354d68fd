//go:build !linux

package shm

import (
	"context"
	"fmt"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

var errNotSupported = fmt.Errorf("shm: needs Linux (memfd, futex): %w", transport.ErrNotSupported)

// Listener accepts shared-memory connections; on this system it cannot.
type Listener struct{}

var _ transport.Listener = (*Listener)(nil)

// Listen returns an error matching transport.ErrNotSupported.
func Listen(path string, opts Options) (*Listener, error) { return nil, errNotSupported }

// Dial returns an error matching transport.ErrNotSupported.
func Dial(ctx context.Context, path string, opts Options) (transport.Conn, error) {
	return nil, errNotSupported
}

// Accept returns an error matching transport.ErrNotSupported.
func (l *Listener) Accept() (transport.Conn, error) { return nil, errNotSupported }

// Close does nothing.
func (l *Listener) Close() error { return nil }

// Addr returns "".
func (l *Listener) Addr() string { return "" }

// Conn is a shared-memory connection; on this system none can be made.
type Conn struct{}

// PlaceOnNode returns an error matching transport.ErrNotSupported.
func (c *Conn) PlaceOnNode(node int) error { return errNotSupported }

// Rejected returns 0.
func (l *Listener) Rejected() uint64 { return 0 }

// HostRegion is host memory shared with a server; on this system none can
// be made.
type HostRegion struct{}

// NewHostRegion returns an error matching transport.ErrNotSupported.
func NewHostRegion(size int) (*HostRegion, error) { return nil, errNotSupported }

// Size returns 0.
func (h *HostRegion) Size() int { return 0 }

// HugeTLB returns false.
func (h *HostRegion) HugeTLB() bool { return false }

// Map returns an error matching transport.ErrNotSupported.
func (h *HostRegion) Map() ([]byte, error) { return nil, errNotSupported }

// Close does nothing.
func (h *HostRegion) Close() error { return nil }

// ShareRegion returns an error matching transport.ErrNotSupported.
func (c *Conn) ShareRegion(id uint32, h *HostRegion) error { return errNotSupported }

// TakeRegion returns an error matching transport.ErrNotSupported.
func (c *Conn) TakeRegion(id uint32, size uint64, node int, wait time.Duration) ([]byte, func(), error) {
	return nil, nil, errNotSupported
}

// DropRegion returns an error matching transport.ErrNotSupported.
func (c *Conn) DropRegion(id uint32, wait time.Duration) error { return errNotSupported }
