package pool

import (
	"errors"
	"time"
)

// Sentinel errors callers test.
var (
	// ErrNoCapacity: the pool has not the devices or share asked for.
	ErrNoCapacity = errors.New("not enough free capacity in the pool")
	// ErrQuota: the request would pass a user's or group's quota.
	ErrQuota = errors.New("quota exceeded")
	// ErrNotFound: no such reservation (released, expired or never made).
	ErrNotFound = errors.New("no such reservation")
	// ErrBadToken: the token is not one the pool issued.
	ErrBadToken = errors.New("unknown token")
	// ErrBadCapability: a capability that is forged, expired, reused or
	// names what its reservation does not hold.
	ErrBadCapability = errors.New("capability refused")
)

// Device is one device of a registered server.
type Device struct {
	Index   int    `json:"index"`
	Name    string `json:"name"`
	Memory  uint64 `json:"memory"`
	Backend string `json:"backend"`
	// Node is the device's NUMA node; -1 when unknown.
	Node int `json:"node"`
	// Health is "ok" or what is wrong with it.
	Health string `json:"health"`
	// AddrLow and AddrHigh bound the device addresses it hands out; both
	// 0 when its backend cannot say. A run whose devices span servers
	// needs them disjoint.
	AddrLow  uint64 `json:"addr_low,omitempty"`
	AddrHigh uint64 `json:"addr_high,omitempty"`
}

// Server is what a GPU server writes when it joins the pool.
type Server struct {
	Name string `json:"name"`
	// Host identifies its machine (the boot id): a client on the same
	// machine reaches it over shared memory.
	Host string `json:"host"`
	// Addr is its TCP address; Offers its "transport:address" endpoints.
	Addr    string    `json:"addr"`
	Offers  []string  `json:"offers"`
	Devices []Device  `json:"devices"`
	Since   time.Time `json:"since"`
	// Slot is the address slot the pool gave it (ClaimSlot); 0 when it
	// claimed none (a backend whose addresses the driver chooses).
	Slot int `json:"slot,omitempty"`
	// LastError is the last error the server reported, if any.
	LastError string `json:"last_error,omitempty"`
}

// Share asks for a part of each device: a fraction, or a size in bytes.
type Share struct {
	Fraction float64 // in (0, 1]; 0 when Bytes is set
	Bytes    uint64
}

// of is the bytes the share takes of a device of memory total, rounded as
// the engine rounds a fraction (millionths of the total).
func (s Share) of(total uint64) uint64 {
	if s.Bytes > 0 {
		return s.Bytes
	}
	return total * uint64(s.millionths()) / 1_000_000
}

func (s Share) millionths() uint32 { return uint32(s.Fraction*1_000_000 + 0.5) }

// Hold is one device of a reservation.
type Hold struct {
	Server string `json:"server"`
	Device int    `json:"device"`
	Bytes  uint64 `json:"bytes"`
	// Millionths is the fraction asked, 0 when a size was.
	Millionths uint32 `json:"millionths,omitempty"`
}

// Reservation is devices lent to one client.
type Reservation struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Group   string    `json:"group"`
	Holds   []Hold    `json:"holds"`
	Created time.Time `json:"created"`
	// Expires is the time limit: past it the servers end its sessions.
	Expires time.Time `json:"expires"`
	// Lease is the etcd lease it lives under; SharedLease says other
	// reservations live under it too.
	Lease       int64 `json:"lease"`
	SharedLease bool  `json:"shared_lease,omitempty"`
	// Nonce ties the reservation's capabilities to this record: a
	// capability of a released reservation names a record that is gone.
	Nonce string `json:"nonce"`
}

// Quota is what one user or group may hold at once; zero fields are
// unlimited.
type Quota struct {
	MaxDevices  int           `json:"max_devices,omitempty"`
	MaxBytes    uint64        `json:"max_bytes,omitempty"`
	MaxDuration time.Duration `json:"max_duration,omitempty"`
}

// Identity is who a token belongs to.
type Identity struct {
	User  string `json:"user"`
	Group string `json:"group"`
	// Expires, when set, is when the token stops identifying anyone.
	Expires time.Time `json:"expires,omitzero"`
	// Role is RoleUser (empty) for a user who reserves devices, RoleServer
	// for a GPU server that joins the pool: a token is good for one.
	Role string `json:"role,omitempty"`
}

// Roles of a token.
const (
	RoleUser   = ""
	RoleServer = "server"
)

// Key layout; see the package comment.
func serverKey(name string) string { return Prefix + "servers/" + name }
func devPrefix(server string, dev int) string {
	return Prefix + "dev/" + server + "/" + itoa(dev) + "/"
}
func devRevKey(server string, dev int) string { return devPrefix(server, dev) + "rev" }
func holdKey(server string, dev int, id string) string {
	return devPrefix(server, dev) + "h/" + id
}
func resvKey(id string) string          { return Prefix + "resv/" + id }
func usageKey(kind, name string) string { return Prefix + "usage/" + kind + "/" + name }
func quotaKey(kind, name string) string { return Prefix + "quota/" + kind + "/" + name }
func tokenKey(hash string) string       { return Prefix + "tokens/" + hash }

const poolKeyKey = Prefix + "key"
