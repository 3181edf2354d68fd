package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
)

// AdminTokenFile is the admin token's file in the data directory, made
// (0600) at the first start.
const AdminTokenFile = "admin-token"

// Pool is a broker and the store it fronts: an embedded store with the
// broker served on its client port (Start), or an external one (Front).
type Pool struct {
	// Store is the embedded store; nil in front of an external one.
	Store  *pool.Embedded
	Broker *Broker
	// AdminToken issues tokens and sets quotas; it is also in the data
	// directory's admin-token file.
	AdminToken string
	// Server are the store credentials of the servers' role, for a server
	// in this process (gpufabric server --pool embedded).
	Server pool.StoreCredentials
	root   *clientv3.Client
}

// Start runs an embedded store (c.Handlers is the broker's), turns its
// authentication on the first time, and serves the broker.
func Start(ctx context.Context, c pool.EmbeddedConfig, log *slog.Logger) (*Pool, error) {
	var served atomic.Pointer[Broker]
	// etcd takes its handlers before it starts; the broker needs the
	// store running: it answers "unavailable" until then.
	late := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := served.Load(); b != nil {
			b.ServeHTTP(w, r)
			return
		}
		(&Broker{log: log}).fail(w, r, fmt.Errorf("%w: the broker is starting", pool.ErrUnavailable))
	})
	c.Handlers = map[string]http.Handler{Path: late}
	e, err := pool.StartEmbedded(c)
	if err != nil {
		return nil, err
	}
	p := &Pool{Store: e}
	// Servers reach this store where they reached the broker.
	if err := p.start(ctx, pool.StoreConfig{Endpoints: []string{e.InternalURL}}, c.Dir, nil, log); err != nil {
		p.Close()
		return nil, err
	}
	served.Store(p.Broker)
	return p, nil
}

// Front is a broker in front of an external store (an etcd cluster) that
// at reaches: it turns the store's authentication on the first time, as
// Start does, with the passwords and the admin token in dir, and tells
// the servers that join at is where the store is. Serve its Broker on a
// listener of your own.
func Front(ctx context.Context, at pool.StoreConfig, dir string, log *slog.Logger) (*Pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker data directory: %w", err)
	}
	p := &Pool{}
	if err := p.start(ctx, at, dir, at.Endpoints, log); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// start secures the store at reaches, connects to it as root and makes
// the broker, which tells joining servers the store is at endpoints (nil:
// where they reached the broker).
func (p *Pool) start(ctx context.Context, at pool.StoreConfig, dir string, endpoints []string, log *slog.Logger) error {
	root, server, err := pool.SecureStore(ctx, at, dir)
	if err != nil {
		return err
	}
	server.Endpoints = endpoints
	p.Server = server
	at.Username, at.Password = root.Username, root.Password
	if at.DialTimeout == 0 {
		at.DialTimeout = 30 * time.Second
	}
	if p.root, err = pool.Connect(ctx, at); err != nil {
		return err
	}
	admin, err := pool.SecretFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		return err
	}
	p.AdminToken = admin
	p.Broker, err = New(ctx, p.root, server, admin, log)
	return err
}

// Close stops the broker and the store.
func (p *Pool) Close() {
	if p.Broker != nil {
		p.Broker.Close()
	}
	if p.root != nil {
		p.root.Close()
	}
	if p.Store != nil {
		p.Store.Close()
	}
}
