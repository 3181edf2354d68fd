package shm

import (
	"errors"
	"time"

	"github.com/gpufabric/gpufabric/transport"
)

// Name is the transport's name in Info and in selection.
const Name = "shm"

// Defaults for [Options].
const (
	// DefaultRingSize is the size of each direction's ring: room for some
	// thousands of small frames queued.
	DefaultRingSize = 1 << 20
	// DefaultSlabSize is the size of each direction's slab for large payloads.
	DefaultSlabSize = 16 << 20
	// DefaultSpin is how many times a waiter yields the processor, polling
	// between yields, before it sleeps on the futex: enough to bridge the
	// gap between a call and its reply, and a burst of calls, without a
	// system call; few enough that an idle connection burns no CPU to
	// speak of (100-150 µs of polling).
	DefaultSpin = 200
	// DefaultHandshakeTimeout bounds a peer's handshake on a listener.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxHandshakes bounds the handshakes a listener runs at once.
	DefaultMaxHandshakes = 64
	// MaxTokenLen bounds the token a client presents.
	MaxTokenLen = 4 << 10
)

// Size limits, checked by both sides.
const (
	minRingSize = 4 << 10
	maxRingSize = 1 << 30
	minSlabSize = 4 << 10
	maxSlabSize = 1 << 40
)

// Options tune a shared-memory connection. The zero value means the defaults.
type Options struct {
	// Options holds the limits common to all transports. MaxQueued does not
	// apply: the ring is the queue.
	transport.Options

	// RingSize is the size in bytes of each direction's ring, rounded up to
	// a power of two between 4 KiB and 1 GiB. Server side only.
	RingSize int
	// SlabSize is the size in bytes of each direction's slab, rounded up to
	// a multiple of 4 KiB. Server side only.
	SlabSize int
	// Spin is how many times a waiter yields, polling between yields,
	// before it sleeps; negative means sleep at once.
	Spin int

	// Token admits peers of another user. On a listener: a peer running as
	// the server's user, or as root, is admitted; one of another user only
	// when Token is set and the peer presents it. On Dial: the token to
	// present (at most MaxTokenLen bytes); empty presents none.
	Token string
	// HandshakeTimeout bounds each peer's handshake on a listener, from
	// its connection to its region's delivery; 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes a listener runs at once, counting
	// connections set up and waiting for Accept; past it new peers are
	// closed at once (and reported with ErrBusy). 0 means
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// OnReject, when set, is told of each peer a listener turned away or
	// whose handshake failed: peer is "uid:N pid:M" when known, err says
	// why (ErrNotAdmitted, ErrBusy, a deadline, a protocol error). It is
	// called from the listener's goroutines, possibly at once from several;
	// it must not block for long.
	OnReject func(peer string, err error)
}

func (o Options) withDefaults() Options {
	if o.RingSize <= 0 {
		o.RingSize = DefaultRingSize
	}
	o.RingSize = min(max(o.RingSize, minRingSize), maxRingSize)
	r := minRingSize
	for r < o.RingSize {
		r <<= 1
	}
	o.RingSize = r
	if o.SlabSize <= 0 {
		o.SlabSize = DefaultSlabSize
	}
	o.SlabSize = min(max(o.SlabSize, minSlabSize), maxSlabSize)
	o.SlabSize = (o.SlabSize + minSlabSize - 1) &^ (minSlabSize - 1)
	if o.EagerLimit <= 0 {
		o.EagerLimit = transport.DefaultEagerLimit
	}
	if o.MaxBody <= 0 {
		o.MaxBody = transport.DefaultMaxBody
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = transport.DefaultMaxPayload
	}
	if o.Spin == 0 {
		o.Spin = DefaultSpin
	}
	if o.Spin < 0 {
		o.Spin = 0
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = DefaultMaxHandshakes
	}
	return o
}

// ErrCorrupt is returned when the peer wrote something into the shared
// region that breaks the protocol: a counter out of range, a record of the
// wrong sequence, kind or length, a chunk outside the slab. The connection
// is closed.
var ErrCorrupt = errors.New("shm: peer corrupted the shared region")

// Why a listener turned a peer away, as told to Options.OnReject.
var (
	// ErrNotAdmitted: the peer runs as another user and did not present
	// the listener's token.
	ErrNotAdmitted = errors.New("shm: peer not admitted")
	// ErrBusy: Options.MaxHandshakes handshakes were already running.
	ErrBusy = transport.ErrBusy
)

// MaxHostRegion is the largest host region (NewHostRegion), as the largest
// slab.
const MaxHostRegion = 1 << 40

// ErrNoRegion is returned by TakeRegion when the peer passed no host
// region of that id in time.
var ErrNoRegion = errors.New("shm: the peer passed no region of that id")
