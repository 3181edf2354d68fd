// The shim's declarations (ibv_abi.h) checked against rdma-core's
// verbs.h: TestABI compiles this file where the headers are installed.
#include <infiniband/verbs.h>
#include <stddef.h>
#include <stdint.h>

#include "ibv_abi.h"

#define SAME(ours, theirs) _Static_assert(sizeof(struct ours) == sizeof(struct theirs), #ours)
#define OFF(ours, theirs, f1, f2) _Static_assert(offsetof(struct ours, f1) == offsetof(struct theirs, f2), #ours "." #f1)
SAME(gf_ibv_device_attr, ibv_device_attr);
OFF(gf_ibv_device_attr, ibv_device_attr, max_qp_wr, max_qp_wr);
OFF(gf_ibv_device_attr, ibv_device_attr, phys_port_cnt, phys_port_cnt);
OFF(gf_ibv_port_attr, ibv_port_attr, link_layer, link_layer);
OFF(gf_ibv_port_attr, ibv_port_attr, lid, lid);
OFF(gf_ibv_port_attr, ibv_port_attr, active_mtu, active_mtu);
_Static_assert(offsetof(struct gf_ibv_context, ops) == offsetof(struct ibv_context, ops), "ops");
_Static_assert(offsetof(struct gf_ibv_context, ops[GF_OPS_POLL_CQ]) == offsetof(struct ibv_context, ops.poll_cq), "poll");
_Static_assert(offsetof(struct gf_ibv_context, ops[GF_OPS_REQ_NOTIFY_CQ]) == offsetof(struct ibv_context, ops.req_notify_cq), "notify");
_Static_assert(offsetof(struct gf_ibv_context, ops[GF_OPS_POST_SEND]) == offsetof(struct ibv_context, ops.post_send), "send");
_Static_assert(offsetof(struct gf_ibv_context, ops[GF_OPS_POST_RECV]) == offsetof(struct ibv_context, ops.post_recv), "recv");
OFF(gf_ibv_comp_channel, ibv_comp_channel, fd, fd);
OFF(gf_ibv_mr, ibv_mr, lkey, lkey);
OFF(gf_ibv_mr, ibv_mr, rkey, rkey);
OFF(gf_ibv_qp, ibv_qp, qp_num, qp_num);
OFF(gf_ibv_cq, ibv_cq, context, context);
SAME(gf_ibv_qp_init_attr, ibv_qp_init_attr);
OFF(gf_ibv_qp_init_attr, ibv_qp_init_attr, qp_type, qp_type);
SAME(gf_ibv_qp_attr, ibv_qp_attr);
OFF(gf_ibv_qp_attr, ibv_qp_attr, ah_attr.grh.sgid_index, ah_attr.grh.sgid_index);
OFF(gf_ibv_qp_attr, ibv_qp_attr, ah_attr.dlid, ah_attr.dlid);
OFF(gf_ibv_qp_attr, ibv_qp_attr, ah_attr.is_global, ah_attr.is_global);
OFF(gf_ibv_qp_attr, ibv_qp_attr, rnr_retry, rnr_retry);
OFF(gf_ibv_qp_attr, ibv_qp_attr, port_num, port_num);
OFF(gf_ibv_qp_attr, ibv_qp_attr, qp_access_flags, qp_access_flags);
SAME(gf_ibv_send_wr, ibv_send_wr);
OFF(gf_ibv_send_wr, ibv_send_wr, wr.rdma.rkey, wr.rdma.rkey);
OFF(gf_ibv_send_wr, ibv_send_wr, send_flags, send_flags);
SAME(gf_ibv_recv_wr, ibv_recv_wr);
SAME(gf_ibv_sge, ibv_sge);
SAME(gf_ibv_wc_raw, ibv_wc);
OFF(gf_ibv_wc_raw, ibv_wc, byte_len, byte_len);
_Static_assert(GF_IBV_WR_SEND == IBV_WR_SEND && GF_IBV_WR_RDMA_WRITE == IBV_WR_RDMA_WRITE, "ops");
_Static_assert(GF_IBV_QP_DEST_QPN == IBV_QP_DEST_QPN && GF_IBV_QP_MAX_DEST_RD_ATOMIC == IBV_QP_MAX_DEST_RD_ATOMIC, "mask");
int main(void) { return 0; }
