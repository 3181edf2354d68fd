package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gpufabric/gpufabric/pool"
)

// errNoBroker: an endpoint answered, but serves no broker.
var errNoBroker = errors.New("no pool broker")

// Client calls a pool's broker with one token: a user's, a server's, or
// the admin's.
type Client struct {
	endpoints []string
	token     string
	http      *http.Client
}

// CallTimeout bounds a call whose context has no deadline: a broker that
// hangs (its machine stopped) fails a request within it. The broker gives
// the store a second less, so that its own answer, which says what failed,
// comes first.
const CallTimeout = 5 * time.Second

// NewClient calls the broker at the first of endpoints (the store's client
// URLs, http:// or https://) that answers. tlsConfig, for https, may be
// nil (the system's roots).
func NewClient(endpoints []string, tlsConfig *tls.Config, token string) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig
	// A call bounds its own time (its context); this bounds a dial to a
	// broker that is gone, so another endpoint is tried.
	tr.ResponseHeaderTimeout = CallTimeout + 5*time.Second
	return &Client{endpoints: endpoints, token: token, http: &http.Client{Transport: tr}}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// call sends in (nil: a GET) to the call named and decodes the answer
// into out. A broker out of reach is pool.ErrUnavailable, whose text
// scripts and people look for.
func (c *Client) call(ctx context.Context, name string, in, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CallTimeout)
		defer cancel()
	}
	var body []byte
	method := http.MethodGet
	if in != nil {
		method = http.MethodPost
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var errs []error
	for _, ep := range c.endpoints {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(ep, "/")+Path+name, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		err = answer(resp, ep, out)
		if errors.Is(err, errNoBroker) {
			// A member of the cluster other than the broker's.
			errs = append(errs, err)
			continue
		}
		return err
	}
	if len(errs) > 0 && errors.Is(errs[len(errs)-1], errNoBroker) {
		return errors.Join(errs...)
	}
	return fmt.Errorf("%w: the pool's broker at %s: %w", pool.ErrUnavailable, strings.Join(c.endpoints, ","), errors.Join(errs...))
}

// answer reads a response: out on success, the broker's error otherwise.
func answer(resp *http.Response, ep string, out any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the broker's answer: %v", pool.ErrUnavailable, err)
	}
	if resp.StatusCode == http.StatusOK {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("the broker's answer: %w", err)
		}
		return nil
	}
	var e errorBody
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w at %s (a store member without one, or another service): %s", errNoBroker, ep, resp.Status)
		}
		return fmt.Errorf("the pool's broker at %s: %s", ep, resp.Status)
	}
	re := &remoteError{msg: e.Error, kind: errors.New(e.Kind)}
	for _, k := range kinds {
		if k.name == e.Kind {
			re.kind = k.err
		}
	}
	return re
}

// Reserve asks for devices under a lease of req.TTL; the holder renews it
// with KeepAlive, or lets it run out.
func (c *Client) Reserve(ctx context.Context, req Request) (Grant, error) {
	var g Grant
	err := c.call(ctx, "reserve", req, &g)
	return g, err
}

// Reservation is the grant of a reservation made earlier (by request).
func (c *Client) Reservation(ctx context.Context, id string) (Grant, error) {
	var g Grant
	err := c.call(ctx, "reservation", IDRequest{id}, &g)
	return g, err
}

// KeepAlive renews a reservation's lease once.
func (c *Client) KeepAlive(ctx context.Context, id string) (Alive, error) {
	var a Alive
	err := c.call(ctx, "keepalive", IDRequest{id}, &a)
	return a, err
}

// Release ends a reservation at once.
func (c *Client) Release(ctx context.Context, id string) error {
	return c.call(ctx, "release", IDRequest{id}, nil)
}

// Pool reads the pool's servers, devices and reservations.
func (c *Client) Pool(ctx context.Context) (PoolState, error) {
	var s PoolState
	err := c.call(ctx, "pool", nil, &s)
	return s, err
}

// Join exchanges a server token for the servers' store credentials.
func (c *Client) Join(ctx context.Context) (pool.StoreCredentials, error) {
	var cr pool.StoreCredentials
	err := c.call(ctx, "join", struct{}{}, &cr)
	return cr, err
}

// CreateToken issues a token (admin).
func (c *Client) CreateToken(ctx context.Context, who pool.Identity) (string, error) {
	var a TokenAnswer
	err := c.call(ctx, "admin/token", TokenRequest{who}, &a)
	return a.Token, err
}

// RevokeToken deletes a token (admin).
func (c *Client) RevokeToken(ctx context.Context, token string) error {
	return c.call(ctx, "admin/revoke", TokenAnswer{token}, nil)
}

// SetQuota sets a user's (kind "user") or group's quota (admin).
func (c *Client) SetQuota(ctx context.Context, kind, name string, q pool.Quota) error {
	return c.call(ctx, "admin/quota", QuotaRequest{kind, name, q}, nil)
}
