// Package pool is the fabric's control plane: the registry of GPU servers,
// the reservations that lend their devices to clients, the capabilities a
// server checks before it lets a session attach, and the users' tokens and
// quotas. All of it lives in etcd, the store made for this job: a single
// embedded member (StartEmbedded) when nothing else is given, an external
// cluster (Connect with its endpoints and TLS files) when the pool spans
// machines.
//
// # Layout in the store
//
// Every key sits under Prefix ("/gpufabric/"):
//
//	servers/NAME                 a server and its devices, under the server's lease
//	dev/NAME/INDEX/rev           bumped by every reservation of the device (no lease)
//	dev/NAME/INDEX/h/ID          one reservation's hold on the device, under the holder's lease
//	resv/ID                      the reservation, under the holder's lease
//	usage/user/U, usage/group/G  bumped by every reservation of U or G (no lease)
//	quota/user/U, quota/group/G  the limits of U or G
//	tokens/SHA256                a user's token, stored hashed
//	key                          the pool key capabilities are signed with
//	slots/N                      the server that owns address slot N (no lease)
//
// # Never double-booked
//
// A reservation is placed from a view of the store (View, kept current by a
// watch) and written in one transaction that compares the mod revision of
// every rev key it read, the chosen devices' and the user's and group's,
// and bumps them. Two clients that read the same free capacity cannot both
// commit: the second's comparison fails, it waits until its view has caught
// up with the revision that beat it, and places again. A hold that
// vanishes (a lease expired, a release) only frees capacity, so it needs no
// bump: a view that still counts it is merely cautious.
//
// # What this package does not do
//
// It does not run GPU work or carry calls (engine/, interpose/), and it
// does not serve clients: the broker (pool/broker) does, as the store's
// root, placing with Client on their behalf. This package turns the
// embedded store's authentication on (SecureStore) and defines the
// servers' role; with an external cluster, etcd's own TLS client
// certificates and roles decide who may write.
package pool
