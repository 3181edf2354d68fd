// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * syscalls.c: time from sys_enter to sys_exit of the threads the engine
 * registers (and, when asked, every thread of its process), per class.
 * Blocking calls count their whole wait: a read() on an idle socket is
 * time in class read.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

/* tp_btf rather than raw_tracepoint: a BTF program may take the current
 * task (bpf_get_current_task_btf) and so its task storage, where the call
 * in flight is kept without a hash lookup. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	struct thread_state *st = state_of(config_of(), bpf_get_current_task_btf());

	if (!st)
		return 0;
	st->metric = classify(id);
	st->sys_start = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	struct config *cfg = config_of();
	struct thread_state *st;
	__u64 now, start;

	if (foreign_thread(cfg, bpf_get_current_pid_tgid() >> 32))
		return 0;
	st = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0, 0);
	if (!st || st->sys_start == 0)
		return 0;
	start = st->sys_start;
	st->sys_start = 0;
	now = bpf_ktime_get_ns();
	if (now > start)
		record(st->role, st->metric, now - start);
	return 0;
}
