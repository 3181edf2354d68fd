package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

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

// addressSlot is the host backend's address slot (host.Config.Slot): the
// flag's, else 0 outside a pool, else one derived from the server's name,
// so that servers of one pool, whose devices a program may use together,
// hand out different device addresses without being told. Two names can
// land in one slot (1 in 255 for a pair): the client then refuses the
// placement and says to give --address-slot.
func (p *serverPool) addressSlot(flag int, addr string) int {
	if flag >= 0 || p.store.endpoints == "" {
		return max(flag, 0)
	}
	h := fnv.New32a()
	h.Write([]byte(p.serverName(addr)))
	return 1 + int(h.Sum32()%host.MaxSlot)
}

// join registers the server's devices in the pool (starting the embedded
// store first with --pool embedded) and returns the agent and what ends
// both. No pool: nil agent.
func (p *serverPool) join(ctx context.Context, addr string, offers []string, devs []backend.Device, node func(backend.Info) int, log *slog.Logger) (*pool.Agent, func(), error) {
	if p.store.endpoints == "" {
		return nil, func() {}, nil
	}
	var embedded *broker.Pool
	var cred pool.StoreCredentials
	if p.store.endpoints == "embedded" {
		e, err := broker.Start(ctx, pool.EmbeddedConfig{Dir: p.data, Listen: p.listen, Peer: "127.0.0.1:0"}, log)
		if err != nil {
			return nil, nil, err
		}
		embedded, cred = e, e.Server
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
			return nil, nil, fmt.Errorf("joining the pool with the server token: %w", err)
		}
	}
	cli, err := p.store.connectAs(ctx, cred)
	if err != nil {
		if embedded != nil {
			embedded.Close()
		}
		if errors.Is(err, pool.ErrStoreAuth) && p.store.token == "" {
			err = fmt.Errorf("%w (a store with a broker admits servers by token: --pool-token T, T from gpufabric token create --server)", err)
		}
		return nil, nil, err
	}
	name := p.serverName(addr)
	info := pool.Server{Name: name, Host: engine.BootID(), Addr: addr, Offers: offers}
	for _, d := range devs {
		di := d.Info()
		n := -1
		if node != nil {
			n = node(di)
		}
		info.Devices = append(info.Devices, pool.Device{Index: di.Index, Name: di.Name, Memory: di.TotalMem, Backend: di.Backend, Node: n, Health: "ok", AddrLow: di.AddrLow, AddrHigh: di.AddrHigh})
	}
	agent, err := pool.Join(ctx, cli, info, p.ttl, log)
	if err != nil {
		cli.Close()
		if embedded != nil {
			embedded.Close()
		}
		return nil, nil, err
	}
	log.Info("joined the pool", "name", name, "store", p.store.endpoints, "ttl", p.ttl)
	return agent, func() {
		if err := agent.Close(); err != nil {
			log.Warn("leaving the pool", "err", err)
		}
		cli.Close()
		if embedded != nil {
			embedded.Close()
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
