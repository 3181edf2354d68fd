// See ibv_shim.h.

#include "ibv_shim.h"
#include "ibv_abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The exported functions used, looked up once.
static struct {
	void **(*get_device_list)(int *);
	void (*free_device_list)(void **);
	const char *(*get_device_name)(void *);
	void *(*open_device)(void *);
	int (*close_device)(void *);
	int (*query_device)(void *, struct gf_ibv_device_attr *);
	int (*query_port)(void *, uint8_t, struct gf_ibv_port_attr *);
	int (*query_gid)(void *, uint8_t, int, union gf_ibv_gid *);
	void *(*alloc_pd)(void *);
	int (*dealloc_pd)(void *);
	struct gf_ibv_mr *(*reg_mr)(void *, void *, size_t, int);
	int (*dereg_mr)(struct gf_ibv_mr *);
	struct gf_ibv_comp_channel *(*create_comp_channel)(void *);
	int (*destroy_comp_channel)(struct gf_ibv_comp_channel *);
	struct gf_ibv_cq *(*create_cq)(void *, int, void *, struct gf_ibv_comp_channel *, int);
	int (*destroy_cq)(struct gf_ibv_cq *);
	struct gf_ibv_qp *(*create_qp)(void *, struct gf_ibv_qp_init_attr *);
	int (*modify_qp)(struct gf_ibv_qp *, struct gf_ibv_qp_attr *, int);
	int (*query_qp)(struct gf_ibv_qp *, struct gf_ibv_qp_attr *, int, struct gf_ibv_qp_init_attr *);
	int (*destroy_qp)(struct gf_ibv_qp *);
	int (*get_cq_event)(struct gf_ibv_comp_channel *, struct gf_ibv_cq **, void **);
	void (*ack_cq_events)(struct gf_ibv_cq *, unsigned int);
} ibv;

int gf_ibv_load(const char *path, char *err, size_t errlen) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "%s", dlerror());
		return GF_IBV_DLOPEN;
	}
#define SYM(field, name)                                              \
	do {                                                          \
		*(void **)&ibv.field = dlsym(h, name);                \
		if (!ibv.field) {                                     \
			snprintf(err, errlen, "%s", name);            \
			return GF_IBV_SYMBOL;                         \
		}                                                     \
	} while (0)
	SYM(get_device_list, "ibv_get_device_list");
	SYM(free_device_list, "ibv_free_device_list");
	SYM(get_device_name, "ibv_get_device_name");
	SYM(open_device, "ibv_open_device");
	SYM(close_device, "ibv_close_device");
	SYM(query_device, "ibv_query_device");
	SYM(query_port, "ibv_query_port");
	SYM(query_gid, "ibv_query_gid");
	SYM(alloc_pd, "ibv_alloc_pd");
	SYM(dealloc_pd, "ibv_dealloc_pd");
	SYM(reg_mr, "ibv_reg_mr");
	SYM(dereg_mr, "ibv_dereg_mr");
	SYM(create_comp_channel, "ibv_create_comp_channel");
	SYM(destroy_comp_channel, "ibv_destroy_comp_channel");
	SYM(create_cq, "ibv_create_cq");
	SYM(destroy_cq, "ibv_destroy_cq");
	SYM(create_qp, "ibv_create_qp");
	SYM(modify_qp, "ibv_modify_qp");
	SYM(query_qp, "ibv_query_qp");
	SYM(destroy_qp, "ibv_destroy_qp");
	SYM(get_cq_event, "ibv_get_cq_event");
	SYM(ack_cq_events, "ibv_ack_cq_events");
#undef SYM
	return GF_IBV_OK;
}

int gf_ibv_device_names(char *buf, size_t len) {
	int n = 0;
	void **list = ibv.get_device_list(&n);
	if (!list)
		return -errno;
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		const char *name = ibv.get_device_name(list[i]);
		size_t k = strlen(name) + 1;
		if (at + k <= len) {
			memcpy(buf + at, name, k);
			at += k;
		}
	}
	ibv.free_device_list(list);
	return n;
}

struct gf_dev {
	void *ctx;
};

uintptr_t gf_ibv_open_device(const char *name, int port, int gid_index, struct gf_ibv_attr *attr, int *err) {
	int n = 0;
	void **list = ibv.get_device_list(&n);
	if (!list) {
		*err = errno;
		return 0;
	}
	void *ctx = NULL;
	for (int i = 0; i < n && !ctx; i++)
		if (strcmp(ibv.get_device_name(list[i]), name) == 0) {
			ctx = ibv.open_device(list[i]);
			if (!ctx)
				*err = errno;
		}
	ibv.free_device_list(list);
	if (!ctx) {
		if (!*err)
			*err = ENODEV;
		return 0;
	}
	struct gf_ibv_device_attr da;
	struct gf_ibv_port_attr pa;
	union gf_ibv_gid gid;
	memset(&da, 0, sizeof da);
	memset(&pa, 0, sizeof pa);
	memset(&gid, 0, sizeof gid);
	int r = ibv.query_device(ctx, &da);
	if (!r)
		r = ibv.query_port(ctx, (uint8_t)port, &pa);
	if (!r)
		r = ibv.query_gid(ctx, (uint8_t)port, gid_index, &gid);
	if (r) {
		*err = r;
		ibv.close_device(ctx);
		return 0;
	}
	struct gf_dev *d = calloc(1, sizeof *d);
	if (!d) {
		*err = ENOMEM;
		ibv.close_device(ctx);
		return 0;
	}
	d->ctx = ctx;
	attr->max_mr_size = da.max_mr_size;
	attr->max_qp_wr = da.max_qp_wr;
	attr->phys_port_cnt = da.phys_port_cnt;
	attr->port_state = pa.state;
	attr->active_mtu = pa.active_mtu;
	attr->lid = pa.lid;
	attr->link_layer = pa.link_layer;
	memcpy(attr->gid, gid.raw, 16);
	return (uintptr_t)d;
}

void gf_ibv_close_device(uintptr_t h) {
	struct gf_dev *d = (struct gf_dev *)h;
	ibv.close_device(d->ctx);
	free(d);
}

uintptr_t gf_ibv_alloc_pd(uintptr_t h, int *err) {
	struct gf_dev *d = (struct gf_dev *)h;
	void *pd = ibv.alloc_pd(d->ctx);
	if (!pd)
		*err = errno;
	return (uintptr_t)pd;
}

int gf_ibv_dealloc_pd(uintptr_t pd) { return ibv.dealloc_pd((void *)pd); }

uintptr_t gf_ibv_reg_mr(uintptr_t pd, uintptr_t addr, size_t len, int access, uint32_t *lkey, uint32_t *rkey, int *err) {
	struct gf_ibv_mr *mr = ibv.reg_mr((void *)pd, (void *)addr, len, access);
	if (!mr) {
		*err = errno;
		return 0;
	}
	*lkey = mr->lkey;
	*rkey = mr->rkey;
	return (uintptr_t)mr;
}

int gf_ibv_dereg_mr(uintptr_t mr) { return ibv.dereg_mr((struct gf_ibv_mr *)mr); }

struct gf_qp {
	struct gf_ibv_qp *qp;
	struct gf_ibv_cq *cq;
	struct gf_ibv_comp_channel *ch;
	unsigned int events; // taken and not yet acknowledged
};

uintptr_t gf_ibv_create_qp(uintptr_t h, uintptr_t pd, int port, int send_depth, int recv_depth, int max_inline,
                           uint32_t *qpn, int *fd, int *inl, int *err) {
	struct gf_dev *d = (struct gf_dev *)h;
	struct gf_qp *q = calloc(1, sizeof *q);
	if (!q) {
		*err = ENOMEM;
		return 0;
	}
	q->ch = ibv.create_comp_channel(d->ctx);
	if (!q->ch)
		goto fail;
	int fl = fcntl(q->ch->fd, F_GETFL);
	if (fl < 0 || fcntl(q->ch->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	q->cq = ibv.create_cq(d->ctx, send_depth + recv_depth, NULL, q->ch, 0);
	if (!q->cq)
		goto fail;
	struct gf_ibv_qp_init_attr ia;
	memset(&ia, 0, sizeof ia);
	ia.send_cq = q->cq;
	ia.recv_cq = q->cq;
	ia.cap.max_send_wr = send_depth;
	ia.cap.max_recv_wr = recv_depth;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	ia.cap.max_inline_data = max_inline;
	ia.qp_type = GF_IBV_QPT_RC;
	q->qp = ibv.create_qp((void *)pd, &ia);
	if (!q->qp && max_inline > 0) {
		// Some devices take less inline data than asked, or none
		// (PVRDMA): go without rather than fail.
		ia.cap.max_inline_data = 0;
		q->qp = ibv.create_qp((void *)pd, &ia);
	}
	if (!q->qp)
		goto fail;
	*inl = ia.cap.max_inline_data; // what the device granted
	struct gf_ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = GF_IBV_QPS_INIT;
	a.port_num = port;
	a.qp_access_flags = GF_IBV_ACCESS_REMOTE_WRITE; // the MRs say who may
	int r = ibv.modify_qp(q->qp, &a, GF_IBV_QP_STATE | GF_IBV_QP_PKEY_INDEX | GF_IBV_QP_PORT | GF_IBV_QP_ACCESS_FLAGS);
	if (r) {
		errno = r;
		goto fail;
	}
	*qpn = q->qp->qp_num;
	*fd = q->ch->fd;
	return (uintptr_t)q;
fail:
	*err = errno ? errno : EINVAL;
	if (q->qp)
		ibv.destroy_qp(q->qp);
	if (q->cq)
		ibv.destroy_cq(q->cq);
	if (q->ch)
		ibv.destroy_comp_channel(q->ch);
	free(q);
	return 0;
}

int gf_ibv_connect_qp(uintptr_t h, int port, int gid_index, uint32_t psn, uint32_t remote_qpn,
                      uint32_t remote_psn, uint16_t remote_lid, int mtu, const uint8_t *remote_gid,
                      int rnr_retry) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = GF_IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = remote_qpn;
	a.rq_psn = remote_psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12; // 0.64 ms
	a.ah_attr.dlid = remote_lid;
	a.ah_attr.port_num = port;
	// RoCE needs the global route header; InfiniBand inside a subnet
	// does not, but a GRH does no harm when the GID is set.
	int global = 0;
	for (int i = 0; i < 16; i++)
		global |= remote_gid[i];
	if (global) {
		a.ah_attr.is_global = 1;
		memcpy(a.ah_attr.grh.dgid.raw, remote_gid, 16);
		a.ah_attr.grh.sgid_index = gid_index;
		a.ah_attr.grh.hop_limit = 64;
	}
	int r = ibv.modify_qp(q->qp, &a,
	                      GF_IBV_QP_STATE | GF_IBV_QP_AV | GF_IBV_QP_PATH_MTU | GF_IBV_QP_DEST_QPN |
	                          GF_IBV_QP_RQ_PSN | GF_IBV_QP_MAX_DEST_RD_ATOMIC | GF_IBV_QP_MIN_RNR_TIMER);
	if (r)
		return r;
	memset(&a, 0, sizeof a);
	a.qp_state = GF_IBV_QPS_RTS;
	a.sq_psn = psn;
	a.timeout = 14; // 67 ms per try
	a.retry_cnt = 7;
	a.rnr_retry = rnr_retry;
	a.max_rd_atomic = 1;
	return ibv.modify_qp(q->qp, &a,
	                     GF_IBV_QP_STATE | GF_IBV_QP_SQ_PSN | GF_IBV_QP_TIMEOUT | GF_IBV_QP_RETRY_CNT |
	                         GF_IBV_QP_RNR_RETRY | GF_IBV_QP_MAX_QP_RD_ATOMIC);
}

int gf_ibv_to_error(uintptr_t h) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = GF_IBV_QPS_ERR;
	return ibv.modify_qp(q->qp, &a, GF_IBV_QP_STATE);
}

int gf_ibv_qp_state(uintptr_t h) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_qp_attr a;
	struct gf_ibv_qp_init_attr ia;
	if (ibv.query_qp(q->qp, &a, GF_IBV_QP_STATE, &ia))
		return -1;
	return a.qp_state;
}

void gf_ibv_destroy_qp(uintptr_t h) {
	struct gf_qp *q = (struct gf_qp *)h;
	ibv.destroy_qp(q->qp);
	if (q->events)
		ibv.ack_cq_events(q->cq, q->events);
	ibv.destroy_cq(q->cq);
	ibv.destroy_comp_channel(q->ch);
	free(q);
}

typedef int (*post_send_fn)(struct gf_ibv_qp *, struct gf_ibv_send_wr *, struct gf_ibv_send_wr **);
typedef int (*post_recv_fn)(struct gf_ibv_qp *, struct gf_ibv_recv_wr *, struct gf_ibv_recv_wr **);
typedef int (*poll_cq_fn)(struct gf_ibv_cq *, int, struct gf_ibv_wc_raw *);
typedef int (*req_notify_fn)(struct gf_ibv_cq *, int);

int gf_ibv_post_send(uintptr_t h, uint64_t id, int op, uint64_t addr, uint32_t len, uint32_t lkey,
                     uint64_t raddr, uint32_t rkey, int inl) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_sge sge = {addr, len, lkey};
	struct gf_ibv_send_wr wr, *bad = NULL;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = id;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.send_flags = GF_IBV_SEND_SIGNALED | (inl ? GF_IBV_SEND_INLINE : 0);
	if (op == 2) {
		wr.opcode = GF_IBV_WR_RDMA_WRITE;
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	} else {
		wr.opcode = GF_IBV_WR_SEND;
	}
	return ((post_send_fn)q->qp->context->ops[GF_OPS_POST_SEND])(q->qp, &wr, &bad);
}

int gf_ibv_post_recv(uintptr_t h, uint64_t id, uint64_t addr, uint32_t len, uint32_t lkey) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_sge sge = {addr, len, lkey};
	struct gf_ibv_recv_wr wr = {id, NULL, &sge, 1}, *bad = NULL;
	return ((post_recv_fn)q->qp->context->ops[GF_OPS_POST_RECV])(q->qp, &wr, &bad);
}

int gf_ibv_poll(uintptr_t h, struct gf_ibv_wc *out, int n) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_wc_raw raw[32];
	if (n > 32)
		n = 32;
	int got = ((poll_cq_fn)q->cq->context->ops[GF_OPS_POLL_CQ])(q->cq, n, raw);
	for (int i = 0; i < got; i++) {
		out[i].id = raw[i].wr_id;
		out[i].status = raw[i].status;
		out[i].opcode = raw[i].opcode;
		out[i].len = raw[i].byte_len;
	}
	return got;
}

int gf_ibv_arm(uintptr_t h) {
	struct gf_qp *q = (struct gf_qp *)h;
	return ((req_notify_fn)q->cq->context->ops[GF_OPS_REQ_NOTIFY_CQ])(q->cq, 0);
}

int gf_ibv_take_event(uintptr_t h) {
	struct gf_qp *q = (struct gf_qp *)h;
	struct gf_ibv_cq *cq;
	void *ctx;
	if (ibv.get_cq_event(q->ch, &cq, &ctx))
		return errno == EAGAIN ? -EAGAIN : -errno;
	// Acknowledging takes a lock; do it in batches.
	if (++q->events >= 64) {
		ibv.ack_cq_events(q->cq, q->events);
		q->events = 0;
	}
	return 0;
}
