package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
)

func init() {
	register("pool", "run the pool's store: an embedded single-member etcd", runPoolStore)
	register("token", "issue a pool token for a user: gpufabric token create --user U --group G", runToken)
	register("quota", "set a user's or group's quota: gpufabric quota set --user U --max-devices N ...", runQuota)
}

// poolFlags are the flags of every command that talks to the pool's store.
type poolFlags struct {
	endpoints     string
	ca, cert, key string
	token         string
}

// addPoolFlags adds the store's flags to fs; --etcd is another name of
// --pool, for those who think of the store by what it is.
func addPoolFlags(fs *flag.FlagSet, withToken bool) *poolFlags {
	p := &poolFlags{}
	usage := "the pool's store: etcd client URLs, comma-separated (an external cluster, or the one `gpufabric pool` runs); $GPUFABRIC_POOL sets the default"
	fs.StringVar(&p.endpoints, "pool", os.Getenv("GPUFABRIC_POOL"), usage)
	fs.StringVar(&p.endpoints, "etcd", os.Getenv("GPUFABRIC_POOL"), "the same as --pool")
	fs.StringVar(&p.ca, "pool-ca", os.Getenv("GPUFABRIC_POOL_CA"), "CA of the store's members' certificates (PEM), for https endpoints; $GPUFABRIC_POOL_CA sets the default")
	fs.StringVar(&p.cert, "pool-cert", os.Getenv("GPUFABRIC_POOL_CERT"), "client certificate (PEM) for a store that requires one; $GPUFABRIC_POOL_CERT sets the default")
	fs.StringVar(&p.key, "pool-key", os.Getenv("GPUFABRIC_POOL_KEY"), "the private key of --pool-cert (PEM); $GPUFABRIC_POOL_KEY sets the default")
	if withToken {
		fs.StringVar(&p.token, "pool-token", os.Getenv("GPUFABRIC_POOL_TOKEN"), "your pool token (gpufabric token create issues them); $GPUFABRIC_POOL_TOKEN sets the default")
	}
	return p
}

// connect opens the store.
func (p *poolFlags) connect(ctx context.Context) (*clientv3.Client, error) {
	if p.endpoints == "" {
		return nil, errors.New("no pool given: --pool URL (or $GPUFABRIC_POOL) names its store")
	}
	eps, err := pool.ParseEndpoints(p.endpoints)
	if err != nil {
		return nil, err
	}
	return pool.Connect(ctx, pool.StoreConfig{Endpoints: eps, CA: p.ca, Cert: p.cert, Key: p.key})
}

// client opens the store and follows the pool as the token's user.
func (p *poolFlags) client(ctx context.Context) (*clientv3.Client, *pool.Client, error) {
	if p.token == "" {
		return nil, nil, errors.New("no pool token: --pool-token (or $GPUFABRIC_POOL_TOKEN); an operator issues one with gpufabric token create")
	}
	cli, err := p.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	who, err := pool.Identify(ctx, cli, p.token)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	c, err := pool.NewClient(ctx, cli, who)
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	return cli, c, nil
}

const poolStoreSummary = `Run the pool's store, a single-member etcd embedded in this process, its
data on disk in --data-dir. Servers join it (gpufabric server --pool URL)
and clients reserve from it (gpufabric run -n N --pool URL). To grow it to
3 or 5 members, see README.md: the pool then names their URLs instead.`

func runPoolStore(ctx context.Context, args []string) error {
	fs := newFlags("pool", "[flags]", poolStoreSummary)
	dir := fs.String("data-dir", envOr("GPUFABRIC_POOL_DATA", "gpufabric-pool.etcd"), "the store's data directory; $GPUFABRIC_POOL_DATA sets the default")
	listen := fs.String("listen", "127.0.0.1:2379", "client address of the store (port 0: a free one)")
	peer := fs.String("peer", "127.0.0.1:2380", "peer address, which members added later dial (port 0: a free one)")
	name := fs.String("name", "gpufabric", "the member's name in the etcd cluster")
	verbose := fs.Bool("verbose", false, "show etcd's own logs (quiet by default)")
	cert := fs.String("tls-cert", "", "serve clients over TLS (https) with this certificate (PEM; with --tls-key)")
	key := fs.String("tls-key", "", "the private key of --tls-cert (PEM)")
	clientCA := fs.String("tls-client-ca", "", "require client certificates signed by this CA (PEM; with --tls-cert)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := newLogger("info")
	if err != nil {
		return err
	}
	e, err := pool.StartEmbedded(pool.EmbeddedConfig{Dir: *dir, Listen: *listen, Peer: *peer, Name: *name, Verbose: *verbose, CertFile: *cert, KeyFile: *key, ClientCA: *clientCA})
	if err != nil {
		return err
	}
	defer e.Close()
	log.Info("pool store serving", "url", e.ClientURL, "data_dir", *dir)
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
		return nil
	case err := <-e.Err():
		return fmt.Errorf("the store failed: %w", err)
	}
}

func runToken(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" && args[0] != "revoke" {
		return errors.New("usage: gpufabric token create --user U [--group G] | gpufabric token revoke TOKEN")
	}
	fs := newFlags("token "+args[0], "[flags]", "Issue a token the pool identifies a user by (printed once; the store keeps its hash), or revoke one.")
	pf := addPoolFlags(fs, false)
	user := fs.String("user", "", "the user the token identifies")
	group := fs.String("group", "", "the user's group, whose quota it also counts against")
	expires := fs.Duration("expires", 0, "the token stops working after this long (0: never)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *expires < 0 {
		return errors.New("--expires: negative")
	}
	cli, err := pf.connect(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	if args[0] == "revoke" {
		if fs.NArg() != 1 {
			return errors.New("usage: gpufabric token revoke TOKEN")
		}
		return pool.RevokeToken(ctx, cli, fs.Arg(0))
	}
	who := pool.Identity{User: *user, Group: *group}
	if *expires > 0 {
		who.Expires = time.Now().Add(*expires).UTC()
	}
	tok, err := pool.CreateToken(ctx, cli, who)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func runQuota(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "set" {
		return errors.New("usage: gpufabric quota set (--user U | --group G) [--max-devices N] [--max-memory SIZE] [--max-duration D]")
	}
	fs := newFlags("quota set", "(--user U | --group G) [flags]", "Set what a user or group may hold at once; 0 is unlimited.")
	pf := addPoolFlags(fs, false)
	user := fs.String("user", "", "the user the quota binds")
	group := fs.String("group", "", "the group the quota binds (all its users together)")
	var q pool.Quota
	fs.IntVar(&q.MaxDevices, "max-devices", 0, "most devices held at once")
	mem := fs.String("max-memory", "0", "most memory held at once over all devices, e.g. 64GiB")
	fs.DurationVar(&q.MaxDuration, "max-duration", 0, "longest reservation, e.g. 8h; also the time limit of reservations that name none")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(*mem)
	if err != nil {
		return fmt.Errorf("--max-memory %q: %w", *mem, err)
	}
	q.MaxBytes = n
	if q.MaxDevices < 0 || q.MaxDuration < 0 {
		return errors.New("a quota is not negative; 0 is unlimited")
	}
	kind, name := "user", *user
	switch {
	case (*user == "") == (*group == ""):
		return errors.New("quota set: --user or --group, one of them")
	case *group != "":
		kind, name = "group", *group
	}
	cli, err := pf.connect(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	return pool.SetQuota(ctx, cli, kind, name, q)
}

// parseShare reads -p and -m as a pool share.
func parseShare(fraction, size string) (pool.Share, error) {
	switch {
	case fraction != "" && size != "":
		return pool.Share{}, errors.New("-p and -m both given: a share is a fraction or a size")
	case size != "":
		n, err := humanize.ParseBytes(size)
		if err != nil || n == 0 {
			return pool.Share{}, fmt.Errorf("-m %q: want a size such as 512MiB or 4GiB", size)
		}
		return pool.Share{Bytes: n}, nil
	case fraction != "":
		var f float64
		if _, err := fmt.Sscan(fraction, &f); err != nil || !(f > 0 && f <= 1) {
			return pool.Share{}, fmt.Errorf("-p %q: want a fraction in (0, 1]", fraction)
		}
		return pool.Share{Fraction: f}, nil
	}
	return pool.Share{Fraction: 1}, nil
}

// parsePolicy reads --spread and --pack.
func parsePolicy(spread, pack bool) (pool.Policy, error) {
	switch {
	case spread && pack:
		return 0, errors.New("--spread and --pack both given")
	case spread:
		return pool.Spread, nil
	case pack:
		return pool.Pack, nil
	}
	return pool.LeastLoaded, nil
}

// age prints how long ago t was, to the second.
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}

// describeHolds prints a reservation's holds as server:device(share).
func describeHolds(r pool.Reservation) string {
	var parts []string
	for _, h := range r.Holds {
		parts = append(parts, fmt.Sprintf("%s:%d(%s)", h.Server, h.Device, humanize.IBytes(h.Bytes)))
	}
	return strings.Join(parts, " ")
}
