package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/gpufabric/gpufabric/engine"
	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
)

func init() {
	register("request", "reserve GPUs from the pool for later runs: gpufabric request -n N -p F [--hold D]", runRequest)
	register("release", "end a reservation: gpufabric release ID", runRelease)
	register("list", "the pool's servers, devices, free shares and who holds what", runList)
	register("health", "each pool server's and device's health, lease age and last error", runHealth)
}

// placementFlags are the flags that shape a reservation.
type placementFlags struct {
	n            *int
	fraction     *string
	size         *string
	spread, pack *bool
	node         *int
}

func addPlacementFlags(fs *flag.FlagSet) *placementFlags {
	return &placementFlags{
		n:        fs.Int("n", 1, "devices to reserve"),
		fraction: fs.String("p", "", "share of each device as a fraction, e.g. 0.5 (default: whole devices)"),
		size:     fs.String("m", "", "share of each device as a memory size, e.g. 4GiB (instead of -p)"),
		spread:   fs.Bool("spread", false, "put the devices on different servers where the pool has enough"),
		pack:     fs.Bool("pack", false, "fill the fullest devices first, leaving whole devices free"),
		node:     fs.Int("numa-node", -1, "this client's NUMA node, preferred among devices on its own host (-1: none)"),
	}
}

func (p *placementFlags) request(ttl, limit time.Duration) (broker.Request, error) {
	share, err := parseShare(*p.fraction, *p.size)
	if err != nil {
		return broker.Request{}, err
	}
	policy, err := parsePolicy(*p.spread, *p.pack)
	if err != nil {
		return broker.Request{}, err
	}
	return brokerRequest(*p.n, share, ttl, limit, *p.node, policy), nil
}

// brokerRequest asks the broker for n devices of share under a lease of
// ttl, from this host.
func brokerRequest(n int, share pool.Share, ttl, limit time.Duration, node int, policy pool.Policy) broker.Request {
	return broker.Request{N: n, Fraction: share.Fraction, Bytes: share.Bytes, TTL: ttl, Duration: limit, Host: engine.BootID(), Node: node, Policy: policy}
}

const requestSummary = `Reserve devices from the pool and print the reservation's id, which later
runs use (GPUFABRIC_RESERVATION=ID gpufabric run -- COMMAND) until --hold
passes or gpufabric release ID ends it.`

func runRequest(ctx context.Context, args []string) error {
	fs := newFlags("request", "[flags]", requestSummary)
	pf := addPoolFlags(fs, true)
	pl := addPlacementFlags(fs)
	hold := fs.Duration("hold", time.Hour, "how long the reservation lasts: its lease and its time limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hold < time.Second {
		return fmt.Errorf("--hold %v: at least 1s", *hold)
	}
	req, err := pl.request(*hold, *hold)
	if err != nil {
		return err
	}
	req.Hold = true
	bc, err := pf.user()
	if err != nil {
		return err
	}
	defer bc.Close()
	g, err := bc.Reserve(ctx, req)
	if err != nil {
		return err
	}
	r := g.Reservation
	fmt.Fprintf(os.Stderr, "reserved %s until %s: %s\n", r.ID, r.Expires.Local().Format(time.TimeOnly), describeHolds(r))
	fmt.Println(r.ID)
	return nil
}

func runRelease(ctx context.Context, args []string) error {
	fs := newFlags("release", "[flags] ID", "End a reservation of yours: its sessions end and its devices return to the pool.")
	pf := addPoolFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	bc, err := pf.user()
	if err != nil {
		return err
	}
	defer bc.Close()
	return bc.Release(ctx, fs.Arg(0))
}

// snapshot parses a read-only command's flags and reads the pool once
// from its broker, which needs no token to show it.
func snapshot(ctx context.Context, name, summary string, args []string) (broker.PoolState, error) {
	fs := newFlags(name, "[flags]", summary)
	pf := addPoolFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return broker.PoolState{}, err
	}
	bc, err := pf.broker("")
	if err != nil {
		return broker.PoolState{}, err
	}
	defer bc.Close()
	return bc.Pool(ctx)
}

func runList(ctx context.Context, args []string) error {
	st, err := snapshot(ctx, "list", "List the pool's servers and devices, each device's free memory, and the reservations: who holds what, since when.", args)
	if err != nil {
		return err
	}
	s := st.Snapshot
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tDEVICE\tNAME\tMEMORY\tFREE\tHEALTH\tADDRESS")
	for _, srv := range s.Servers {
		for _, d := range srv.Devices {
			used := s.Used[fmt.Sprintf("%s/%d", srv.Name, d.Index)]
			free := uint64(0)
			if used < d.Memory {
				free = d.Memory - used
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s (%.0f%%)\t%s\t%s\n", srv.Name, d.Index, d.Name, humanize.IBytes(d.Memory), humanize.IBytes(free), 100*float64(free)/float64(max(d.Memory, 1)), d.Health, srv.Addr)
		}
	}
	w.Flush()
	lost := map[string]bool{}
	for _, id := range s.Lost() {
		lost[id] = true
	}
	fmt.Println()
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RESERVATION\tUSER\tGROUP\tHOLDS\tSINCE\tLIMIT\tSTATE")
	for _, r := range s.Reservations {
		state := "held"
		if lost[r.ID] {
			state = "lost (a server left the pool)"
		}
		limit := "-"
		if !r.Expires.IsZero() {
			limit = time.Until(r.Expires).Round(time.Second).String() + " left"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s ago\t%s\t%s\n", r.ID, r.User, orDash(r.Group), describeHolds(r), age(r.Created), limit, state)
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runHealth(ctx context.Context, args []string) error {
	st, err := snapshot(ctx, "health", "Show each pool server's health: its devices', how long it has been in the pool, the time left on its lease, and its last error.", args)
	if err != nil {
		return err
	}
	s := st.Snapshot
	if len(s.Servers) == 0 {
		fmt.Println("no servers in the pool")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SERVER\tIN POOL\tLEASE LEFT\tDEVICES\tLAST ERROR")
	var bad []string
	for _, srv := range s.Servers {
		leaseCol := st.LeaseLeft[srv.Name].String()
		if e, ok := st.LeaseErr[srv.Name]; ok {
			leaseCol = "? (" + e + ")"
		}
		var devs []string
		for _, d := range srv.Devices {
			devs = append(devs, fmt.Sprintf("%d:%s", d.Index, d.Health))
			if d.Health != "ok" {
				bad = append(bad, fmt.Sprintf("%s/%d", srv.Name, d.Index))
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", srv.Name, age(srv.Since), leaseCol, strings.Join(devs, " "), orDash(srv.LastError))
	}
	w.Flush()
	if len(bad) > 0 {
		return fmt.Errorf("unhealthy devices: %s", strings.Join(bad, " "))
	}
	return nil
}
