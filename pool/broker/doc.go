// Package broker is the pool's front door: clients reserve, renew and
// release devices through it and never touch the store. It authenticates
// each request by the user's token (hashed in the store, with expiry and
// revocation), places the reservation with pool.Client (the one-transaction
// placement stays in package pool), gives it the etcd lease it lives under
// (a released reservation's lease, kept alive, when one of its TTL is in
// stock: see leases.go), signs its capabilities with the pool key, and returns them. Only the
// broker holds the store's root credentials and the key; servers get a
// role of their own by exchanging a server token (Join); operators issue
// tokens and set quotas with the admin token kept in the data directory.
//
// # Transport
//
// HTTP/JSON on net/http, served by the embedded etcd on its own client
// port (embed.Config.UserHandlers) under /gpufabric/v1/: clients keep the
// one URL they had (--pool http://HOST:2379), a store served over https
// serves the broker over the same TLS, and the codec is encoding/json with
// sizes bounded and unknown fields refused, not a protocol of our own.
// gRPC (which etcd brings) would need generated code for five calls that
// are made once per program or once per TTL/3.
//
// # Calls
//
//	POST reserve      Request      → Grant     user token
//	POST reservation  IDRequest    → Grant     user token (own reservations)
//	POST keepalive    IDRequest    → Alive     user token (own reservations)
//	POST release      IDRequest    → {}        user token (own reservations)
//	GET  pool                      → PoolState none: servers, devices, holders
//	POST join                      → pool.StoreCredentials   server token
//	POST admin/token  TokenRequest → {token}   admin token
//	POST admin/revoke {token}      → {}        admin token
//	POST admin/quota  QuotaRequest → {}        admin token
//
// Errors are JSON {"error": message, "kind": kind}; the client turns the
// kind back into the sentinel error (pool.ErrQuota, pool.ErrBadToken, ...)
// so callers test them as they would pool.Client's.
//
// # What this package does not do
//
// It does not place (package pool does) and does not run servers. It
// serves on the embedded store's client port (Start) or, in front of an
// external cluster (Front), on a listener of the caller's.
package broker
