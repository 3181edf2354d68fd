package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
)

// maxBody bounds a call's body: the largest, a Request, is a few hundred
// bytes.
const maxBody = 64 << 10

// Broker serves the pool's API to clients. It holds the store's root
// credentials (its client) and the pool key (in its pool.Client).
type Broker struct {
	cli    *clientv3.Client
	base   *pool.Client
	server pool.StoreCredentials
	admin  [sha256.Size]byte
	log    *slog.Logger
	mux    *http.ServeMux

	mu     sync.Mutex
	kept   map[clientv3.LeaseID]*kept
	stock  map[int64][]stocked // by TTL in seconds
	closed bool
}

// New serves the pool of cli, a client with the store's root credentials.
// server are the credentials handed to servers that present a server
// token; admin is the token that may issue tokens and set quotas.
func New(ctx context.Context, cli *clientv3.Client, server pool.StoreCredentials, admin string, log *slog.Logger) (*Broker, error) {
	if len(admin) < 16 {
		return nil, errors.New("broker: an admin token of at least 16 characters")
	}
	base, err := pool.NewClient(ctx, cli, pool.Identity{})
	if err != nil {
		return nil, err
	}
	b := &Broker{cli: cli, base: base, server: server, admin: sha256.Sum256([]byte(admin)), log: log, mux: http.NewServeMux(), kept: map[clientv3.LeaseID]*kept{}, stock: map[int64][]stocked{}}
	b.mux.HandleFunc("POST "+Path+"reserve", b.reserve)
	b.mux.HandleFunc("POST "+Path+"reservation", b.reservation)
	b.mux.HandleFunc("POST "+Path+"keepalive", b.keepAlive)
	b.mux.HandleFunc("POST "+Path+"release", b.release)
	b.mux.HandleFunc("GET "+Path+"pool", b.poolState)
	b.mux.HandleFunc("POST "+Path+"join", b.join)
	b.mux.HandleFunc("POST "+Path+"admin/token", adminCall(b, b.createToken))
	b.mux.HandleFunc("POST "+Path+"admin/revoke", adminCall(b, b.revokeToken))
	b.mux.HandleFunc("POST "+Path+"admin/quota", adminCall(b, b.setQuota))
	return b, nil
}

var _ http.Handler = (*Broker)(nil)

// ServeHTTP serves the calls under Path.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// bearer is the request's token.
func bearer(r *http.Request) string {
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(t)
}

// identify authenticates a request by its token, of the role wanted.
func (b *Broker) identify(r *http.Request, role string) (pool.Identity, error) {
	tok := bearer(r)
	if tok == "" {
		return pool.Identity{}, fmt.Errorf("%w: no token given (--pool-token, or $GPUFABRIC_POOL_TOKEN)", pool.ErrBadToken)
	}
	who, err := pool.Identify(r.Context(), b.cli, tok)
	if err != nil {
		return who, err
	}
	if who.Role != role {
		what := map[string]string{pool.RoleUser: "a user's", pool.RoleServer: "a server's"}
		return who, fmt.Errorf("%w: this is %s token; the call wants %s", ErrForbidden, what[who.Role], what[role])
	}
	return who, nil
}

func (b *Broker) isAdmin(r *http.Request) error {
	h := sha256.Sum256([]byte(bearer(r)))
	if subtle.ConstantTimeCompare(h[:], b.admin[:]) != 1 {
		return fmt.Errorf("%w: not the pool's admin token (it is in the pool's data directory, file admin-token)", pool.ErrBadToken)
	}
	return nil
}

// decode reads a call's JSON body into v: bounded, strict, one value.
func decode(r *http.Request, v any) error {
	return decodeBody(io.LimitReader(r.Body, maxBody+1), v)
}

func decodeBody(body io.Reader, v any) error {
	d := json.NewDecoder(body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if d.More() {
		return fmt.Errorf("%w: more than one value", ErrBadRequest)
	}
	if d.InputOffset() > maxBody {
		return fmt.Errorf("%w: larger than %d bytes", ErrBadRequest, maxBody)
	}
	return nil
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (b *Broker) fail(w http.ResponseWriter, r *http.Request, err error) {
	body, status := errorBody{Error: err.Error(), Kind: "internal"}, http.StatusInternalServerError
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			body.Kind, status = k.name, k.status
			break
		}
	}
	if status == http.StatusInternalServerError {
		b.log.Warn("broker: call failed", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// storeCtx bounds a call's store work: a store out of reach must fail a
// call within the client's patience, not hang it.
func storeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), CallTimeout-time.Second)
}

func (b *Broker) reserve(w http.ResponseWriter, r *http.Request) {
	who, err := b.identify(r, pool.RoleUser)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	var req Request
	if err := decode(r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := req.check(); err != nil {
		b.fail(w, r, err)
		return
	}
	ctx, cancel := storeCtx(r)
	defer cancel()
	var lease clientv3.LeaseID
	if req.Hold {
		// Nobody renews it: a lease of its own that runs out by itself.
		var l *clientv3.LeaseGrantResponse
		if l, err = b.cli.Grant(ctx, ttlSeconds(req.TTL)); err == nil {
			lease = l.ID
		} else {
			err = fmt.Errorf("%w: %v", pool.ErrUnavailable, err)
		}
	} else {
		lease, err = b.lease(ctx, req.TTL)
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	res, err := b.base.As(who).Reserve(ctx, pool.Request{
		N: req.N, Share: pool.Share{Fraction: req.Fraction, Bytes: req.Bytes}, Duration: req.Duration,
		Lease: lease, Host: req.Host, Node: req.Node, Policy: req.Policy,
	})
	if err != nil {
		// A refusal wrote nothing: the lease can serve the next request.
		// A store out of reach may have committed the transaction: the
		// lease goes, with whatever it holds.
		b.abandon(lease, !errors.Is(err, pool.ErrUnavailable))
		b.fail(w, r, badInput(err))
		return
	}
	g, err := b.grant(res)
	if err != nil {
		b.abandon(lease, false)
		b.fail(w, r, err)
		return
	}
	if !req.Hold {
		// The holder's first deadline counts from the grant, not from
		// before the placement, which a loaded store may have made slow.
		b.keep(lease, req.TTL)
	}
	reply(w, g)
}

// abandon gives up a lease a reservation was not made under: back to
// stock when it holds nothing (empty), revoked otherwise or when the
// broker does not keep it.
func (b *Broker) abandon(lease clientv3.LeaseID, empty bool) {
	k, ok := b.unhold(lease)
	switch {
	case ok && empty:
		b.restock(lease, k)
	case ok:
		b.drop(lease, k)
	default:
		ctx, cancel := context.WithTimeout(context.Background(), pool.StoreTimeout)
		defer cancel()
		_, _ = b.cli.Revoke(ctx, lease)
	}
}

// badInput marks pool.Client's refusals of a malformed request (its
// errors wrap no sentinel) as the caller's fault.
func badInput(err error) error {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrBadRequest, err)
}

// grant signs a reservation's capabilities, one per server it holds.
func (b *Broker) grant(res pool.Reservation) (Grant, error) {
	g := Grant{Reservation: res, Capabilities: map[string]string{}}
	for _, h := range res.Holds {
		if _, ok := g.Capabilities[h.Server]; ok {
			continue
		}
		c, err := b.base.Capability(res, h.Server)
		if err != nil {
			return Grant{}, err
		}
		g.Capabilities[h.Server] = c
	}
	names := make([]string, 0, len(g.Capabilities))
	for name := range g.Capabilities {
		names = append(names, name)
	}
	g.Servers = b.base.View().Servers(names...)
	return g, nil
}

// own reads a reservation of the request's user.
func (b *Broker) own(w http.ResponseWriter, r *http.Request) (pool.Reservation, bool) {
	who, err := b.identify(r, pool.RoleUser)
	if err != nil {
		b.fail(w, r, err)
		return pool.Reservation{}, false
	}
	var req IDRequest
	if err := decode(r, &req); err != nil {
		b.fail(w, r, err)
		return pool.Reservation{}, false
	}
	if req.ID == "" || strings.ContainsAny(req.ID, "/ ") {
		b.fail(w, r, fmt.Errorf("%w: reservation id %q", ErrBadRequest, req.ID))
		return pool.Reservation{}, false
	}
	ctx, cancel := storeCtx(r)
	defer cancel()
	// The broker's own member: the reservation a call names was written
	// through it, so a serializable read sees it, without a quorum round.
	res, err := pool.Lookup(ctx, b.cli, req.ID, clientv3.WithSerializable())
	if err != nil {
		b.fail(w, r, err)
		return res, false
	}
	if res.User != who.User {
		b.fail(w, r, fmt.Errorf("%w: reservation %s belongs to %s, not %s", ErrForbidden, res.ID, res.User, who.User))
		return res, false
	}
	return res, true
}

func (b *Broker) reservation(w http.ResponseWriter, r *http.Request) {
	res, ok := b.own(w, r)
	if !ok {
		return
	}
	g, err := b.grant(res)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	reply(w, g)
}

func (b *Broker) keepAlive(w http.ResponseWriter, r *http.Request) {
	res, ok := b.own(w, r)
	if !ok {
		return
	}
	ctx, cancel := storeCtx(r)
	defer cancel()
	ttl, err := b.renew(ctx, clientv3.LeaseID(res.Lease))
	if errors.Is(err, pool.ErrNotFound) {
		err = fmt.Errorf("%w: %s (its lease ran out)", pool.ErrNotFound, res.ID)
	}
	if err != nil {
		b.fail(w, r, err)
		return
	}
	a := Alive{TTL: ttl}
	names := make([]string, 0, len(res.Holds))
	for _, h := range res.Holds {
		names = append(names, h.Server)
	}
	live := map[string]bool{}
	for _, s := range b.base.View().Servers(names...) {
		live[s.Name] = true
	}
	for _, h := range res.Holds {
		if !live[h.Server] && !slices.Contains(a.Lost, h.Server) {
			a.Lost = append(a.Lost, h.Server)
		}
	}
	reply(w, a)
}

func (b *Broker) release(w http.ResponseWriter, r *http.Request) {
	res, ok := b.own(w, r)
	if !ok {
		return
	}
	ctx, cancel := storeCtx(r)
	defer cancel()
	lease := clientv3.LeaseID(res.Lease)
	if k, ok := b.unhold(lease); ok {
		// Its keys go in one transaction and the lease, kept alive, goes
		// to the next reservation: no revoke and no grant.
		err := pool.EndKeys(ctx, b.cli, res)
		if err == nil {
			b.restock(lease, k)
			reply(w, struct{}{})
			return
		}
		// Ended already (its time limit: whoever ended it revokes the
		// lease), or the store out of reach: the lease goes.
		b.forget(lease, k)
		if errors.Is(err, pool.ErrNotFound) {
			b.fail(w, r, err)
			return
		}
	}
	if !res.SharedLease {
		// The record and its holds live under the lease alone: revoking it
		// deletes them all in one raft round, where End takes two.
		if _, err := b.cli.Revoke(ctx, clientv3.LeaseID(res.Lease)); err == nil {
			reply(w, struct{}{})
			return
		}
	}
	if err := pool.End(ctx, b.cli, res); err != nil {
		b.fail(w, r, err)
		return
	}
	reply(w, struct{}{})
}

// poolState is open to anyone who reaches the broker, as list always was:
// it shows who holds what, not the reservations' nonces or leases.
func (b *Broker) poolState(w http.ResponseWriter, r *http.Request) {
	s := PoolState{Snapshot: b.base.View().Snapshot(), LeaseLeft: map[string]time.Duration{}}
	for i := range s.Snapshot.Reservations {
		s.Snapshot.Reservations[i].Nonce, s.Snapshot.Reservations[i].Lease = "", 0
	}
	ctx, cancel := storeCtx(r)
	defer cancel()
	for _, srv := range s.Snapshot.Servers {
		left, err := pool.LeaseLeft(ctx, b.cli, srv.Name)
		if err != nil {
			if s.LeaseErr == nil {
				s.LeaseErr = map[string]string{}
			}
			s.LeaseErr[srv.Name] = err.Error()
			continue
		}
		s.LeaseLeft[srv.Name] = left
	}
	reply(w, s)
}

func (b *Broker) join(w http.ResponseWriter, r *http.Request) {
	if _, err := b.identify(r, pool.RoleServer); err != nil {
		b.fail(w, r, err)
		return
	}
	reply(w, b.server)
}

// adminCall makes an operator's call: the admin token checked, the body
// decoded into a T, do run within the store's time.
func adminCall[T any](b *Broker, do func(context.Context, T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := b.isAdmin(r); err != nil {
			b.fail(w, r, err)
			return
		}
		var req T
		if err := decode(r, &req); err != nil {
			b.fail(w, r, err)
			return
		}
		ctx, cancel := storeCtx(r)
		defer cancel()
		out, err := do(ctx, req)
		if err != nil {
			b.fail(w, r, badInput(err))
			return
		}
		reply(w, out)
	}
}

func (b *Broker) createToken(ctx context.Context, req TokenRequest) (any, error) {
	if req.Identity.Role != pool.RoleUser && req.Identity.Role != pool.RoleServer {
		return nil, fmt.Errorf("%w: role %q", ErrBadRequest, req.Identity.Role)
	}
	tok, err := pool.CreateToken(ctx, b.cli, req.Identity)
	return TokenAnswer{tok}, err
}

func (b *Broker) revokeToken(ctx context.Context, req TokenAnswer) (any, error) {
	return struct{}{}, pool.RevokeToken(ctx, b.cli, req.Token)
}

func (b *Broker) setQuota(ctx context.Context, req QuotaRequest) (any, error) {
	return struct{}{}, pool.SetQuota(ctx, b.cli, req.Kind, req.Name, req.Quota)
}
