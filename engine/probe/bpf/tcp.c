// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcp.c: per-connection TCP state of the server's connections, chosen by
 * port: a connection whose local port is in `ports` (the server's listening
 * ports, filled from Go) is watched: the server's side of its clients'
 * connections. A client's side on the same host is not, which halves the
 * work per call of a client that runs beside its server.
 *
 *   tcp_probe (each segment a socket in ESTABLISHED receives): the smoothed
 *   RTT into a log2 histogram (nanoseconds; the kernel keeps it in
 *   microseconds), and the latest send queue (bytes written, not yet
 *   acknowledged: write_seq - snd_una), receive queue (bytes received, not
 *   yet read by the application: rcv_nxt - copied_seq) and cwnd.
 *   tcp_retransmit_skb: retransmitted segments.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "log2.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NPORTS 65536
#define MAX_CONNS 4096

struct conn_key {
	__u8 laddr[16]; /* IPv4: the first 4 bytes */
	__u8 raddr[16];
	__u16 lport; /* host order */
	__u16 rport; /* host order */
	__u16 family;
	__u16 pad;
};

struct conn_val {
	__u64 buckets[NBUCKETS]; /* srtt, log2 of nanoseconds */
	__u64 count;
	__u64 sum;
	__u64 retransmits;
	__u64 last_ns; /* bpf_ktime_get_ns of the latest event */
	__u32 srtt_us;
	__u32 snd_queue;
	__u32 rcv_queue;
	__u32 snd_cwnd;
};

/* Port (host order) -> 1 when connections with that local port
 * are watched. An array, not a hash: tcp_probe fires for every segment any
 * socket of the machine receives, and an array lookup is inlined by the
 * verifier where a hash lookup hashes the key. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NPORTS);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

static __always_inline bool watched(__u32 port)
{
	__u8 *on = bpf_map_lookup_elem(&ports, &port);

	return on && *on;
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_key);
	__type(value, struct conn_val);
} conns SEC(".maps");

/* One zeroed value to insert new connections from (too big for the stack;
 * a map rather than .rodata so that the Go side can share it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_val);
} conn_zero SEC(".maps");

/* The sockets come from BTF-typed tracepoint arguments, so their fields are
 * read directly (CO-RE relocated through kernel.h's preserve_access_index)
 * rather than through bpf_probe_read_kernel, a helper call per field. */
static __always_inline struct conn_val *conn_of(const struct sock *sk)
{
	struct conn_key key = {};
	struct conn_val *v, *zero;
	__u32 zkey = 0;
	__u16 family;

	key.lport = sk->__sk_common.skc_num;
	key.rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (!watched(key.lport))
		return 0;
	family = sk->__sk_common.skc_family;
	key.family = family;
	if (family == AF_INET) {
		__be32 a;

		a = sk->__sk_common.skc_rcv_saddr;
		__builtin_memcpy(key.laddr, &a, 4);
		a = sk->__sk_common.skc_daddr;
		__builtin_memcpy(key.raddr, &a, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&key.laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&key.raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return 0;
	}
	v = bpf_map_lookup_elem(&conns, &key);
	if (v)
		return v;
	zero = bpf_map_lookup_elem(&conn_zero, &zkey);
	if (!zero)
		return 0;
	bpf_map_update_elem(&conns, &key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

/* Both tracepoints run under the socket's lock, and a connection's entry
 * belongs to one socket, so its counters are updated without atomics. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp;
	struct conn_val *v;
	__u32 srtt_us, b;
	__u64 ns;

	v = conn_of(sk);
	if (!v)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	srtt_us = tp->srtt_us >> 3;
	v->srtt_us = srtt_us;
	v->snd_queue = tp->write_seq - tp->snd_una;
	v->rcv_queue = tp->rcv_nxt - tp->copied_seq;
	v->snd_cwnd = tp->snd_cwnd;
	v->last_ns = bpf_ktime_get_ns();
	if (srtt_us == 0)
		return 0;
	ns = (__u64)srtt_us * 1000;
	b = log2_u64(ns);
	if (b >= NBUCKETS)
		b = NBUCKETS - 1;
	v->buckets[b]++;
	v->count++;
	v->sum += ns;
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct conn_val *v;

	v = conn_of(sk);
	if (!v)
		return 0;
	v->retransmits++;
	v->last_ns = bpf_ktime_get_ns();
	return 0;
}
