package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
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

// reserve reserves (or looks up) the run's devices through the pool's
// broker and points the run at them: o.server, and the capabilities as
// the session's token. The returned function releases what reserve
// reserved and stops renewing it.
func (p *runPool) reserve(ctx context.Context, o *runOptions) (func(), error) {
	if !p.active {
		return func() {}, nil
	}
	bc, err := p.store.user()
	if err != nil {
		return nil, err
	}
	var g broker.Grant
	if p.reservation != "" {
		if g, err = bc.Reservation(ctx, p.reservation); err != nil {
			bc.Close()
			return nil, fmt.Errorf("$GPUFABRIC_RESERVATION: %w", err)
		}
	} else {
		policy, err := parsePolicy(*p.spread, *p.pack)
		if err == nil {
			g, err = bc.Reserve(ctx, brokerRequest(p.n, p.share, *p.ttl, *p.limit, *p.node, policy))
		}
		if err != nil {
			bc.Close()
			return nil, err
		}
	}
	r := g.Reservation
	release := func() {
		if p.reservation == "" {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := bc.Release(rctx, r.ID); err != nil && !errors.Is(err, pool.ErrNotFound) {
				fmt.Fprintf(os.Stderr, "gpufabric run: releasing reservation %s: %v (its lease runs out within %v)\n", r.ID, err, *p.ttl)
			}
			cancel()
		}
		bc.Close()
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
	for _, s := range g.Servers {
		addrs[s.Name] = s.Addr
	}
	if err := disjointAddresses(r, g.Servers); err != nil {
		release()
		return nil, fmt.Errorf("reservation %s: %w", r.ID, err)
	}
	var servers, tokens, devices []string
	for _, name := range names {
		if addrs[name] == "" || g.Capabilities[name] == "" {
			release()
			return nil, fmt.Errorf("reservation %s: server %s has left the pool", r.ID, name)
		}
		servers, tokens = append(servers, addrs[name]), append(tokens, g.Capabilities[name])
		devices = append(devices, strconv.Itoa(count[name]))
	}
	o.server, o.token, o.devices = strings.Join(servers, ","), strings.Join(tokens, ","), strings.Join(devices, ",")
	if h := r.Holds[0]; h.Millionths > 0 {
		o.share = strconv.FormatFloat(float64(h.Millionths)/1e6, 'f', -1, 64)
	} else {
		o.share = strconv.FormatUint(h.Bytes, 10) + "B"
	}
	fmt.Fprintf(os.Stderr, "gpufabric run: reservation %s: %s\n", r.ID, describeHolds(r))
	// A reservation made by request lives under its own unrenewed lease;
	// one made for this run lives while this renews it.
	every := *p.ttl / 3
	if p.reservation != "" {
		every = max(*p.ttl/3, time.Second)
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		keepReservation(wctx, os.Stderr, bc, r, names, every, p.reservation == "")
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

// keepReservation renews the run's reservation through the broker every
// interval (renew: when the run made it) and says on stderr why it ended
// under the program: the servers ended its sessions, so its next CUDA
// call fails; this line says why. It also says when one of the servers
// left the pool (the others' devices go on), and when the broker is out
// of reach: the program runs on, its sessions are with the servers, and
// the renewals resume when the broker is back (a reservation whose lease
// ran out meanwhile is gone, and this says so).
func keepReservation(ctx context.Context, stderr io.Writer, bc *broker.Client, r pool.Reservation, servers []string, interval time.Duration, renew bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lost := map[string]bool{}
	var away error
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		var a broker.Alive
		var err error
		if renew {
			a, err = bc.KeepAlive(cctx, r.ID)
		} else {
			_, err = bc.Reservation(cctx, r.ID)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, pool.ErrNotFound):
			why := "it was released (gpufabric release)"
			switch {
			case !r.Expires.IsZero() && !time.Now().Before(r.Expires):
				why = fmt.Sprintf("it reached its time limit (%s)", r.Expires.Sub(r.Created).Round(time.Second))
			case away != nil:
				why = "its lease ran out while the pool was out of reach"
			}
			fmt.Fprintf(stderr, "gpufabric run: reservation %s ended: %s; the program's GPU sessions were ended and their memory freed\n", r.ID, why)
			return
		case errors.Is(err, pool.ErrBadToken) || errors.Is(err, broker.ErrForbidden):
			// No renewal will succeed: the token was revoked or expired.
			fmt.Fprintf(stderr, "gpufabric run: reservation %s can no longer be renewed: %v; it ends within its lease's TTL, and the program's GPU calls then fail\n", r.ID, err)
			return
		case err != nil:
			if away == nil {
				fmt.Fprintf(stderr, "gpufabric run: cannot renew reservation %s: %v; the program runs on, and renewals resume when the pool answers\n", r.ID, err)
			}
			away = err
			continue
		}
		if away != nil {
			fmt.Fprintf(stderr, "gpufabric run: the pool answers again; reservation %s renewed\n", r.ID)
			away = nil
		}
		for _, name := range a.Lost {
			if !slices.Contains(servers, name) || lost[name] {
				continue
			}
			lost[name] = true
			fmt.Fprintf(stderr, "gpufabric run: server %s left the pool (it stopped, or died, or lost the store for longer than its lease): reservation %s is lost, and if the server is gone the program's GPU calls on its devices fail\n", name, r.ID)
		}
		// A server cut off from the store past its lease leaves the pool
		// and joins again, its sessions untouched.
		for name := range lost {
			if !slices.Contains(a.Lost, name) {
				delete(lost, name)
				fmt.Fprintf(stderr, "gpufabric run: server %s is back in the pool: reservation %s holds its devices again\n", name, r.ID)
			}
		}
	}
}
