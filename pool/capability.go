package pool

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// capPrefix marks a capability among the credentials a Hello may carry.
const capPrefix = "gfcap1."

// Claims are what a capability grants: devices of one server, each with a
// most bytes, until Expires, for the reservation whose record carries Nonce.
type Claims struct {
	Reservation string    `json:"r"`
	Server      string    `json:"s"`
	Devices     []int     `json:"d"`
	Bytes       []uint64  `json:"b"`
	Expires     time.Time `json:"e,omitzero"`
	Nonce       string    `json:"n"`
}

// IsCapability reports whether a credential looks like a capability.
func IsCapability(s string) bool { return strings.HasPrefix(s, capPrefix) }

// Capability is the credential a client presents to server for its share
// of reservation r: the claims and their HMAC-SHA256 under the pool key.
func Capability(key []byte, r Reservation, server string) (string, error) {
	c := Claims{Reservation: r.ID, Server: server, Expires: r.Expires, Nonce: r.Nonce}
	for _, h := range r.Holds {
		if h.Server == server {
			c.Devices = append(c.Devices, h.Device)
			c.Bytes = append(c.Bytes, h.Bytes)
		}
	}
	if len(c.Devices) == 0 {
		return "", fmt.Errorf("reservation %s holds nothing on %s", r.ID, server)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return capPrefix + base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac(key, body)), nil
}

// Capability is c's credential for server of reservation r.
func (c *Client) Capability(r Reservation, server string) (string, error) {
	return Capability(c.key, r, server)
}

func mac(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// ParseCapability checks a capability's signature and time limit and
// returns its claims. Whether its reservation still exists is the
// caller's to check (Verifier does).
func ParseCapability(key []byte, s string, now time.Time) (Claims, error) {
	var c Claims
	rest, ok := strings.CutPrefix(s, capPrefix)
	if !ok {
		return c, fmt.Errorf("%w: not a capability", ErrBadCapability)
	}
	b64body, b64mac, ok := strings.Cut(rest, ".")
	if !ok {
		return c, fmt.Errorf("%w: malformed", ErrBadCapability)
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64body)
	sig, err2 := base64.RawURLEncoding.DecodeString(b64mac)
	if err1 != nil || err2 != nil {
		return c, fmt.Errorf("%w: malformed", ErrBadCapability)
	}
	if !hmac.Equal(sig, mac(key, body)) {
		return c, fmt.Errorf("%w: its signature is not the pool's (forged, or from another pool)", ErrBadCapability)
	}
	if err := json.Unmarshal(body, &c); err != nil || len(c.Devices) != len(c.Bytes) || len(c.Devices) == 0 {
		return c, fmt.Errorf("%w: malformed claims", ErrBadCapability)
	}
	if !c.Expires.IsZero() && !now.Before(c.Expires) {
		return c, fmt.Errorf("%w: reservation %s reached its time limit at %s", ErrBadCapability, c.Reservation, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

// poolKey reads the pool key, creating it the first time: whoever comes
// first writes it in a transaction that fails if another did, and both
// then read the one that won. It reads first: a server of a store with
// authentication on may read the key but not write it (the broker made it).
func poolKey(ctx context.Context, cli *clientv3.Client) ([]byte, error) {
	if resp, err := cli.Get(ctx, poolKeyKey); err == nil && len(resp.Kvs) == 1 {
		return decodeKey(resp.Kvs[0].Value)
	}
	var k [32]byte
	_, _ = rand.Read(k[:])
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(poolKeyKey), "=", 0)).
		Then(clientv3.OpPut(poolKeyKey, base64.StdEncoding.EncodeToString(k[:]))).
		Else(clientv3.OpGet(poolKeyKey)).Commit()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if resp.Succeeded {
		return k[:], nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("the pool key vanished")
	}
	return decodeKey(kvs[0].Value)
}

func decodeKey(v []byte) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(string(v))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("the pool key in the store is malformed")
	}
	return key, nil
}
