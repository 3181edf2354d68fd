// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sched.c: run-queue delay and off-CPU time of the threads the engine
 * registers (and, when asked, of every thread of its process).
 *
 *   run-queue delay: from the moment a thread becomes runnable (woken by
 *   sched_wakeup/sched_wakeup_new, or preempted while still runnable) to the
 *   sched_switch that puts it on a CPU: time it wanted a CPU and had none.
 *
 *   off-CPU time: from the sched_switch that takes a thread off a CPU to the
 *   one that puts it back: blocked time plus its run-queue delay.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_PENDING 16384

/* TID -> when it became runnable. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_PENDING);
	__type(key, __u32);
	__type(value, __u64);
} runnable_since SEC(".maps");

/* TID -> when it left its CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_PENDING);
	__type(key, __u32);
	__type(value, __u64);
} offcpu_since SEC(".maps");

/* stamp sets tid's time in m, in place when it has an entry: entries are
 * never deleted (0 means none), since map updates and deletes cost far
 * more than lookups; the LRU evicts the entries of threads gone. */
static __always_inline void stamp(void *m, __u32 tid, __u64 now)
{
	__u64 *ts = bpf_map_lookup_elem(m, &tid);

	if (ts)
		*ts = now;
	else
		bpf_map_update_elem(m, &tid, &now, BPF_ANY);
}

/* since returns the time in tid's entry of m and clears it, 0 if none. */
static __always_inline __u64 since(void *m, __u32 tid)
{
	__u64 *ts = bpf_map_lookup_elem(m, &tid);
	__u64 t;

	if (!ts)
		return 0;
	t = *ts;
	*ts = 0;
	return t;
}

static __always_inline void mark_runnable(struct task_struct *p)
{
	__u32 tid = BPF_CORE_READ(p, pid);
	__u32 tgid = BPF_CORE_READ(p, tgid);
	__u64 now;

	if (role_of(config_of(), tid, tgid) < 0)
		return;
	now = bpf_ktime_get_ns();
	stamp(&runnable_since, tid, now);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	mark_runnable(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	struct config *cfg = config_of();
	__u32 tid, tgid, next_tgid;
	__u64 now, ts;
	int role;

	tgid = BPF_CORE_READ(prev, tgid);
	next_tgid = BPF_CORE_READ(next, tgid);
	if (foreign_thread(cfg, tgid) && foreign_thread(cfg, next_tgid))
		return 0;
	now = bpf_ktime_get_ns();

	/* The thread leaving the CPU. */
	tid = BPF_CORE_READ(prev, pid);
	if (tid != 0 && role_of(cfg, tid, tgid) >= 0) {
		stamp(&offcpu_since, tid, now);
		/* Preempted (still runnable): it waits on the run queue from now. */
		if (preempt || prev_state == 0)
			stamp(&runnable_since, tid, now);
	}

	/* The thread coming on. Its entries were stamped only while it had a
	 * role; it is looked up again, since it may have lost it since. */
	tid = BPF_CORE_READ(next, pid);
	if (tid == 0)
		return 0;
	role = role_of(cfg, tid, next_tgid);
	if (role < 0)
		return 0;
	ts = since(&runnable_since, tid);
	if (ts && now > ts)
		record(role, M_RUNQ, now - ts);
	ts = since(&offcpu_since, tid);
	if (ts && now > ts)
		record(role, M_OFFCPU, now - ts);
	return 0;
}
