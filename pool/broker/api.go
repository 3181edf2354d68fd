package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/gpufabric/gpufabric/pool"
)

// Path is where the broker's calls live on the store's client port.
const Path = "/gpufabric/v1/"

// Sentinel errors of the broker's own, beside package pool's.
var (
	// ErrForbidden: the token is good but not for this call (a user's
	// token asking to join as a server, or another user's reservation).
	ErrForbidden = errors.New("not allowed")
	// ErrBadRequest: a call the broker cannot read or that asks for
	// something impossible.
	ErrBadRequest = errors.New("bad request")
)

// Longest lease a reservation may ask for: a held reservation whose
// holder is gone must not pin capacity for ever.
const maxTTL = 30 * 24 * time.Hour

// Request asks for devices (pool.Request without the lease, which the
// broker grants).
type Request struct {
	N        int     `json:"n"`
	Fraction float64 `json:"fraction,omitempty"`
	Bytes    uint64  `json:"bytes,omitempty"`
	// Duration is the time limit; zero takes the quota's longest, or none.
	Duration time.Duration `json:"duration,omitempty"`
	// TTL is the lease: the reservation ends when the holder stops
	// renewing it (KeepAlive) for this long.
	TTL time.Duration `json:"ttl"`
	// Hold says the holder will not renew: the reservation lasts its TTL
	// (gpufabric request --hold).
	Hold   bool        `json:"hold,omitempty"`
	Host   string      `json:"host,omitempty"`
	Node   int         `json:"node"`
	Policy pool.Policy `json:"policy,omitempty"`
}

// check refuses what no reservation can be: the rest is pool.Client's.
func (r Request) check() error {
	if r.TTL < time.Second || r.TTL > maxTTL {
		return fmt.Errorf("%w: lease %v: want 1s to %v", ErrBadRequest, r.TTL, maxTTL)
	}
	if r.Duration < 0 {
		return fmt.Errorf("%w: negative time limit", ErrBadRequest)
	}
	if r.Policy < pool.LeastLoaded || r.Policy > pool.Pack {
		return fmt.Errorf("%w: placement policy %d", ErrBadRequest, r.Policy)
	}
	if r.Fraction != 0 && r.Bytes != 0 {
		return fmt.Errorf("%w: a share is a fraction or a size, not both", ErrBadRequest)
	}
	if len(r.Host) > 256 {
		return fmt.Errorf("%w: host id of %d bytes", ErrBadRequest, len(r.Host))
	}
	return nil
}

// Grant is a reservation and what its holder needs to use it: a
// capability per server, and the servers' records (addresses, devices'
// address ranges).
type Grant struct {
	Reservation  pool.Reservation  `json:"reservation"`
	Capabilities map[string]string `json:"capabilities"`
	Servers      []pool.Server     `json:"servers"`
}

// IDRequest names a reservation.
type IDRequest struct {
	ID string `json:"id"`
}

// Alive answers a keep-alive: the lease's time left, and the reservation's
// servers that have left the pool.
type Alive struct {
	TTL  time.Duration `json:"ttl"`
	Lost []string      `json:"lost,omitempty"`
}

// PoolState is what list and health show.
type PoolState struct {
	Snapshot pool.Snapshot `json:"snapshot"`
	// LeaseLeft is each server's registration lease, time left.
	LeaseLeft map[string]time.Duration `json:"lease_left"`
	// LeaseErr says why a server's lease could not be read.
	LeaseErr map[string]string `json:"lease_err,omitempty"`
}

// TokenRequest asks for a token for a user, or for the servers.
type TokenRequest struct {
	Identity pool.Identity `json:"identity"`
}

// TokenAnswer carries a token, shown once.
type TokenAnswer struct {
	Token string `json:"token"`
}

// QuotaRequest sets the quota of a user or group.
type QuotaRequest struct {
	Kind  string     `json:"kind"`
	Name  string     `json:"name"`
	Quota pool.Quota `json:"quota"`
}

// errorBody is every failed call's answer.
type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// kinds pairs each sentinel with its name on the wire and its HTTP status.
var kinds = []struct {
	err    error
	name   string
	status int
}{
	{pool.ErrUnavailable, "unavailable", 503},
	{pool.ErrNoCapacity, "no_capacity", 409},
	{pool.ErrQuota, "quota", 409},
	{pool.ErrNotFound, "not_found", 404},
	{pool.ErrBadToken, "bad_token", 401},
	{ErrForbidden, "forbidden", 403},
	{ErrBadRequest, "bad_request", 400},
}

// remoteError is an error the broker answered: its message as the broker
// wrote it, and the sentinel its kind names.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
