package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
)

// AdminTokenFile is the admin token's file in the data directory, made
// (0600) at the first start.
const AdminTokenFile = "admin-token"

// Pool is an embedded store with its authentication on and the broker
// served on its client port.
type Pool struct {
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
	if err := p.start(ctx, c.Dir, log); err != nil {
		p.Close()
		return nil, err
	}
	served.Store(p.Broker)
	return p, nil
}

func (p *Pool) start(ctx context.Context, dir string, log *slog.Logger) error {
	eps := []string{p.Store.InternalURL}
	root, server, err := pool.SecureStore(ctx, eps, dir)
	if err != nil {
		return err
	}
	p.Server = server
	if p.root, err = pool.Connect(ctx, pool.StoreConfig{Endpoints: eps, Username: root.Username, Password: root.Password, DialTimeout: 30 * time.Second}); err != nil {
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
	p.Store.Close()
}
