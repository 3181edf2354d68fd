package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/engine/backend"
	"github.com/gpufabric/gpufabric/engine/backend/host"
	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
)

// serverPool is how `gpufabric server` joins a pool.
type serverPool struct {
	store  *poolFlags
	name   string
	ttl    time.Duration
	data   string // the embedded store's data directory, with --pool embedded
	listen string

	embedded *broker.Pool
	cli      *clientv3.Client
	slot     int // the address slot the pool gave, 0 when none was claimed
}

func addServerPoolFlags(fs *flag.FlagSet) *serverPool {
	p := &serverPool{store: addPoolFlags(fs, false)}
	// Not $GPUFABRIC_POOL_TOKEN: a user's token in the environment must
	// not be taken for the server's.
	fs.StringVar(&p.store.token, "pool-token", os.Getenv("GPUFABRIC_POOL_SERVER_TOKEN"), "a server token (gpufabric token create --server), exchanged at the pool's broker for the servers' store credentials; $GPUFABRIC_POOL_SERVER_TOKEN sets the default")
	fs.StringVar(&p.name, "pool-name", "", "this server's name in the pool (default: HOST-PORT)")
	fs.DurationVar(&p.ttl, "pool-ttl", pool.DefaultTTL, "lease of this server's registration: if it dies, it leaves the pool within this time")
	fs.StringVar(&p.data, "pool-data", "gpufabric-pool.etcd", "with --pool embedded: the embedded store's data directory")
	fs.StringVar(&p.listen, "pool-listen", "127.0.0.1:2379", "with --pool embedded: the embedded store's client address")
	return p
}

// check validates the pool flags against the others.
func (p *serverPool) check(o *serverOptions) error {
	if p.store.endpoints == "" {
		return nil
	}
	if o.limits.Token != "" {
		return errors.New("--token and --pool both given: in a pool, each session presents its reservation's capability instead of a shared token")
	}
	if p.ttl < time.Second {
		return fmt.Errorf("--pool-ttl %v: at least 1s", p.ttl)
	}
	return nil
}

// serverName is the server's name in the pool: --pool-name, else HOST-PORT.
func (p *serverPool) serverName(addr string) string {
	if p.name != "" {
		return p.name
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(addr)
	return strings.ReplaceAll(host, "/", "-") + "-" + port
}

// open starts the embedded store with --pool embedded and connects to
// the store, before the devices are opened: the host backend's address
// slot comes from it. No pool: nothing. close undoes it.
func (p *serverPool) open(ctx context.Context, log *slog.Logger) error {
	if p.store.endpoints == "" {
		return nil
	}
	var cred pool.StoreCredentials
	if p.store.endpoints == "embedded" {
		e, err := broker.Start(ctx, pool.EmbeddedConfig{Dir: p.data, Listen: p.listen, Peer: "127.0.0.1:0"}, log)
		if err != nil {
			return err
		}
		p.embedded, cred = e, e.Server
		p.store.endpoints = e.Store.InternalURL
		log.Info("pool store serving (embedded)", "url", e.Store.ClientURL, "data_dir", p.data)
	} else if p.store.token != "" {
		// A server token buys the servers' store credentials.
		bc, err := p.store.broker(p.store.token)
		if err == nil {
			cred, err = bc.Join(ctx)
			bc.Close()
		}
		if err != nil {
			return fmt.Errorf("joining the pool with the server token: %w", err)
		}
	}
	cli, err := p.store.connectAs(ctx, cred)
	if err != nil {
		p.close()
		if errors.Is(err, pool.ErrStoreAuth) && p.store.token == "" {
			err = fmt.Errorf("%w (a store with a broker admits servers by token: --pool-token T, T from gpufabric token create --server)", err)
		}
		return err
	}
	p.cli = cli
	return nil
}

// close closes the store's client and stops the embedded store.
func (p *serverPool) close() {
	if p.cli != nil {
		p.cli.Close()
	}
	if p.embedded != nil {
		p.embedded.Close()
	}
}

// addressSlot is the host backend's address slot (host.Config.Slot): the
// flag's, else 0, outside a pool. In a pool, the pool assigns it (the one
// the server had, else a free one) or grants the flag's, refusing a slot
// of another server in the pool: servers of one pool, whose devices a
// program may use together, never hand out the same device addresses.
func (p *serverPool) addressSlot(ctx context.Context, flag int, addr string, log *slog.Logger) (int, error) {
	if p.cli == nil {
		return max(flag, 0), nil
	}
	name := p.serverName(addr)
	c, err := pool.ClaimSlot(ctx, p.cli, name, flag, host.MaxSlot)
	if err != nil {
		return 0, fmt.Errorf("the pool's address slots: %w", err)
	}
	p.slot = c.Slot
	if c.From != "" {
		log.Warn("pool: took the address slot of a server no longer in the pool", "slot", c.Slot, "from", c.From)
	}
	log.Info("pool: address slot", "slot", c.Slot)
	return c.Slot, nil
}

// join registers the server's devices in the pool and returns the agent
// and what makes it leave. No pool: nil agent.
func (p *serverPool) join(ctx context.Context, addr string, offers []string, devs []backend.Device, node func(backend.Info) int, log *slog.Logger) (*pool.Agent, func(), error) {
	if p.cli == nil {
		return nil, func() {}, nil
	}
	name := p.serverName(addr)
	info := pool.Server{Name: name, Host: engine.BootID(), Addr: addr, Offers: offers, Slot: p.slot}
	for _, d := range devs {
		di := d.Info()
		n := -1
		if node != nil {
			n = node(di)
		}
		info.Devices = append(info.Devices, pool.Device{Index: di.Index, Name: di.Name, Memory: di.TotalMem, Backend: di.Backend, Node: n, Health: "ok", AddrLow: di.AddrLow, AddrHigh: di.AddrHigh})
	}
	agent, err := pool.Join(ctx, p.cli, info, p.ttl, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("joined the pool", "name", name, "store", p.store.endpoints, "ttl", p.ttl)
	return agent, func() {
		if err := agent.Close(); err != nil {
			log.Warn("leaving the pool", "err", err)
		}
	}, nil
}

// healthEvery is how often a server in a pool reports its devices' health.
const healthEvery = 5 * time.Second

// reportHealth writes the devices' health to the pool when it changes,
// until ctx ends, so that placement passes over a device that failed.
func reportHealth(ctx context.Context, agent *pool.Agent, srv *engine.Server, log *slog.Logger) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		health := map[int]string{}
		for _, d := range srv.Status().Devices {
			switch {
			case d.Healthy:
				health[d.Index] = "ok"
			case d.Health != "":
				health[d.Index] = d.Health
			default:
				health[d.Index] = "unhealthy"
			}
		}
		if err := agent.UpdateHealth(ctx, health); err != nil && ctx.Err() == nil {
			log.Warn("pool: could not report the devices' health", "err", err)
		}
	}
}
