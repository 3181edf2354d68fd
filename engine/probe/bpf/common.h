/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * common.h: the maps every probe shares (the Go side creates them once and
 * hands them to each program as it loads it) and the log2 histogram.
 *
 * Keep the constants and layouts in step with engine/probe/layout.go.
 */
#ifndef GPUFABRIC_COMMON_H
#define GPUFABRIC_COMMON_H

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "log2.h"

#define MAX_ROLES 16
#define MAX_TRACKED 4096

/* Metrics: one histogram per (role, metric). */
enum metric {
	M_RUNQ = 0,    /* wake-up (or preemption) to running again */
	M_OFFCPU = 1,  /* switched out to switched back in */
	M_SYS_READ = 2,
	M_SYS_WRITE = 3,
	M_SYS_FUTEX = 4,
	M_SYS_EPOLL = 5,
	M_SYS_OTHER = 6,
	NMETRICS = 7,
};

/* A log2 histogram of nanoseconds: buckets[b] counts values v with
 * floor(log2(v)) == b (0 and 1 go to bucket 0). */
struct hist {
	__u64 buckets[NBUCKETS];
	__u64 count;
	__u64 sum;
};

struct config {
	__u32 tgid;         /* the server's process, 0 for none */
	__u32 process_role; /* the role its untracked threads count under */
	__u32 foreign;      /* tracked threads outside tgid (all, when it is 0) */
	__u32 pad;
	__u64 gen;          /* bumped by every change of roles, never 0 */
};

/* What the probes keep of a thread, in its task's local storage: found
 * from the task without hashing anything, and freed by the kernel with
 * the task, so a reused thread id never inherits a stale stamp. Only
 * threads with a role get one. Timestamps are 0 when not set. */
struct thread_state {
	__u64 gen;            /* the config's gen when role was read */
	__s32 role;
	__u32 metric;         /* the class of the system call in flight */
	__u64 sys_start;      /* sys_enter of the call in flight */
	__u64 runnable_since; /* woken or preempted, not yet on a CPU */
	__u64 offcpu_since;   /* switched out */
};

/* TID -> role id, filled from Go (Probes.Track). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TRACKED);
	__type(key, __u32);
	__type(value, __u32);
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* Index role*NMETRICS+metric. Per-CPU: no atomics on the hot path; Go sums
 * the CPUs' copies. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_ROLES * NMETRICS);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

static __always_inline struct config *config_of(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/* foreign_thread reports whether a thread of process tgid can be neither
 * tracked nor watched: the first test of every program, because the
 * tracepoints fire for every thread of the machine and most are not the
 * server's. It costs an array lookup, which the verifier inlines, where a
 * lookup in the tracked hash costs a hash of the key and a bucket walk. */
static __always_inline bool foreign_thread(struct config *cfg, __u32 tgid)
{
	return !cfg || (cfg->foreign == 0 && cfg->tgid != tgid);
}

/* role_of returns the role a thread counts under, or -1 when it is
 * neither tracked nor a thread of the watched process. */
static __always_inline int role_of(struct config *cfg, __u32 tid, __u32 tgid)
{
	__u32 *role;

	if (foreign_thread(cfg, tgid))
		return -1;
	role = bpf_map_lookup_elem(&tracked, &tid);
	if (role)
		return *role < MAX_ROLES ? (int)*role : -1;
	if (cfg->tgid != 0 && cfg->tgid == tgid && cfg->process_role < MAX_ROLES)
		return (int)cfg->process_role;
	return -1;
}

/* state_of returns the state of task t when it has a role, else NULL.
 * The role is read from the maps once per change of the config (gen),
 * then from the task's storage, which costs no hash lookup. */
static __always_inline struct thread_state *state_of(struct config *cfg, struct task_struct *t)
{
	struct thread_state *st;
	__u32 tgid = t->tgid; /* a BTF pointer: read directly, no helper call */
	int role;

	if (foreign_thread(cfg, tgid))
		return NULL;
	st = bpf_task_storage_get(&threads, t, 0, 0);
	if (st && st->gen == cfg->gen)
		return st->role >= 0 ? st : NULL;
	role = role_of(cfg, t->pid, tgid);
	if (!st) {
		if (role < 0)
			return NULL;
		st = bpf_task_storage_get(&threads, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!st)
			return NULL;
	}
	st->role = role;
	st->gen = cfg->gen;
	return role >= 0 ? st : NULL;
}

static __always_inline void hist_add(struct hist *h, __u64 v)
{
	__u32 b = log2_u64(v);

	if (b >= NBUCKETS)
		b = NBUCKETS - 1;
	h->buckets[b]++;
	h->count++;
	h->sum += v;
}

static __always_inline void record(int role, __u32 metric, __u64 ns)
{
	__u32 idx;
	struct hist *h;

	if (role < 0 || role >= MAX_ROLES || metric >= NMETRICS)
		return;
	idx = (__u32)role * NMETRICS + metric;
	h = bpf_map_lookup_elem(&hists, &idx);
	if (h)
		hist_add(h, ns);
}

#endif
