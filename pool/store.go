package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Prefix is where the pool's keys live in the store.
const Prefix = "/gpufabric/"

// ErrUnavailable says the store could not be reached.
var ErrUnavailable = errors.New("pool store unreachable")

// ErrStoreAuth says the store answered but refused this client: its
// authentication is on and the client has no credentials, or wrong ones,
// or its role may not do what it asked.
var ErrStoreAuth = errors.New("the pool's store refused this client")

// storeErr wraps an error of a store call: refused, or unreachable.
func storeErr(err error) error {
	if errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrPermissionDenied) || errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrInvalidAuthToken) {
		return fmt.Errorf("%w: %v", ErrStoreAuth, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// StoreConfig says how to reach the store.
type StoreConfig struct {
	// Endpoints are the etcd client URLs (http://host:port or https://...).
	Endpoints []string
	// CA, Cert and Key are PEM files: the CA that signs the members'
	// certificates, and this client's certificate and key for a cluster
	// that requires them. All empty: plain TCP, or the system's roots for
	// https endpoints.
	CA, Cert, Key string
	// DialTimeout bounds the first connection; 5 s when zero.
	DialTimeout time.Duration
	// Username and Password authenticate to a store with etcd's
	// authentication on (the broker's store always has it); empty: none.
	Username, Password string
}

// ParseEndpoints splits a comma-separated list of URLs, adding http:// to
// a bare host:port.
func ParseEndpoints(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs") {
			return nil, fmt.Errorf("store endpoint %q: want http://HOST:PORT or https://HOST:PORT", e)
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, errors.New("no store endpoint given")
	}
	return out, nil
}

// ClientTLS is the TLS configuration of a client of the store (or its
// broker) from PEM files: nil when all are empty (plain TCP, or the
// system's roots for https).
func ClientTLS(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("the store's TLS client certificate and key go together")
	}
	info := transport.TLSInfo{TrustedCAFile: ca, CertFile: cert, KeyFile: key}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("store TLS: %w", err)
	}
	return c, nil
}

// Connect opens a client of the store and checks that it answers.
func Connect(ctx context.Context, c StoreConfig) (*clientv3.Client, error) {
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	tlsConfig, err := ClientTLS(c.CA, c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.DialTimeout,
		TLS:         tlsConfig,
		Username:    c.Username,
		Password:    c.Password,
		Logger:      zap.NewNop(),
		// Keepalives notice a dead member, so the client moves on.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// A store that was away (restarted, its machine hung) must be
		// found again within a lease's TTL of its return, or the leases
		// held through the outage run out then. gRPC's own backoff
		// between dials grows to two minutes; ours stops at a second.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 3 * time.Second,
		})},
	})
	if err != nil {
		return nil, storeErr(err)
	}
	check, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	if _, err := cli.Get(check, Prefix+"key"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%s: %w", strings.Join(c.Endpoints, ","), storeErr(err))
	}
	return cli, nil
}

// Embedded is a single-member etcd run inside this process, its data on
// disk.
type Embedded struct {
	etcd  *embed.Etcd
	close sync.Once
	// ClientURL is where clients reach it.
	ClientURL string
	// InternalURL is where this process reaches it: ClientURL, or a plain
	// loopback URL when ClientURL requires client certificates.
	InternalURL string
}

// EmbeddedConfig says where the embedded member keeps its data and listens.
type EmbeddedConfig struct {
	// Dir is the data directory; created when missing.
	Dir string
	// Listen is the client address (host:port; port 0 picks a free one).
	Listen string
	// Peer is the peer address (host:port; port 0 picks a free one),
	// which other members dial when the cluster grows.
	Peer string
	// Name is the member's name; "gpufabric" when empty.
	Name string
	// Verbose keeps etcd's own logs at info instead of errors only.
	Verbose bool
	// CertFile and KeyFile, when set, serve clients over TLS (https);
	// ClientCA then also requires client certificates signed by it.
	CertFile, KeyFile, ClientCA string
	// Handlers are extra HTTP handlers served on the client port, by path
	// (the broker's API): clients then need one URL for everything.
	Handlers map[string]http.Handler
	// Cluster, when set, is the initial cluster of a new multi-member
	// store ("name=http://peer,..."), this member among them; its members
	// must start together, as a quorum is needed to serve. Empty: a
	// single member.
	Cluster string
}

// StartEmbedded starts an embedded single-member etcd and waits until it
// serves.
func StartEmbedded(c EmbeddedConfig) (*Embedded, error) {
	if c.Name == "" {
		c.Name = "gpufabric"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:2379"
	}
	if c.Peer == "" {
		c.Peer = "127.0.0.1:0"
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store data directory: %w", err)
	}
	if (c.CertFile == "") != (c.KeyFile == "") || (c.ClientCA != "" && c.CertFile == "") {
		return nil, errors.New("the store's TLS: a certificate and its key go together, and client certificates need them")
	}
	scheme := "http"
	if c.CertFile != "" {
		scheme = "https"
	}
	var ports portPicker
	defer ports.release()
	client, err := ports.pick(scheme, c.Listen)
	if err != nil {
		return nil, fmt.Errorf("store listen address: %w", err)
	}
	peer, err := ports.pick("http", c.Peer)
	if err != nil {
		return nil, fmt.Errorf("store peer address: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = c.Name
	cfg.Dir = filepath.Clean(c.Dir)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.UserHandlers = c.Handlers
	internal := client
	if c.CertFile != "" {
		// The process embedding the store (its broker, its server) reaches
		// it on a plain loopback port: a store that requires client
		// certificates would otherwise need one for itself. etcd's
		// authentication still guards that port.
		if internal, err = ports.pick("http", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("store internal address: %w", err)
		}
		cfg.ListenClientUrls = append(cfg.ListenClientUrls, *internal)
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	if c.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: c.CertFile, KeyFile: c.KeyFile, TrustedCAFile: c.ClientCA, ClientCertAuth: c.ClientCA != ""}
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(c.Name)
	if c.Cluster != "" {
		cfg.InitialCluster = c.Cluster
	}
	// etcd logs routine shutdowns at error level; only a fatal error is news.
	cfg.LogLevel = "fatal"
	if c.Verbose {
		cfg.LogLevel = "info"
	}
	cfg.LogOutputs = []string{"stderr"}
	// Every reservation writes revisions; without compaction the store
	// grows until etcd refuses writes (its 2 GiB backend quota). A view
	// lags the head by milliseconds, far less than the retention.
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = "periodic", "10m"
	ports.release()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start the embedded store: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("the embedded store failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("the embedded store was not ready within 60 s")
	}
	// The URLs chosen, not e.Clients[i]: etcd makes its listeners from a
	// map, so their order is not that of ListenClientUrls.
	return &Embedded{etcd: e, ClientURL: client.String(), InternalURL: internal.String()}, nil
}

// Err reports a fatal error of the running member.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the member.
func (e *Embedded) Close() { e.close.Do(e.etcd.Close) }

// portPicker turns host:port into a URL, choosing a free port for port 0:
// etcd must know its URLs before it listens, to name itself in the
// cluster. It holds each port it chose until release, so that the
// member's client, peer and internal URLs never get one port twice (the
// kernel may hand a port just closed out again).
type portPicker struct{ held []net.Listener }

func (p *portPicker) pick(scheme, hostport string) (*url.URL, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		p.held = append(p.held, l)
		hostport = l.Addr().String()
	}
	return url.Parse(scheme + "://" + hostport)
}

// release frees the ports chosen, for etcd to listen on.
func (p *portPicker) release() {
	for _, l := range p.held {
		l.Close()
	}
	p.held = nil
}
