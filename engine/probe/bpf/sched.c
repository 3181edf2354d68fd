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
 *
 * The stamps live in each thread's task storage (common.h).
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void mark_runnable(struct task_struct *p)
{
	struct thread_state *st = state_of(config_of(), p);

	if (st)
		st->runnable_since = bpf_ktime_get_ns();
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
	struct thread_state *out, *in;
	__u64 now = 0, ts;

	/* The idle task (pid 0) has no role: state_of leaves it out. The
	 * clock is read only when a thread has one. */
	out = state_of(cfg, prev);
	in = state_of(cfg, next);

	/* The thread leaving the CPU. Preempted (still runnable), it waits on
	 * the run queue from now. */
	if (out) {
		now = bpf_ktime_get_ns();
		out->offcpu_since = now;
		if (preempt || prev_state == 0)
			out->runnable_since = now;
	}

	/* The thread coming on. */
	if (in) {
		if (!now)
			now = bpf_ktime_get_ns();
		ts = in->runnable_since;
		in->runnable_since = 0;
		if (ts && now > ts)
			record(in->role, M_RUNQ, now - ts);
		ts = in->offcpu_since;
		in->offcpu_since = 0;
		if (ts && now > ts)
			record(in->role, M_OFFCPU, now - ts);
	}
	return 0;
}
