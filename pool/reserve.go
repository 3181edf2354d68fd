package pool

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Policy orders the devices a reservation may take; see docs/pool.md.
type Policy int

const (
	// LeastLoaded, the default: the devices with the most free memory,
	// all on one server when one has room for them all.
	LeastLoaded Policy = iota
	// Spread: the least loaded devices, each on a different server where
	// the pool has enough servers.
	Spread
	// Pack: the fullest devices that still fit, on as few servers as
	// possible, leaving whole devices free for large requests.
	Pack
)

// Request asks for devices.
type Request struct {
	N     int
	Share Share
	// Duration is the time limit; zero takes the quota's longest, or none.
	Duration time.Duration
	// Lease is the etcd lease the reservation lives under; its end
	// releases the reservation. SharedLease says it holds other
	// reservations too (a client's session lease), so Release deletes the
	// reservation's keys and leaves the lease alone.
	Lease       clientv3.LeaseID
	SharedLease bool
	// Host is the client's boot id and Node its NUMA node (-1: unknown):
	// devices on the client's machine, then on its node, come first.
	Host   string
	Node   int
	Policy Policy
}

// Client places and releases reservations for one identity.
type Client struct {
	cli  *clientv3.Client
	view *View
	who  Identity
	key  []byte
}

// NewClient follows the pool's state for placements made as who.
func NewClient(ctx context.Context, cli *clientv3.Client, who Identity) (*Client, error) {
	key, err := poolKey(ctx, cli)
	if err != nil {
		return nil, err
	}
	v, err := NewView(ctx, cli)
	if err != nil {
		return nil, err
	}
	return &Client{cli: cli, view: v, who: who, key: key}, nil
}

// As is a client placing as who that shares c's view and key: a broker
// follows the pool once and places for many users. Closing it is
// closing c.
func (c *Client) As(who Identity) *Client {
	return &Client{cli: c.cli, view: c.view, who: who, key: c.key}
}

// View is the client's view of the pool.
func (c *Client) View() *View { return c.view }

// Close stops following the pool.
func (c *Client) Close() { c.view.Close() }

// lostRaces counts transactions that lost to another placement; the
// benchmark reports it per reservation.
var lostRaces atomic.Int64

// StoreTimeout bounds a request or release whose context has no deadline.
const StoreTimeout = 10 * time.Second

// maxAttempts bounds the placements of one request that lose their
// transaction to another's.
const maxAttempts = 200

// Reserve places a reservation and writes it in one transaction.
func (c *Client) Reserve(ctx context.Context, req Request) (Reservation, error) {
	if req.N < 1 || req.N > 64 {
		return Reservation{}, fmt.Errorf("%d devices: want 1 to 64", req.N)
	}
	if req.Share.Bytes == 0 && !(req.Share.Fraction > 0 && req.Share.Fraction <= 1) {
		return Reservation{}, fmt.Errorf("share fraction %g: want (0, 1]", req.Share.Fraction)
	}
	if req.Lease == 0 {
		return Reservation{}, errors.New("a reservation needs a lease")
	}
	if _, ok := ctx.Deadline(); !ok {
		// A store out of reach must fail a request, not hang it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StoreTimeout)
		defer cancel()
	}
	r := Reservation{ID: newID(), User: c.who.User, Group: c.who.Group, Lease: int64(req.Lease), SharedLease: req.SharedLease, Nonce: newID()}
	for range maxAttempts {
		p, err := c.place(req)
		if err != nil {
			return Reservation{}, err
		}
		r.Holds, r.Created = p.holds, time.Now().UTC()
		r.Expires = time.Time{}
		if p.limit > 0 {
			r.Expires = r.Created.Add(p.limit)
		}
		resp, err := c.cli.Txn(ctx).If(p.cmps...).Then(p.writes(r)...).Commit()
		if err != nil {
			return Reservation{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if resp.Succeeded {
			return r, nil
		}
		// Another placement moved what this one read: see what it did.
		lostRaces.Add(1)
		if err := c.view.waitFor(ctx, resp.Header.Revision); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return Reservation{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return Reservation{}, fmt.Errorf("%w: %d placements lost their transaction to others'", ErrNoCapacity, maxAttempts)
}

// placement is one attempt's choice and what its transaction compares.
type placement struct {
	holds []Hold
	limit time.Duration
	cmps  []clientv3.Cmp
	bumps []string // rev and usage keys to bump
}

func (p *placement) writes(r Reservation) []clientv3.Op {
	lease := clientv3.WithLease(clientv3.LeaseID(r.Lease))
	ops := make([]clientv3.Op, 0, len(p.bumps)+len(r.Holds)+1)
	for _, k := range p.bumps {
		ops = append(ops, clientv3.OpPut(k, r.ID))
	}
	for _, h := range r.Holds {
		ops = append(ops, clientv3.OpPut(holdKey(h.Server, h.Device, r.ID), strconv.FormatUint(h.Bytes, 10), lease))
	}
	b, _ := json.Marshal(r)
	return append(ops, clientv3.OpPut(resvKey(r.ID), string(b), lease))
}

// candidate is a device that could take the share.
type candidate struct {
	server string
	dev    *Device
	free   uint64
	bytes  uint64
	local  int // 2 same host and node, 1 same host, 0 remote
	rev    int64
	score  float64
}

// place chooses devices from the view and checks the quotas.
func (c *Client) place(req Request) (*placement, error) {
	v := c.view
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, v.err)
	}
	quotas := [2]Quota{v.quotas[quotaKey("user", c.who.User)], v.quotas[quotaKey("group", c.who.Group)]}
	p := &placement{}
	// Quotas: what the user and group hold now, plus this request.
	var limit time.Duration
	type memCheck struct {
		kind, name string
		held, max  uint64
	}
	var memChecks []memCheck
	for _, q := range []struct {
		kind, name string
		quota      Quota
	}{{"user", c.who.User, quotas[0]}, {"group", c.who.Group, quotas[1]}} {
		if q.name == "" || q.quota == (Quota{}) {
			// No quota, nothing to protect: leaving the usage key alone
			// keeps one user's concurrent requests from racing each other.
			continue
		}
		devs, bytes := 0, uint64(0)
		for _, r := range v.resvs {
			if (q.kind == "user" && r.User == q.name) || (q.kind == "group" && r.Group == q.name) {
				devs += len(r.Holds)
				for _, h := range r.Holds {
					bytes += h.Bytes
				}
			}
		}
		if m := q.quota.MaxDevices; m > 0 && devs+req.N > m {
			return nil, fmt.Errorf("%w: %s %s holds %d devices and asks %d; its quota is %d", ErrQuota, q.kind, q.name, devs, req.N, m)
		}
		if m := q.quota.MaxDuration; m > 0 {
			if req.Duration > m {
				return nil, fmt.Errorf("%w: %s %s may hold devices for %v; asked %v", ErrQuota, q.kind, q.name, m, req.Duration)
			}
			if limit == 0 || m < limit {
				limit = m
			}
		}
		// Memory is checked once the devices (and so the bytes) are known.
		if q.quota.MaxBytes > 0 {
			memChecks = append(memChecks, memCheck{q.kind, q.name, bytes, q.quota.MaxBytes})
		}
		k := usageKey(q.kind, q.name)
		p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(k), "=", v.usage[k]))
		p.bumps = append(p.bumps, k)
	}
	if req.Duration > 0 {
		limit = req.Duration
	}
	p.limit = limit
	cands := make([]candidate, 0, v.ndevs)
	for name, s := range v.servers {
		for i := range s.Devices {
			d := &s.Devices[i]
			if d.Health != "ok" {
				continue
			}
			bytes := req.Share.of(d.Memory)
			st := v.devs[devID{name, d.Index}]
			var used uint64
			var rev int64
			if st != nil {
				used, rev = st.used, st.rev
			}
			if bytes == 0 || used+bytes > d.Memory {
				continue
			}
			cd := candidate{server: name, dev: d, free: d.Memory - used, bytes: bytes, rev: rev}
			if req.Host != "" && s.Host == req.Host {
				cd.local = 1
				if req.Node >= 0 && d.Node == req.Node {
					cd.local = 2
				}
			}
			cands = append(cands, cd)
		}
	}
	chosen, err := choose(cands, req.N, req.Policy)
	if err != nil {
		return nil, err
	}
	for _, cd := range chosen {
		h := Hold{Server: cd.server, Device: cd.dev.Index, Bytes: cd.bytes}
		if req.Share.Bytes == 0 {
			h.Millionths = req.Share.millionths()
		}
		p.holds = append(p.holds, h)
		k := devRevKey(cd.server, cd.dev.Index)
		p.cmps = append(p.cmps,
			clientv3.Compare(clientv3.ModRevision(k), "=", cd.rev),
			clientv3.Compare(clientv3.CreateRevision(serverKey(cd.server)), ">", 0))
		p.bumps = append(p.bumps, k)
	}
	var asked uint64
	for _, h := range p.holds {
		asked += h.Bytes
	}
	for _, m := range memChecks {
		if m.held+asked > m.max {
			return nil, fmt.Errorf("%w: %s %s holds %d bytes and asks %d; its quota is %d", ErrQuota, m.kind, m.name, m.held, asked, m.max)
		}
	}
	return p, nil
}

// choose picks n devices by the policy. Scores carry a little noise so
// that clients placing at once, which see the same pool, spread over
// equally good devices instead of all racing for the first.
func choose(cands []candidate, n int, policy Policy) ([]candidate, error) {
	if len(cands) < n {
		return nil, fmt.Errorf("%w: %d devices have room for the share; %d asked", ErrNoCapacity, len(cands), n)
	}
	for i := range cands {
		c := &cands[i]
		frac := float64(c.free) / float64(c.dev.Memory)
		if policy == Pack {
			frac = 1 - frac
		}
		c.score = float64(c.local)*10 + frac + mrand.Float64()*0.01
	}
	if n == 1 {
		// The common request: one pass, no sort (a sort of a large pool's
		// devices was a quarter of a reservation's CPU).
		best := 0
		for i := range cands {
			if cands[i].score > cands[best].score {
				best = i
			}
		}
		return cands[best : best+1], nil
	}
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(b.score, a.score) })
	byServer := map[string][]candidate{}
	var order []string
	for _, c := range cands {
		if byServer[c.server] == nil {
			order = append(order, c.server)
		}
		byServer[c.server] = append(byServer[c.server], c)
	}
	switch policy {
	case Spread:
		// Round-robin over servers in score order.
		var out []candidate
		for round := 0; len(out) < n; round++ {
			for _, s := range order {
				if round < len(byServer[s]) && len(out) < n {
					out = append(out, byServer[s][round])
				}
			}
		}
		return out, nil
	default:
		// The best server that has room for all n; else the best devices
		// wherever they are.
		for _, s := range order {
			if len(byServer[s]) >= n {
				return byServer[s][:n], nil
			}
		}
		return cands[:n], nil
	}
}

// Release ends a reservation of the client's user: its record and holds
// go in one transaction, and the lease too when it was the reservation's
// own.
func (c *Client) Release(ctx context.Context, id string) error {
	r, err := Lookup(ctx, c.cli, id)
	if err != nil {
		return err
	}
	if r.User != c.who.User {
		return fmt.Errorf("reservation %s belongs to %s, not %s", id, r.User, c.who.User)
	}
	return End(ctx, c.cli, r)
}

// End deletes reservation r from the store, whoever asks: its holder at
// release, a server at its time limit.
func End(ctx context.Context, cli *clientv3.Client, r Reservation) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, StoreTimeout)
		defer cancel()
	}
	if err := EndKeys(ctx, cli, r); err != nil {
		return err
	}
	if !r.SharedLease {
		// Best effort: an unrevoked lease holds no keys now and runs out.
		_, _ = cli.Revoke(ctx, clientv3.LeaseID(r.Lease))
	}
	return nil
}

// EndKeys deletes reservation r's record and holds in one transaction and
// leaves its lease alone: a broker that keeps leases alive gives the lease
// to its next reservation. Only one ender's transaction succeeds (it
// compares the record's existence); the others get ErrNotFound, so only
// one of them decides what becomes of the lease.
func EndKeys(ctx context.Context, cli *clientv3.Client, r Reservation) error {
	ops := []clientv3.Op{clientv3.OpDelete(resvKey(r.ID))}
	for _, h := range r.Holds {
		ops = append(ops, clientv3.OpDelete(holdKey(h.Server, h.Device, r.ID)))
	}
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(resvKey(r.ID)), ">", 0)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s", ErrNotFound, r.ID)
	}
	return nil
}

// Lookup reads a reservation from the store. opts may make the read
// serializable (clientv3.WithSerializable), where a member's lag is
// harmless and a quorum round is not.
func Lookup(ctx context.Context, cli *clientv3.Client, id string, opts ...clientv3.OpOption) (Reservation, error) {
	resp, err := cli.Get(ctx, resvKey(id), opts...)
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return Reservation{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	var r Reservation
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return Reservation{}, fmt.Errorf("reservation %s: %w", id, err)
	}
	return r, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortServers(s []Server) {
	slices.SortFunc(s, func(a, b Server) int { return cmp.Compare(a.Name, b.Name) })
}

func sortReservations(r []Reservation) {
	slices.SortFunc(r, func(a, b Reservation) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}
