// The C side of the verbs layer: libibverbs.so.1 opened with dlopen, as
// NCCL's ibvwrap does, so one binary runs where rdma-core is missing and
// says why. The project declares the few verbs structures it touches
// itself (gf_ibv_*), laid out as the libibverbs ABI has them, so a build
// needs no RDMA headers. The fast-path verbs (post_send, post_recv,
// poll_cq, req_notify_cq) are not exported functions but inline calls
// through the context's ops table; they are called through it here too.
//
// Handles cross to Go as uintptr_t, and so does memory: the Go side keeps
// what it passes alive.

#ifndef GPUFABRIC_IBV_SHIM_H
#define GPUFABRIC_IBV_SHIM_H

#include <stddef.h>
#include <stdint.h>

// gf_ibv_load outcomes.
enum {
	GF_IBV_OK = 0,
	GF_IBV_DLOPEN = 1, // dlopen failed; err holds dlerror()
	GF_IBV_SYMBOL = 2, // a required symbol is missing; err names it
};

int gf_ibv_load(const char *path, char *err, size_t errlen);

// gf_ibv_device_names writes the devices' names, NUL-separated, into buf
// and returns how many there are, or -errno.
int gf_ibv_device_names(char *buf, size_t len);

struct gf_ibv_attr {
	uint64_t max_mr_size;
	int32_t max_qp_wr;
	int32_t port_state;  // ibv_port_state: 4 is ACTIVE
	int32_t active_mtu;  // ibv_mtu: 1..5 for 256..4096 bytes
	uint16_t lid;
	uint8_t link_layer;  // 1 InfiniBand, 2 Ethernet
	uint8_t phys_port_cnt;
	uint8_t gid[16];
};

// Opens device name and queries port port and GID gid_index. Returns a
// handle, or 0 with *err = errno.
uintptr_t gf_ibv_open_device(const char *name, int port, int gid_index, struct gf_ibv_attr *attr, int *err);
void gf_ibv_close_device(uintptr_t dev);

// A protection domain of dev's.
uintptr_t gf_ibv_alloc_pd(uintptr_t dev, int *err);
int gf_ibv_dealloc_pd(uintptr_t pd);

// access: ibv_access_flags (1 local write, 2 remote write, 4 remote read).
uintptr_t gf_ibv_reg_mr(uintptr_t pd, uintptr_t addr, size_t len, int access, uint32_t *lkey, uint32_t *rkey, int *err);
int gf_ibv_dereg_mr(uintptr_t mr);

// Creates a completion channel (non-blocking), a CQ on it, and an RC QP
// in pd, in INIT on port. *fd is the channel's descriptor, to wait on;
// *inl the inline bytes the device granted (0 when it takes none).
uintptr_t gf_ibv_create_qp(uintptr_t dev, uintptr_t pd, int port, int send_depth, int recv_depth, int max_inline,
                           uint32_t *qpn, int *fd, int *inl, int *err);
int gf_ibv_connect_qp(uintptr_t qp, int port, int gid_index, uint32_t psn, uint32_t remote_qpn,
                      uint32_t remote_psn, uint16_t remote_lid, int mtu, const uint8_t *remote_gid,
                      int rnr_retry);
int gf_ibv_to_error(uintptr_t qp);
int gf_ibv_qp_state(uintptr_t qp);
void gf_ibv_destroy_qp(uintptr_t qp);

// op: 1 SEND, 2 RDMA WRITE. All work requests are signaled.
int gf_ibv_post_send(uintptr_t qp, uint64_t id, int op, uint64_t addr, uint32_t len, uint32_t lkey,
                     uint64_t raddr, uint32_t rkey, int inl);
int gf_ibv_post_recv(uintptr_t qp, uint64_t id, uint64_t addr, uint32_t len, uint32_t lkey);

struct gf_ibv_wc {
	uint64_t id;
	uint32_t status;
	uint32_t opcode; // ibv_wc_opcode: 0 SEND, 1 RDMA_WRITE, 128 RECV
	uint32_t len;
	uint32_t _pad;
};

int gf_ibv_poll(uintptr_t qp, struct gf_ibv_wc *wc, int n);
int gf_ibv_arm(uintptr_t qp);
// gf_ibv_take_event takes and acknowledges one completion event; 0 when
// there was one, -EAGAIN when there was none.
int gf_ibv_take_event(uintptr_t qp);

#endif
