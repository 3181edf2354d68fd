package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
)

// DefaultTTL is the lease of a server's registration and of a running
// client's reservation: a holder that dies is gone from the pool within it.
const DefaultTTL = 10 * time.Second

// Agent is a GPU server's part in the pool: it keeps the server's
// registration alive, checks the capabilities of Attaches (Authorize, for
// engine.Config), and ends the sessions of reservations that are released,
// expire or reach their time limit.
type Agent struct {
	cli  *clientv3.Client
	info Server
	key  []byte
	ttl  time.Duration
	log  *slog.Logger

	mu     sync.Mutex
	lease  clientv3.LeaseID
	inUse  map[string]uint64 // "reservation/device" → the session holding it
	timers map[string]*time.Timer
	revoke func(key string, reason error) int
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why it left the pool for good
}

var _ engine.Authorizer = (*Agent)(nil).Authorize

// Join registers info under a lease of ttl and keeps it alive until Close.
// revoke ends the sessions holding a reservation (engine.Server.Revoke);
// it may be set later with SetRevoke, once the server exists.
func Join(ctx context.Context, cli *clientv3.Client, info Server, ttl time.Duration, log *slog.Logger) (*Agent, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("pool TTL %v: at least 1s (etcd leases count whole seconds)", ttl)
	}
	if strings.ContainsAny(info.Name, "/ ") || info.Name == "" {
		return nil, fmt.Errorf("server name %q: want a non-empty name without '/' or spaces", info.Name)
	}
	key, err := poolKey(ctx, cli)
	if err != nil {
		return nil, err
	}
	if info.Since.IsZero() {
		info.Since = time.Now().UTC()
	}
	a := &Agent{cli: cli, info: info, key: key, ttl: ttl, log: log, inUse: map[string]uint64{}, timers: map[string]*time.Timer{}, done: make(chan struct{})}
	if err := a.register(ctx); err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(actx)
	return a, nil
}

// SetRevoke says how to end a reservation's sessions.
func (a *Agent) SetRevoke(revoke func(key string, reason error) int) {
	a.mu.Lock()
	a.revoke = revoke
	a.mu.Unlock()
}

// register writes the server's record under a new lease, refusing to
// take the name of a server that is alive.
func (a *Agent) register(ctx context.Context) error {
	lease, err := a.cli.Grant(ctx, int64((a.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	a.mu.Lock()
	b, _ := json.Marshal(a.info)
	a.mu.Unlock()
	k := serverKey(a.info.Name)
	cmp := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
	if a.info.Slot > 0 {
		// Only while the slot is still this server's: one taken while it
		// was away belongs to a server handing out the same addresses.
		cmp = append(cmp, clientv3.Compare(clientv3.Value(slotKey(a.info.Slot)), "=", a.info.Name))
	}
	txn := a.cli.Txn(ctx).If(cmp...).Then(clientv3.OpPut(k, string(b), clientv3.WithLease(lease.ID)))
	if a.info.Slot > 0 {
		txn = txn.Else(clientv3.OpGet(slotKey(a.info.Slot)))
	}
	resp, err := txn.Commit()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !resp.Succeeded {
		_, _ = a.cli.Revoke(ctx, lease.ID)
		if err := a.slotLost(resp); err != nil {
			return err
		}
		return fmt.Errorf("a server named %s is in the pool already (or left less than its TTL ago)", a.info.Name)
	}
	a.mu.Lock()
	a.lease = lease.ID
	a.mu.Unlock()
	return nil
}

// slotLost says why a registration that compared the server's slot
// failed, when the slot is no longer the server's.
func (a *Agent) slotLost(resp *clientv3.TxnResponse) error {
	if a.info.Slot == 0 {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && string(kvs[0].Value) == a.info.Name {
		return nil
	}
	owner := "nobody"
	if len(kvs) > 0 {
		owner = "server " + string(kvs[0].Value)
	}
	return fmt.Errorf("%w: slot %d is %s's now (taken while %s was out of the pool); its devices hand out that slot's addresses, so it stays out: restart it to get another slot", ErrSlotLost, a.info.Slot, owner, a.info.Name)
}

// run keeps the lease alive and follows the server's holds; when the lease
// is lost (the store unreachable past the TTL) it registers again.
func (a *Agent) run(ctx context.Context) {
	defer close(a.done)
	for ctx.Err() == nil {
		a.mu.Lock()
		lease := a.lease
		a.mu.Unlock()
		err := a.serve(ctx, lease)
		if ctx.Err() != nil {
			return
		}
		// A watch that ended on a blip (a leader election) leaves the
		// registration alive: keep serving it rather than leave the pool.
		rctx, cancel := context.WithTimeout(ctx, a.ttl)
		alive, terr := a.cli.TimeToLive(rctx, lease)
		cancel()
		if terr == nil && alive.TTL > 0 {
			a.log.Info("pool: following the store again", "after", err)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond): // no spinning on a store that keeps failing
			}
			continue
		}
		a.log.Warn("pool: registration lost; joining again", "err", err)
		lost := time.Now().UTC().Format(time.RFC3339) + " registration lost: " + err.Error()
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, a.ttl)
			// A store that was restarted gives every lease a fresh TTL: the
			// registration may have outlived the outage, and is served on.
			if alive, err := a.cli.TimeToLive(rctx, lease); err == nil && alive.TTL > 0 {
				cancel()
				a.log.Info("pool: the store is back, and the registration outlived its absence")
				break
			}
			// health shows it once the server is back.
			a.mu.Lock()
			a.info.LastError = lost
			a.mu.Unlock()
			err := a.register(rctx)
			cancel()
			if err == nil {
				a.log.Info("pool: joined again")
				break
			}
			if errors.Is(err, ErrSlotLost) {
				// Final: the sessions it serves go on, it takes no more.
				a.log.Error("pool: cannot join again", "err", err)
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
				return
			}
			a.log.Warn("pool: cannot join", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// serve keeps one lease alive and watches the holds on this server's
// devices until either ends.
func (a *Agent) serve(ctx context.Context, lease clientv3.LeaseID) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := a.cli.KeepAlive(ctx, lease)
	if err != nil {
		return err
	}
	watch := a.cli.Watch(clientv3.WithRequireLeader(ctx), Prefix+"dev/"+a.info.Name+"/", clientv3.WithPrefix())
	a.reconcile(ctx)
	for {
		select {
		case _, ok := <-ka:
			if !ok {
				return errors.New("the lease's keepalive ended")
			}
		case wr, ok := <-watch:
			if !ok {
				return errors.New("the watch ended")
			}
			if err := wr.Err(); err != nil {
				a.log.Warn("pool: watch", "err", err)
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.DELETE {
					continue
				}
				if _, id, ok := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), Prefix+"dev/"+a.info.Name+"/"), "/h/"); ok {
					a.end(id, fmt.Errorf("reservation %s was released or its holder left the pool", id))
				}
			}
		}
	}
}

// reconcile ends the sessions of reservations that ended while the watch
// was not running (the store was out of reach): the watch sees only what
// happens after it starts.
func (a *Agent) reconcile(ctx context.Context) {
	a.mu.Lock()
	ids := map[string]bool{}
	for k := range a.inUse {
		id, _, _ := strings.Cut(k, "/")
		ids[id] = true
	}
	a.mu.Unlock()
	for id := range ids {
		if _, err := Lookup(ctx, a.cli, id); errors.Is(err, ErrNotFound) {
			a.end(id, fmt.Errorf("reservation %s ended while the pool's store was out of reach", id))
		}
	}
}

// end ends the sessions of reservation id.
func (a *Agent) end(id string, reason error) {
	a.mu.Lock()
	revoke := a.revoke
	if t := a.timers[id]; t != nil {
		t.Stop()
		delete(a.timers, id)
	}
	a.mu.Unlock()
	if revoke != nil {
		if n := revoke(id, reason); n > 0 {
			a.log.Info("pool: ended the sessions of a reservation", "reservation", id, "sessions", n, "reason", reason)
		}
	}
}

// Authorize backs an Attach with the capability the session's Hello
// carried: signed by the pool, for this server, within its time limit, of
// a reservation that still exists, and not in use by another session.
func (a *Agent) Authorize(req engine.AttachRequest) (engine.Grant, error) {
	if !IsCapability(req.Credential) {
		return engine.Grant{}, fmt.Errorf("%w: this server lends its devices through the pool; reserve them (gpufabric run -n N, or gpufabric request) and present the reservation", ErrBadCapability)
	}
	c, err := ParseCapability(a.key, req.Credential, time.Now())
	if err != nil {
		return engine.Grant{}, err
	}
	if c.Server != a.info.Name {
		return engine.Grant{}, fmt.Errorf("%w: it is for server %s, not %s", ErrBadCapability, c.Server, a.info.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := Lookup(ctx, a.cli, c.Reservation)
	if err != nil {
		return engine.Grant{}, fmt.Errorf("%w: %w", ErrBadCapability, err)
	}
	if r.Nonce != c.Nonce {
		return engine.Grant{}, fmt.Errorf("%w: reservation %s was made anew; this capability is of an old one", ErrBadCapability, c.Reservation)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var reasons []string
	for i, dev := range c.Devices {
		if (req.Device >= 0 && dev != req.Device) || slices.Contains(req.Held, dev) {
			continue
		}
		if !holds(r, a.info.Name, dev, c.Bytes[i]) {
			reasons = append(reasons, fmt.Sprintf("the reservation does not hold device %d", dev))
			continue
		}
		k := c.Reservation + "/" + itoa(dev)
		if s, used := a.inUse[k]; used && s != req.Session {
			reasons = append(reasons, fmt.Sprintf("device %d is attached under it by session %d already", dev, s))
			continue
		}
		a.inUse[k] = req.Session
		if !c.Expires.IsZero() && a.timers[c.Reservation] == nil {
			a.timers[r.ID] = time.AfterFunc(time.Until(c.Expires), func() { a.expire(r) })
		}
		session := req.Session
		return engine.Grant{Device: dev, Bytes: c.Bytes[i], Key: c.Reservation, Release: func() {
			a.mu.Lock()
			if a.inUse[k] == session {
				delete(a.inUse, k)
			}
			a.mu.Unlock()
		}}, nil
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "it backs no further device of this server for this session")
	}
	return engine.Grant{}, fmt.Errorf("%w: reservation %s: %s", ErrBadCapability, c.Reservation, strings.Join(reasons, "; "))
}

func holds(r Reservation, server string, dev int, bytes uint64) bool {
	for _, h := range r.Holds {
		if h.Server == server && h.Device == dev && h.Bytes == bytes {
			return true
		}
	}
	return false
}

// expire ends a reservation at its time limit: its sessions here end, and
// it is deleted from the store, so its capacity returns even if its holder
// keeps its lease alive.
func (a *Agent) expire(r Reservation) {
	a.end(r.ID, fmt.Errorf("reservation %s reached its time limit", r.ID))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := End(ctx, a.cli, r); err != nil && !errors.Is(err, ErrNotFound) {
		a.log.Warn("pool: could not end an expired reservation in the store", "reservation", r.ID, "err", err)
	}
}

// Out is closed when the agent stops: at Close, or when the server may
// not join the pool again (Err says why).
func (a *Agent) Out() <-chan struct{} { return a.done }

// Err is why the server left the pool for good (ErrSlotLost), or nil.
func (a *Agent) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Name is the server's name in the pool.
func (a *Agent) Name() string { return a.info.Name }

// Close leaves the pool at once: the registration's lease is revoked.
func (a *Agent) Close() error {
	a.cancel()
	<-a.done
	a.mu.Lock()
	lease := a.lease
	for _, t := range a.timers {
		t.Stop()
	}
	a.mu.Unlock()
	// If the store is away this fails, and the lease runs out by itself
	// within the TTL: wait no longer than that.
	ctx, cancel := context.WithTimeout(context.Background(), min(a.ttl, 5*time.Second))
	defer cancel()
	_, err := a.cli.Revoke(ctx, lease)
	return err
}

// LeaseLeft is the time left on a server's registration lease: a healthy
// server renews it at a third of its TTL.
func LeaseLeft(ctx context.Context, cli *clientv3.Client, server string) (time.Duration, error) {
	resp, err := cli.Get(ctx, serverKey(server))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("%s is not in the pool", server)
	}
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return time.Duration(ttl.TTL) * time.Second, nil
}

// UpdateHealth records the devices' health (index → "ok", or what is
// wrong) and rewrites the registration when it changed: placement takes
// only devices whose health is "ok".
func (a *Agent) UpdateHealth(ctx context.Context, health map[int]string) error {
	a.mu.Lock()
	changed := false
	for i := range a.info.Devices {
		d := &a.info.Devices[i]
		if h, ok := health[d.Index]; ok && h != d.Health {
			d.Health, changed = h, true
		}
	}
	b, _ := json.Marshal(a.info)
	lease := a.lease
	a.mu.Unlock()
	if !changed {
		return nil
	}
	k := serverKey(a.info.Name)
	// Only over a live registration: a lost one is rewritten whole by the
	// rejoin, with the health recorded here.
	_, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), ">", 0)).
		Then(clientv3.OpPut(k, string(b), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
