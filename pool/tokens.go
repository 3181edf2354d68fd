package pool

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// tokenPrefix marks the pool's user tokens.
const tokenPrefix = "gftok_"

// CreateToken issues a token for who. Only its SHA-256 is stored: a reader
// of the store learns who has tokens, not the tokens.
func CreateToken(ctx context.Context, cli *clientv3.Client, who Identity) (string, error) {
	if err := validName("user", who.User); err != nil {
		return "", err
	}
	if who.Group != "" {
		if err := validName("group", who.Group); err != nil {
			return "", err
		}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	v, _ := json.Marshal(who)
	if _, err := cli.Put(ctx, tokenKey(hashToken(tok)), string(v)); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return tok, nil
}

// Identify returns the identity a token was issued to. It reads the
// member it is connected to without a quorum round (a serializable read):
// the broker asks on every call, and a linearizable read costs a raft
// round, most of a call's time. On the embedded single member that is
// exact; on a cluster a revocation may take the member's lag (milliseconds)
// to be seen.
func Identify(ctx context.Context, cli *clientv3.Client, token string) (Identity, error) {
	var who Identity
	if !strings.HasPrefix(token, tokenPrefix) {
		return who, fmt.Errorf("%w: not a pool token (they begin %s; gpufabric token create issues them)", ErrBadToken, tokenPrefix)
	}
	resp, err := cli.Get(ctx, tokenKey(hashToken(token)), clientv3.WithSerializable())
	if err != nil {
		return who, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return who, fmt.Errorf("%w: the pool issued no such token, or revoked it", ErrBadToken)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &who); err != nil {
		return who, fmt.Errorf("token record: %w", err)
	}
	if !who.Expires.IsZero() && !time.Now().Before(who.Expires) {
		return Identity{}, fmt.Errorf("%w: it expired at %s", ErrBadToken, who.Expires.Format(time.RFC3339))
	}
	return who, nil
}

// RevokeToken deletes a token; reservations already made keep running.
func RevokeToken(ctx context.Context, cli *clientv3.Client, token string) error {
	resp, err := cli.Delete(ctx, tokenKey(hashToken(token)))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if resp.Deleted == 0 {
		return ErrBadToken
	}
	return nil
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// SetQuota sets the quota of a user (kind "user") or group ("group").
func SetQuota(ctx context.Context, cli *clientv3.Client, kind, name string, q Quota) error {
	if kind != "user" && kind != "group" {
		return fmt.Errorf("quota of a %q: want user or group", kind)
	}
	if err := validName(kind, name); err != nil {
		return err
	}
	v, _ := json.Marshal(q)
	if _, err := cli.Put(ctx, quotaKey(kind, name), string(v)); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

func validName(kind, name string) error {
	if name == "" || strings.ContainsAny(name, "/ \t\n") || len(name) > 128 {
		return fmt.Errorf("%s %q: want a name of 1 to 128 characters without '/' or spaces", kind, name)
	}
	return nil
}
