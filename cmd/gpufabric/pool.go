package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/gpufabric/gpufabric/pool"
	"github.com/gpufabric/gpufabric/pool/broker"
)

func init() {
	register("pool", "run the pool's store (an embedded single-member etcd) and its broker", runPoolStore)
	register("token", "issue a pool token for a user or the servers: gpufabric token create --user U --group G", runToken)
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
	usage := "the pool: the client URLs of its store, comma-separated (the one `gpufabric pool` runs, which also serves the broker; a server may name an external etcd cluster); $GPUFABRIC_POOL sets the default"
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

// connectAs opens the store as cred's user (none: no user, for a store
// without authentication, or one that knows this client by its TLS
// certificate).
// The store is at cred's endpoints when it names them (a broker in front
// of an external cluster), else at --pool.
func (p *poolFlags) connectAs(ctx context.Context, cred pool.StoreCredentials) (*clientv3.Client, error) {
	if p.endpoints == "" {
		return nil, errors.New("no pool given: --pool URL (or $GPUFABRIC_POOL) names its store")
	}
	eps, err := pool.ParseEndpoints(p.endpoints)
	if err != nil {
		return nil, err
	}
	if len(cred.Endpoints) > 0 {
		eps = cred.Endpoints
	}
	return pool.Connect(ctx, pool.StoreConfig{Endpoints: eps, CA: p.ca, Cert: p.cert, Key: p.key, Username: cred.Username, Password: cred.Password})
}

// broker is a client of the pool's broker, which the store's URLs also
// serve, presenting token.
func (p *poolFlags) broker(token string) (*broker.Client, error) {
	if p.endpoints == "" {
		return nil, errors.New("no pool given: --pool URL (or $GPUFABRIC_POOL) names it")
	}
	eps, err := pool.ParseEndpoints(p.endpoints)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := pool.ClientTLS(p.ca, p.cert, p.key)
	if err != nil {
		return nil, err
	}
	return broker.NewClient(eps, tlsConfig, token), nil
}

// user is a client of the broker with the user's token.
func (p *poolFlags) user() (*broker.Client, error) {
	if p.token == "" {
		return nil, errors.New("no pool token: --pool-token (or $GPUFABRIC_POOL_TOKEN); an operator issues one with gpufabric token create")
	}
	return p.broker(p.token)
}

// addAdminFlag adds the admin token's file to an operator's command.
func addAdminFlag(fs *flag.FlagSet) *string {
	def := filepath.Join(envOr("GPUFABRIC_POOL_DATA", "gpufabric-pool.etcd"), broker.AdminTokenFile)
	return fs.String("admin-token-file", envOr("GPUFABRIC_POOL_ADMIN_TOKEN_FILE", def), "the pool's admin token, which gpufabric pool writes in its data directory at the first start; $GPUFABRIC_POOL_ADMIN_TOKEN_FILE sets the default")
}

// admin is a client of the broker with the admin token read from file.
func (p *poolFlags) admin(file string) (*broker.Client, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the pool's admin token (--admin-token-file): %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("the pool's admin token: %s is empty", file)
	}
	return p.broker(tok)
}

const poolStoreSummary = `Run the pool's store, a single-member etcd embedded in this process, its
data on disk in --data-dir, and the pool's broker on the store's client
port. Clients reserve through the broker with their tokens (gpufabric run
-n N --pool URL) and never write the store, whose authentication is on;
servers join with a server token (gpufabric server --pool URL --pool-token
T, from gpufabric token create --server). The first start writes the admin
token, which token and quota need, to DATA-DIR/admin-token (0600). To grow
the store to 3 or 5 members, see docs/pool.md.

With --etcd URL,... it runs no store: the broker alone, on --listen, in
front of that external etcd cluster, whose authentication it turns on at
the first start; DATA-DIR then holds only its passwords and admin token.`

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
	// Not --pool nor $GPUFABRIC_POOL: a client's setting must not turn
	// the pool into a broker in front of itself.
	var ext poolFlags
	fs.StringVar(&ext.endpoints, "etcd", "", "run only the broker, in front of this external etcd cluster (client URLs, comma-separated)")
	fs.StringVar(&ext.ca, "etcd-ca", "", "with --etcd: CA of the members' certificates (PEM)")
	fs.StringVar(&ext.cert, "etcd-cert", "", "with --etcd: the broker's client certificate (PEM)")
	fs.StringVar(&ext.key, "etcd-key", "", "with --etcd: the private key of --etcd-cert (PEM)")
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
	if ext.endpoints != "" {
		return runFront(ctx, &ext, *dir, *listen, *cert, *key, *clientCA, log)
	}
	p, err := broker.Start(ctx, pool.EmbeddedConfig{Dir: *dir, Listen: *listen, Peer: *peer, Name: *name, Verbose: *verbose, CertFile: *cert, KeyFile: *key, ClientCA: *clientCA}, log)
	if err != nil {
		return err
	}
	defer p.Close()
	log.Info("pool store serving", "url", p.Store.ClientURL, "data_dir", *dir, "admin_token", filepath.Join(*dir, broker.AdminTokenFile))
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
		return nil
	case err := <-p.Store.Err():
		return fmt.Errorf("the store failed: %w", err)
	}
}

func runToken(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "create" && args[0] != "revoke" {
		return errors.New("usage: gpufabric token create --user U [--group G] | gpufabric token create --server | gpufabric token revoke TOKEN")
	}
	fs := newFlags("token "+args[0], "[flags]", "Issue a token the pool identifies a user (or the servers) by (printed once; the store keeps its hash), or revoke one.")
	pf := addPoolFlags(fs, false)
	adminFile := addAdminFlag(fs)
	server := fs.Bool("server", false, "a token GPU servers join the pool with (gpufabric server --pool-token), instead of a user's")
	user := fs.String("user", "", "the user the token identifies")
	group := fs.String("group", "", "the user's group, whose quota it also counts against")
	expires := fs.Duration("expires", 0, "the token stops working after this long (0: never)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *expires < 0 {
		return errors.New("--expires: negative")
	}
	bc, err := pf.admin(*adminFile)
	if err != nil {
		return err
	}
	defer bc.Close()
	if args[0] == "revoke" {
		if fs.NArg() != 1 {
			return errors.New("usage: gpufabric token revoke TOKEN")
		}
		return bc.RevokeToken(ctx, fs.Arg(0))
	}
	who := pool.Identity{User: *user, Group: *group}
	if *server {
		if *user != "" || *group != "" {
			return errors.New("token create --server: a server token names no user or group")
		}
		who = pool.Identity{User: "servers", Role: pool.RoleServer}
	}
	if *expires > 0 {
		who.Expires = time.Now().Add(*expires).UTC()
	}
	tok, err := bc.CreateToken(ctx, who)
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
	adminFile := addAdminFlag(fs)
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
	bc, err := pf.admin(*adminFile)
	if err != nil {
		return err
	}
	defer bc.Close()
	return bc.SetQuota(ctx, kind, name, q)
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

// runFront serves the broker alone on listen, in front of the external
// store ext names.
func runFront(ctx context.Context, ext *poolFlags, dir, listen, cert, key, clientCA string, log *slog.Logger) error {
	eps, err := pool.ParseEndpoints(ext.endpoints)
	if err != nil {
		return err
	}
	p, err := broker.Front(ctx, pool.StoreConfig{Endpoints: eps, CA: ext.ca, Cert: ext.cert, Key: ext.key}, dir, log)
	if err != nil {
		return err
	}
	defer p.Close()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("broker listen address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(broker.Path, p.Broker)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if cert != "" {
		scheme = "https"
		tlsConfig, err := serverTLS(cert, key, clientCA)
		if err != nil {
			l.Close()
			return err
		}
		l = tls.NewListener(l, tlsConfig)
	} else if key != "" || clientCA != "" {
		l.Close()
		return errors.New("--tls-key and --tls-client-ca go with --tls-cert")
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	log.Info("pool broker serving", "url", scheme+"://"+l.Addr().String(), "store", strings.Join(eps, ","), "data_dir", dir, "admin_token", filepath.Join(dir, broker.AdminTokenFile))
	select {
	case <-ctx.Done():
		log.Info("stopping: signal received")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-done:
		return fmt.Errorf("the broker stopped serving: %w", err)
	}
}

// serverTLS is the broker's TLS: its certificate, and client
// certificates required when clientCA is given.
func serverTLS(cert, key, clientCA string) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: clientCA, ClientCertAuth: clientCA != ""}
	c, err := info.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("broker TLS: %w", err)
	}
	return c, nil
}
