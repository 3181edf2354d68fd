package pool

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store users and the role of the servers, when etcd's authentication is
// on. The root user is the broker's; servers share one user whose role
// may write what a server writes. They are trusted infrastructure: the
// role can also delete any reservation and write any hold, which a server
// needs to end reservations at their time limits.
const (
	RootUser   = "root"
	ServerUser = "gpufabric-server"
	ServerRole = "gpufabric-server"
)

// Files in the data directory that keep the store users' passwords,
// readable by the owner only.
const (
	rootPasswordFile   = "root-password"
	serverPasswordFile = "server-password"
)

// StoreCredentials are a user and password of the store, and where it
// is when that is not where they were asked for (a broker in front of an
// external cluster tells its servers the cluster's URLs).
type StoreCredentials struct {
	Username  string   `json:"username"`
	Password  string   `json:"password"`
	Endpoints []string `json:"endpoints,omitempty"`
}

// SecureStore turns etcd's authentication on in the store that at
// reaches (its endpoints and TLS files), the first time, and returns the
// root's and the servers' credentials. The passwords are made at the
// first start and kept in dir (0600); later starts read them. A store
// whose authentication is on with another root password is refused: an
// operator who turned it on puts the root's and the servers' passwords in
// the files first.
func SecureStore(ctx context.Context, at StoreConfig, dir string) (root, server StoreCredentials, err error) {
	rootPW, err := SecretFile(filepath.Join(dir, rootPasswordFile))
	if err != nil {
		return root, server, err
	}
	serverPW, err := SecretFile(filepath.Join(dir, serverPasswordFile))
	if err != nil {
		return root, server, err
	}
	root = StoreCredentials{Username: RootUser, Password: rootPW}
	server = StoreCredentials{Username: ServerUser, Password: serverPW}
	// With authentication off, etcd accepts any credentials: this
	// connects either way, and the status says which it is.
	// The store is this process's: patience costs nothing, and
	// authenticating is a bcrypt comparison, slow on a loaded machine.
	at.Username, at.Password = root.Username, root.Password
	if at.DialTimeout == 0 {
		at.DialTimeout = 30 * time.Second
	}
	cli, err := Connect(ctx, at)
	if err != nil {
		return root, server, fmt.Errorf("the store refused the root password in %s: %w", filepath.Join(dir, rootPasswordFile), err)
	}
	defer cli.Close()
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return root, server, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// A first start, or one that stopped half-way: every step tolerates
	// having been done.
	firstStart := []func() error{
		func() error { _, err := cli.UserAdd(ctx, RootUser, rootPW); return err },
		func() error { _, err := cli.UserChangePassword(ctx, RootUser, rootPW); return err },
		func() error { _, err := cli.UserGrantRole(ctx, RootUser, "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, ServerRole); return err },
		// Servers read the whole pool (the key, reservations, holds)...
		func() error {
			_, err := cli.RoleGrantPermission(ctx, ServerRole, Prefix, clientv3.GetPrefixRangeEnd(Prefix), clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, ServerUser, serverPW); return err },
		func() error { _, err := cli.UserChangePassword(ctx, ServerUser, serverPW); return err },
		func() error { _, err := cli.UserGrantRole(ctx, ServerUser, ServerRole); return err },
	}
	var steps []func() error
	if !st.Enabled {
		steps = firstStart
	}
	// ...and write their registrations and address slots, and delete
	// reservations and holds at time limits. Granted again at every start,
	// so that a store made by an older version gains what servers need now.
	for _, p := range []string{"servers/", "slots/", "dev/", "resv/"} {
		steps = append(steps, func() error {
			_, err := cli.RoleGrantPermission(ctx, ServerRole, Prefix+p, clientv3.GetPrefixRangeEnd(Prefix+p), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		})
	}
	if !st.Enabled {
		steps = append(steps, func() error { _, err := cli.AuthEnable(ctx); return err })
	}
	for _, step := range steps {
		if err := step(); err != nil && !strings.Contains(err.Error(), "already exists") {
			return root, server, fmt.Errorf("turning the store's authentication on: %w", err)
		}
	}
	return root, server, nil
}

// SecretFile reads a secret kept in path, making it (0600) the first
// time: the store's passwords, the broker's admin token.
func SecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s is empty", path)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [24]byte
	_, _ = rand.Read(r[:])
	s := base64.RawURLEncoding.EncodeToString(r[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("keep a secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return s, nil
}
