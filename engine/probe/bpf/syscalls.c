// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * syscalls.c: time from sys_enter to sys_exit of the threads the engine
 * registers (and, when asked, every thread of its process), per class.
 * Blocking calls count their whole wait: a read() on an idle socket is
 * time in class read.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_INCALL 16384

struct incall {
	__u64 start;
	__u32 role;
	__u32 metric;
};

/* TID -> the call it is in. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_INCALL);
	__type(key, __u32);
	__type(value, struct incall);
} incall SEC(".maps");

static __always_inline __u32 classify(long id)
{
	switch (id) {
#if defined(__TARGET_ARCH_x86)
	case 0:   /* read */
	case 17:  /* pread64 */
	case 19:  /* readv */
	case 45:  /* recvfrom */
	case 47:  /* recvmsg */
	case 299: /* recvmmsg */
		return M_SYS_READ;
	case 1:   /* write */
	case 18:  /* pwrite64 */
	case 20:  /* writev */
	case 44:  /* sendto */
	case 46:  /* sendmsg */
	case 307: /* sendmmsg */
		return M_SYS_WRITE;
	case 202: /* futex */
		return M_SYS_FUTEX;
	case 232: /* epoll_wait */
	case 281: /* epoll_pwait */
	case 441: /* epoll_pwait2 */
		return M_SYS_EPOLL;
#elif defined(__TARGET_ARCH_arm64)
	case 63:  /* read */
	case 65:  /* readv */
	case 67:  /* pread64 */
	case 207: /* recvfrom */
	case 212: /* recvmsg */
	case 243: /* recvmmsg */
		return M_SYS_READ;
	case 64:  /* write */
	case 66:  /* writev */
	case 68:  /* pwrite64 */
	case 206: /* sendto */
	case 211: /* sendmsg */
	case 269: /* sendmmsg */
		return M_SYS_WRITE;
	case 98:  /* futex */
		return M_SYS_FUTEX;
	case 22:  /* epoll_pwait */
	case 441: /* epoll_pwait2 */
		return M_SYS_EPOLL;
#endif
	default:
		return M_SYS_OTHER;
	}
}

/* The entry of a thread is written in place and never deleted (start 0
 * means "not in a call"): map updates and deletes cost far more than
 * lookups, and the LRU evicts the entries of threads gone. */
SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct incall *c;
	int role;

	role = role_of(config_of(), tid, id >> 32);
	if (role < 0)
		return 0;
	c = bpf_map_lookup_elem(&incall, &tid);
	if (c) {
		c->role = role;
		c->metric = classify((long)ctx->args[1]);
		c->start = bpf_ktime_get_ns();
		return 0;
	}
	struct incall n = {
		.role = role,
		.metric = classify((long)ctx->args[1]),
		.start = bpf_ktime_get_ns(),
	};
	bpf_map_update_elem(&incall, &tid, &n, BPF_ANY);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct incall *c;
	__u64 now, start;

	if (foreign_thread(config_of(), id >> 32))
		return 0;
	c = bpf_map_lookup_elem(&incall, &tid);
	if (!c || c->start == 0)
		return 0;
	start = c->start;
	c->start = 0;
	now = bpf_ktime_get_ns();
	if (now > start)
		record((int)c->role, c->metric, now - start);
	return 0;
}
