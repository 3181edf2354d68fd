//go:build linux && cgo

// gf_exec.c: the execution families of the driver API: stream capture and
// graphs, host functions and stream callbacks, stream memory operations,
// and occupancy. Graph capture records in the client (interpose.Stream);
// an instantiated graph lives on the server and launches in one message.

#include <stdint.h>
#include <string.h>

#include "_cgo_export.h"
#include "gf.h"

#define GF_API(name, params, expr) \
	GF_EXPORT CUresult name params { GF_CALL(#name, expr); }
#define GF_API2(name, twin, params, expr) \
	GF_API(name, params, expr)            \
	GF_API(twin, params, expr)

#define H(x) ((uintptr_t)(x))
#define HP(x) ((uintptr_t *)(x))

__thread int gf_in_host_fn;

typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUgraphNode_st *CUgraphNode;
typedef void (*CUhostFn)(void *userData);
typedef void (*CUstreamCallback)(CUstream hStream, CUresult status, void *userData);
typedef size_t (*CUoccupancyB2DSize)(int blockSize);

// ---- stream capture ----

// cuStreamBeginCapture of CUDA 10.0 took no mode; its caller leaves the
// register holding mode undefined, so it captures in the global mode.
GF_API2(cuStreamBeginCapture, cuStreamBeginCapture_ptsz, (CUstream s), gfgo_beginCapture(H(s), 0))
GF_API2(cuStreamBeginCapture_v2, cuStreamBeginCapture_v2_ptsz, (CUstream s, int mode), gfgo_beginCapture(H(s), mode))
GF_API2(cuStreamEndCapture, cuStreamEndCapture_ptsz, (CUstream s, CUgraph *phGraph),
        gfgo_endCapture(H(s), HP(phGraph)))
GF_API2(cuStreamIsCapturing, cuStreamIsCapturing_ptsz, (CUstream s, int *status), gfgo_captureInfo(H(s), status, NULL))

// The graph under capture and its dependencies are not exposed: a capture
// is a sequence, recorded in this process.
static CUresult capture_info(CUstream s, int *status, cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps,
                             const void **edges, size_t *ndeps) {
	if (graph)
		*graph = NULL;
	if (deps)
		*deps = NULL;
	if (edges)
		*edges = NULL;
	if (ndeps)
		*ndeps = 0;
	return gfgo_captureInfo(H(s), status, id);
}

GF_API2(cuStreamGetCaptureInfo, cuStreamGetCaptureInfo_ptsz, (CUstream s, int *status, cuuint64_t *id),
        capture_info(s, status, id, NULL, NULL, NULL, NULL))
GF_API2(cuStreamGetCaptureInfo_v2, cuStreamGetCaptureInfo_v2_ptsz,
        (CUstream s, int *status, cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps, size_t *ndeps),
        capture_info(s, status, id, graph, deps, NULL, ndeps))
GF_API2(cuStreamGetCaptureInfo_v3, cuStreamGetCaptureInfo_v3_ptsz,
        (CUstream s, int *status, cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps, const void **edges,
         size_t *ndeps),
        capture_info(s, status, id, graph, deps, edges, ndeps))

// ---- graphs ----

// The legacy form reports the failing node and a log; no node of a
// captured sequence fails on its own, and the reason is the result.
static CUresult instantiate_legacy(CUgraphExec *exec, CUgraph g, CUgraphNode *errNode, char *log, size_t logSize) {
	if (errNode)
		*errNode = NULL;
	if (log && logSize > 0)
		log[0] = 0;
	return gfgo_graphInstantiate(HP(exec), H(g), 0);
}

GF_API(cuGraphInstantiate, (CUgraphExec * exec, CUgraph g, CUgraphNode *errNode, char *log, size_t logSize),
       instantiate_legacy(exec, g, errNode, log, logSize))
GF_API(cuGraphInstantiate_v2, (CUgraphExec * exec, CUgraph g, CUgraphNode *errNode, char *log, size_t logSize),
       instantiate_legacy(exec, g, errNode, log, logSize))
GF_API(cuGraphInstantiateWithFlags, (CUgraphExec * exec, CUgraph g, unsigned long long flags),
       gfgo_graphInstantiate(HP(exec), H(g), flags))
// CUDA_GRAPH_INSTANTIATE_PARAMS: flags, an upload stream (the graph is on
// the server already: nothing to upload), and what the call reports back.
typedef struct {
	cuuint64_t flags;
	CUstream hUploadStream;
	CUgraphNode hErrNode_out;
	int result_out; // CUgraphInstantiateResult: 0 success, 1 error
} gf_instantiate_params;

static CUresult instantiate_params(CUgraphExec *exec, CUgraph g, gf_instantiate_params *p) {
	if (!p)
		return GF_ERR_INVALID_VALUE;
	CUresult r = gfgo_graphInstantiate(HP(exec), H(g), p->flags);
	p->hErrNode_out = NULL;
	p->result_out = r == GF_SUCCESS ? 0 : 1;
	return r;
}

GF_API2(cuGraphInstantiateWithParams, cuGraphInstantiateWithParams_ptsz,
        (CUgraphExec * exec, CUgraph g, gf_instantiate_params *params), instantiate_params(exec, g, params))

// An instantiated graph is on the server from instantiation: an upload
// has nothing to do but check its handle.
GF_API2(cuGraphUpload, cuGraphUpload_ptsz, (CUgraphExec exec, CUstream s), ((void)s, gfgo_graphUpload(H(exec))))

GF_API2(cuGraphLaunch, cuGraphLaunch_ptsz, (CUgraphExec exec, CUstream s), gfgo_graphLaunch(H(exec), H(s), GF_CUR_DEV))
GF_API(cuGraphExecDestroy, (CUgraphExec exec), gfgo_graphDestroy(H(exec), 1))
GF_API(cuGraphDestroy, (CUgraph g), gfgo_graphDestroy(H(g), 0))

// ---- host functions ----

GF_API2(cuLaunchHostFunc, cuLaunchHostFunc_ptsz, (CUstream s, CUhostFn fn, void *userData),
        gfgo_hostFunc(H(s), GF_CUR_DEV, (void *)fn, userData, 0, 0))
GF_API2(cuStreamAddCallback, cuStreamAddCallback_ptsz,
        (CUstream s, CUstreamCallback cb, void *userData, unsigned int flags),
        gfgo_hostFunc(H(s), GF_CUR_DEV, (void *)cb, userData, 1, flags))

// ---- stream memory operations ----

// The _v2 forms (CUDA 11.7) are the same calls, enabled by default.
GF_API2(cuStreamWaitValue32, cuStreamWaitValue32_ptsz, (CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 4, flags, 0))
GF_API2(cuStreamWaitValue32_v2, cuStreamWaitValue32_v2_ptsz, (CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 4, flags, 0))
GF_API2(cuStreamWaitValue64, cuStreamWaitValue64_ptsz, (CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 8, flags, 0))
GF_API2(cuStreamWaitValue64_v2, cuStreamWaitValue64_v2_ptsz, (CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 8, flags, 0))
GF_API2(cuStreamWriteValue32, cuStreamWriteValue32_ptsz, (CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 4, flags, 1))
GF_API2(cuStreamWriteValue32_v2, cuStreamWriteValue32_v2_ptsz, (CUstream s, CUdeviceptr addr, cuuint32_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 4, flags, 1))
GF_API2(cuStreamWriteValue64, cuStreamWriteValue64_ptsz, (CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 8, flags, 1))
GF_API2(cuStreamWriteValue64_v2, cuStreamWriteValue64_v2_ptsz, (CUstream s, CUdeviceptr addr, cuuint64_t value, unsigned int flags),
        gfgo_streamValue(H(s), GF_CUR_DEV, addr, value, 8, flags, 1))

GF_API2(cuStreamBatchMemOp, cuStreamBatchMemOp_ptsz, (CUstream s, unsigned int count, void *ops, unsigned int flags),
        gfgo_batchMemOp(H(s), GF_CUR_DEV, count, ops, flags))
GF_API2(cuStreamBatchMemOp_v2, cuStreamBatchMemOp_v2_ptsz,
        (CUstream s, unsigned int count, void *ops, unsigned int flags),
        gfgo_batchMemOp(H(s), GF_CUR_DEV, count, ops, flags))

// ---- occupancy: computed here from attributes the client holds ----

GF_API(cuOccupancyMaxActiveBlocksPerMultiprocessor, (int *numBlocks, CUfunction f, int blockSize, size_t dynSmem),
       gfgo_occupancyBlocks(numBlocks, H(f), blockSize, dynSmem, 0))
GF_API(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags,
       (int *numBlocks, CUfunction f, int blockSize, size_t dynSmem, unsigned int flags),
       gfgo_occupancyBlocks(numBlocks, H(f), blockSize, dynSmem, flags))
GF_API(cuOccupancyMaxPotentialBlockSize,
       (int *minGrid, int *blockSize, CUfunction f, CUoccupancyB2DSize b2smem, size_t dynSmem, int limit),
       gfgo_occupancyBlockSize(minGrid, blockSize, H(f), (void *)b2smem, dynSmem, limit, 0))
GF_API(cuOccupancyMaxPotentialBlockSizeWithFlags,
       (int *minGrid, int *blockSize, CUfunction f, CUoccupancyB2DSize b2smem, size_t dynSmem, int limit,
        unsigned int flags),
       gfgo_occupancyBlockSize(minGrid, blockSize, H(f), (void *)b2smem, dynSmem, limit, flags))

// ---- JIT linking: inputs gathered here, linked by the server's device ----

typedef struct CUlinkState_st *CUlinkState;

GF_API(cuLinkCreate, (unsigned int n, int *options, void **values, CUlinkState *state),
       gfgo_linkCreate(GF_CUR_DEV, n, options, values, HP(state)))
GF_API(cuLinkCreate_v2, (unsigned int n, int *options, void **values, CUlinkState *state),
       gfgo_linkCreate(GF_CUR_DEV, n, options, values, HP(state)))

// Per-input options (a name's log, optimisation level) are the server
// linker's to apply; none changes what is sent.
GF_API(cuLinkAddData,
       (CUlinkState state, int type, void *data, size_t size, const char *name, unsigned int n, int *options,
        void **values),
       ((void)n, (void)options, (void)values, gfgo_linkAdd(H(state), type, data, size, (char *)name, NULL)))
GF_API(cuLinkAddData_v2,
       (CUlinkState state, int type, void *data, size_t size, const char *name, unsigned int n, int *options,
        void **values),
       ((void)n, (void)options, (void)values, gfgo_linkAdd(H(state), type, data, size, (char *)name, NULL)))
GF_API(cuLinkAddFile, (CUlinkState state, int type, const char *path, unsigned int n, int *options, void **values),
       ((void)n, (void)options, (void)values, gfgo_linkAdd(H(state), type, NULL, 0, NULL, (char *)path)))
GF_API(cuLinkAddFile_v2, (CUlinkState state, int type, const char *path, unsigned int n, int *options, void **values),
       ((void)n, (void)options, (void)values, gfgo_linkAdd(H(state), type, NULL, 0, NULL, (char *)path)))
GF_API(cuLinkComplete, (CUlinkState state, void **cubinOut, size_t *sizeOut),
       gfgo_linkComplete(H(state), cubinOut, sizeOut))
GF_API(cuLinkDestroy, (CUlinkState state), gfgo_linkDestroy(H(state)))
