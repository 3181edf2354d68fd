// The libibverbs ABI as this project declares it: see ibv_shim.h. Only
// ibv_shim_linux.c includes it, and testdata/abicheck.c, which checks it
// against rdma-core's verbs.h where that is installed (TestABI).

#ifndef GPUFABRIC_IBV_ABI_H
#define GPUFABRIC_IBV_ABI_H

#include <stddef.h>
#include <stdint.h>

// Only the structures and
// fields used here, with the layout of rdma-core's verbs.h (stable since
// libibverbs 1.1; rdma-core keeps it for binary compatibility).

union gf_ibv_gid {
	uint8_t raw[16];
	uint64_t align[2]; // the ABI's gid holds two 64-bit halves
};

struct gf_ibv_device_attr {
	char fw_ver[64];
	uint64_t node_guid, sys_image_guid, max_mr_size, page_size_cap;
	uint32_t vendor_id, vendor_part_id, hw_ver;
	int max_qp, max_qp_wr;
	unsigned int device_cap_flags;
	int max_sge, max_sge_rd, max_cq, max_cqe, max_mr, max_pd, max_qp_rd_atom, max_ee_rd_atom,
	    max_res_rd_atom, max_qp_init_rd_atom, max_ee_init_rd_atom;
	int atomic_cap;
	int max_ee, max_rdd, max_mw, max_raw_ipv6_qp, max_raw_ethy_qp, max_mcast_grp,
	    max_mcast_qp_attach, max_total_mcast_qp_attach, max_ah, max_fmr, max_map_per_fmr, max_srq,
	    max_srq_wr, max_srq_sge;
	uint16_t max_pkeys;
	uint8_t local_ca_ack_delay, phys_port_cnt;
};

struct gf_ibv_port_attr {
	int state, max_mtu, active_mtu, gid_tbl_len;
	uint32_t port_cap_flags, max_msg_sz, bad_pkey_cntr, qkey_viol_cntr;
	uint16_t pkey_tbl_len, lid, sm_lid;
	uint8_t lmc, max_vl_num, sm_sl, subnet_timeout, init_type_reply, active_width, active_speed,
	    phys_state, link_layer, flags;
	uint16_t port_cap_flags2;
	uint8_t _room[64]; // newer libraries may fill more
};

// The context's ops table: an array of function pointers, of which the
// fast path uses four.
enum {
	GF_OPS_POLL_CQ = 11,
	GF_OPS_REQ_NOTIFY_CQ = 12,
	GF_OPS_POST_SEND = 25,
	GF_OPS_POST_RECV = 26,
	GF_OPS_LEN = 27,
};

struct gf_ibv_context {
	void *device;
	void *ops[GF_OPS_LEN];
};

struct gf_ibv_comp_channel {
	void *context;
	int fd;
	int refcnt;
};

struct gf_ibv_mr {
	void *context, *pd, *addr;
	size_t length;
	uint32_t handle, lkey, rkey;
};

struct gf_ibv_qp {
	struct gf_ibv_context *context;
	void *qp_context, *pd, *send_cq, *recv_cq, *srq;
	uint32_t handle, qp_num;
	int state, qp_type;
};

struct gf_ibv_cq {
	struct gf_ibv_context *context;
};

struct gf_ibv_qp_cap {
	uint32_t max_send_wr, max_recv_wr, max_send_sge, max_recv_sge, max_inline_data;
};

struct gf_ibv_qp_init_attr {
	void *qp_context, *send_cq, *recv_cq, *srq;
	struct gf_ibv_qp_cap cap;
	int qp_type;
	int sq_sig_all;
};

struct gf_ibv_global_route {
	union gf_ibv_gid dgid;
	uint32_t flow_label;
	uint8_t sgid_index, hop_limit, traffic_class;
};

struct gf_ibv_ah_attr {
	struct gf_ibv_global_route grh;
	uint16_t dlid;
	uint8_t sl, src_path_bits, static_rate, is_global, port_num;
};

struct gf_ibv_qp_attr {
	int qp_state, cur_qp_state, path_mtu, path_mig_state;
	uint32_t qkey, rq_psn, sq_psn, dest_qp_num;
	unsigned int qp_access_flags;
	struct gf_ibv_qp_cap cap;
	struct gf_ibv_ah_attr ah_attr, alt_ah_attr;
	uint16_t pkey_index, alt_pkey_index;
	uint8_t en_sqd_async_notify, sq_draining, max_rd_atomic, max_dest_rd_atomic, min_rnr_timer,
	    port_num, timeout, retry_cnt, rnr_retry, alt_port_num, alt_timeout;
	uint32_t rate_limit;
};

struct gf_ibv_sge {
	uint64_t addr;
	uint32_t length, lkey;
};

struct gf_ibv_send_wr {
	uint64_t wr_id;
	struct gf_ibv_send_wr *next;
	struct gf_ibv_sge *sg_list;
	int num_sge;
	int opcode;
	unsigned int send_flags;
	uint32_t imm_data;
	union {
		struct {
			uint64_t remote_addr;
			uint32_t rkey;
		} rdma;
		struct {
			uint64_t remote_addr, compare_add, swap;
			uint32_t rkey;
		} atomic;
	} wr;
	uint32_t remote_srqn;
	union {
		struct {
			void *mw;
			uint32_t rkey;
			struct {
				void *mr;
				uint64_t addr, length;
				unsigned int access;
			} bind_info;
		} bind_mw;
		struct {
			void *hdr;
			uint16_t hdr_sz, mss;
		} tso;
	} ext;
};

struct gf_ibv_recv_wr {
	uint64_t wr_id;
	struct gf_ibv_recv_wr *next;
	struct gf_ibv_sge *sg_list;
	int num_sge;
};

struct gf_ibv_wc_raw {
	uint64_t wr_id;
	int status, opcode;
	uint32_t vendor_err, byte_len, imm_data, qp_num, src_qp;
	unsigned int wc_flags;
	uint16_t pkey_index, slid;
	uint8_t sl, dlid_path_bits;
};

enum {
	GF_IBV_QPT_RC = 2,
	GF_IBV_ACCESS_REMOTE_WRITE = 2,
	GF_IBV_WR_RDMA_WRITE = 0,
	GF_IBV_WR_SEND = 2,
	GF_IBV_SEND_SIGNALED = 1 << 1,
	GF_IBV_SEND_INLINE = 1 << 3,
	GF_IBV_QPS_INIT = 1,
	GF_IBV_QPS_RTR = 2,
	GF_IBV_QPS_RTS = 3,
	GF_IBV_QPS_ERR = 6,
	GF_IBV_QP_STATE = 1 << 0,
	GF_IBV_QP_ACCESS_FLAGS = 1 << 3,
	GF_IBV_QP_PKEY_INDEX = 1 << 4,
	GF_IBV_QP_PORT = 1 << 5,
	GF_IBV_QP_AV = 1 << 7,
	GF_IBV_QP_PATH_MTU = 1 << 8,
	GF_IBV_QP_TIMEOUT = 1 << 9,
	GF_IBV_QP_RETRY_CNT = 1 << 10,
	GF_IBV_QP_RNR_RETRY = 1 << 11,
	GF_IBV_QP_RQ_PSN = 1 << 12,
	GF_IBV_QP_MAX_QP_RD_ATOMIC = 1 << 13,
	GF_IBV_QP_MIN_RNR_TIMER = 1 << 15,
	GF_IBV_QP_SQ_PSN = 1 << 16,
	GF_IBV_QP_MAX_DEST_RD_ATOMIC = 1 << 17,
	GF_IBV_QP_DEST_QPN = 1 << 20,
};

#endif
