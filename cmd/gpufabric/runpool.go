package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/pool"
)

// runPool is how `gpufabric run` takes its devices from the pool: with
// --pool and no --server it reserves them for the command's lifetime; with
// $GPUFABRIC_RESERVATION it runs on a reservation made by `request`.
type runPool struct {
	store       *poolFlags
	spread      *bool
	pack        *bool
	node        *int
	limit       *time.Duration
	ttl         *time.Duration
	reservation string
	active      bool
	share       pool.Share
	n           int
}

func addRunPoolFlags(fs *flag.FlagSet) *runPool {
	return &runPool{
		store:  addPoolFlags(fs, true),
		spread: fs.Bool("spread", false, "pool: put the devices on different servers where the pool has enough"),
		pack:   fs.Bool("pack", false, "pool: fill the fullest devices first, leaving whole devices free"),
		node:   fs.Int("numa-node", -1, "pool: this client's NUMA node, preferred among devices on its own host (-1: none)"),
		limit:  fs.Duration("time-limit", 0, "pool: end the run's reservation after this long (0: the quota's longest, or none)"),
		ttl:    fs.Duration("pool-ttl", pool.DefaultTTL, "pool: lease of the run's reservation: if gpufabric run dies, its devices return within this time"),
	}
}

// decide says whether the run takes its devices from the pool: a
// reservation named, or a pool given and no server.
func (p *runPool) decide(fs *flag.FlagSet, o *runOptions, fraction, size string) error {
	serverSet := os.Getenv("GPUFABRIC_SERVER") != ""
	fs.Visit(func(f *flag.Flag) { serverSet = serverSet || f.Name == "server" })
	p.reservation = os.Getenv("GPUFABRIC_RESERVATION")
	p.active = p.reservation != "" || (p.store.endpoints != "" && !serverSet)
	if !p.active {
		return nil
	}
	if *p.ttl < time.Second {
		return fmt.Errorf("--pool-ttl %v: at least 1s", *p.ttl)
	}
	n, err := strconv.Atoi(o.devices)
	if err != nil {
		return fmt.Errorf("-n %q: a pool lends a count of devices, not %q", o.devices, o.devices)
	}
	p.n = n
	if fraction == "" && size == "" && o.share != "" {
		return errors.New("$GPUFABRIC_SHARE is not read in a pool: give -p or -m")
	}
	p.share, err = parseShare(fraction, size)
	return err
}

// reserve reserves (or looks up) the run's devices and points the run at
// them: o.server, and the capability as the session's token. The
// returned function releases what reserve reserved and stops watching.
func (p *runPool) reserve(ctx context.Context, o *runOptions) (func(), error) {
	if !p.active {
		return func() {}, nil
	}
	cli, c, err := p.store.client(ctx)
	if err != nil {
		return nil, err
	}
	closeAll := func() { c.Close(); cli.Close() }
	var r pool.Reservation
	var lease clientv3.LeaseID
	var stopKeep context.CancelFunc = func() {}
	if p.reservation != "" {
		if r, err = pool.Lookup(ctx, cli, p.reservation); err != nil {
			closeAll()
			return nil, fmt.Errorf("$GPUFABRIC_RESERVATION: %w", err)
		}
	} else {
		l, err := cli.Grant(ctx, int64((*p.ttl+time.Second-1)/time.Second))
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%w: %v", pool.ErrUnavailable, err)
		}
		lease = l.ID
		kctx, cancel := context.WithCancel(context.Background())
		stopKeep = cancel
		// Through outages of the store too: the program runs on.
		go func() { _ = pool.KeepLease(kctx, cli, lease) }()
		policy, err := parsePolicy(*p.spread, *p.pack)
		if err == nil {
			r, err = c.Reserve(ctx, pool.Request{N: p.n, Share: p.share, Duration: *p.limit, Lease: lease, Host: engine.BootID(), Node: *p.node, Policy: policy})
		}
		if err != nil {
			cancel()
			_, _ = cli.Revoke(context.Background(), lease)
			closeAll()
			return nil, err
		}
	}
	release := func() {
		stopKeep()
		if lease != 0 {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = cli.Revoke(rctx, lease)
			cancel()
		}
		closeAll()
	}
	// The program's devices are numbered server by server, in the order
	// of the reservation's holds; each server gets its own capability.
	var names []string
	count := map[string]int{}
	for _, h := range r.Holds {
		if count[h.Server] == 0 {
			names = append(names, h.Server)
		}
		count[h.Server]++
	}
	addrs := map[string]string{}
	snapshot := c.View().Snapshot()
	for _, s := range snapshot.Servers {
		addrs[s.Name] = s.Addr
	}
	if err := disjointAddresses(r, snapshot.Servers); err != nil {
		release()
		return nil, fmt.Errorf("reservation %s: %w", r.ID, err)
	}
	var servers, tokens, devices []string
	for _, name := range names {
		if addrs[name] == "" {
			release()
			return nil, fmt.Errorf("reservation %s: server %s has left the pool", r.ID, name)
		}
		capability, err := c.Capability(r, name)
		if err != nil {
			release()
			return nil, err
		}
		servers, tokens = append(servers, addrs[name]), append(tokens, capability)
		devices = append(devices, strconv.Itoa(count[name]))
	}
	o.server, o.token, o.devices = strings.Join(servers, ","), strings.Join(tokens, ","), strings.Join(devices, ",")
	if h := r.Holds[0]; h.Millionths > 0 {
		o.share = strconv.FormatFloat(float64(h.Millionths)/1e6, 'f', -1, 64)
	} else {
		o.share = strconv.FormatUint(h.Bytes, 10) + "B"
	}
	fmt.Fprintf(os.Stderr, "gpufabric run: reservation %s: %s\n", r.ID, describeHolds(r))
	wctx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchReservation(wctx, cli, r, names)
	}()
	return func() {
		stopWatch()
		wg.Wait()
		release()
	}, nil
}

// disjointAddresses refuses a reservation whose devices on different
// servers may hand out the same device addresses (servers started in one
// --address-slot): the program could not tell whose memory an address is.
// The library checks again, and checks each allocation where a backend
// reports no range.
func disjointAddresses(r pool.Reservation, servers []pool.Server) error {
	type held struct {
		server    string
		index     int
		low, high uint64
	}
	var hs []held
	for _, h := range r.Holds {
		for _, s := range servers {
			for _, d := range s.Devices {
				if s.Name == h.Server && d.Index == h.Device && d.AddrHigh != 0 {
					hs = append(hs, held{s.Name, d.Index, d.AddrLow, d.AddrHigh})
				}
			}
		}
	}
	for i, a := range hs {
		for _, b := range hs[:i] {
			if a.server != b.server && a.low < b.high && b.low < a.high {
				return fmt.Errorf("devices %s:%d and %s:%d hand out the same device addresses: start one of the servers with another --address-slot", b.server, b.index, a.server, a.index)
			}
		}
	}
	return nil
}

// watchReservation says on stderr why the run's reservation ended under
// it: the program's sessions were ended by the server, and its next CUDA
// call fails; this line says why. It also says when one of the servers
// left the pool: with devices on several servers, the others' go on.
func watchReservation(ctx context.Context, cli *clientv3.Client, r pool.Reservation, servers []string) {
	wch := cli.Watch(ctx, pool.Prefix+"resv/"+r.ID)
	sch := cli.Watch(ctx, pool.Prefix+"servers/", clientv3.WithPrefix())
	lost := map[string]bool{}
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case wr, ok = <-wch:
		case sr, sok := <-sch:
			if !sok {
				sch = nil // the reservation's own watch still says when it ends
				continue
			}
			for _, ev := range sr.Events {
				name := strings.TrimPrefix(string(ev.Kv.Key), pool.Prefix+"servers/")
				if !slices.Contains(servers, name) {
					continue
				}
				// A server cut off from the store past its lease leaves the
				// pool and joins again, its sessions untouched.
				if ev.Type != mvccpb.DELETE {
					if lost[name] {
						delete(lost, name)
						fmt.Fprintf(os.Stderr, "gpufabric run: server %s is back in the pool: reservation %s holds its devices again\n", name, r.ID)
					}
					continue
				}
				if !lost[name] {
					lost[name] = true
					fmt.Fprintf(os.Stderr, "gpufabric run: server %s left the pool (it stopped, or died, or lost the store for longer than its lease): reservation %s is lost, and if the server is gone the program's GPU calls on its devices fail\n", name, r.ID)
				}
			}
			continue
		}
		if !ok {
			return
		}
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.DELETE {
				continue
			}
			why := "it was released (gpufabric release)"
			if !r.Expires.IsZero() && !time.Now().Before(r.Expires) {
				why = fmt.Sprintf("it reached its time limit (%s)", r.Expires.Sub(r.Created).Round(time.Second))
			}
			fmt.Fprintf(os.Stderr, "gpufabric run: reservation %s ended: %s; the program's GPU sessions were ended and their memory freed\n", r.ID, why)
			return
		}
	}
}
