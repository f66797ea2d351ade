/* The NCCL backend of collectives (include/xoscar/collective.h). Built only where the CUDA toolkit and NCCL are
 * found (cmake/optional_deps.cmake), and used only where the NCCL plugin loads: NCCL's calls go through its table
 * (services/nccl/nccl_api.h), which collective.c checks before it chooses this backend. Not run in CI (no GPU).
 *
 * Setup: rank 0 makes the unique id, the rendezvous hands it to every member (phase 1 of the group's exchange), and
 * each member creates its communicator on its pool's CUDA device. The communicator is non-blocking
 * (ncclConfig_t.blocking = 0): ncclCommInitRankConfig returns at once and this member's method polls
 * ncclCommGetAsyncError, suspending between polls. A blocking init would hold a scheduler thread until every rank has
 * joined, and with two members in one pool of one thread it would never finish.
 *
 * Reduce is ncclReduce; gather, scatter and all-to-all, which NCCL lacks, are ncclSend/ncclRecv pairs in one group
 * (ncclGroupStart .. ncclGroupEnd), a member's own block a device copy on the same stream.
 *
 * Operations run on a stream of the pool's device; the member's method waits for the stream by polling
 * (services/nccl/nccl_wait.h), so the pool's other actors run meanwhile. A member that does not finish within the group's
 * timeout aborts the communicator (nothing stays blocked on a dead peer) and fails with XO_ETIMEDOUT; the group is
 * broken after that, as after any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "services/nccl/nccl_api.h"
#include "services/nccl/nccl_wait.h"
#include "services/coll/coll.h"
#include "base/error.h"

typedef struct nccl_state {
    const xo__nccl_api_t *nc; /* the plugin's table, loaded before this backend is chosen */
    ncclComm_t comm;
    xo_device_stream_t *stream;
    cudaStream_t cu;
} nccl_state_t;

/* Records the last error (set by the nccl_wait functions or xo__nccl_error) as the group's failure. */
static xo_status_t group_fail(xo_coll_t *g, xo_status_t st)
{
    char text[XO_ERROR_TEXT_MAX];
    snprintf(text, sizeof text, "%s", xo_last_error());
    return xo__coll_fail(g, st, "collective %s: %s", g->name, text);
}

static xo_status_t nccl_error(xo_coll_t *g, ncclResult_t r, const char *what)
{
    nccl_state_t *s = g->backend_state;
    return group_fail(g, xo__nccl_error(s ? s->comm : NULL, r, what));
}

static xo_status_t wait_comm(xo_coll_t *g, const char *what)
{
    nccl_state_t *s = g->backend_state;
    xo_status_t st = xo__nccl_wait_comm(&s->comm, g->timeout_ms, what, NULL, NULL);
    return st == XO_OK ? XO_OK : group_fail(g, st);
}

static xo_status_t wait_stream(xo_coll_t *g, const char *what)
{
    nccl_state_t *s = g->backend_state;
    xo_status_t st = xo__nccl_wait_stream(&s->comm, s->cu, g->timeout_ms, what, NULL, NULL);
    return st == XO_OK ? XO_OK : group_fail(g, st);
}

static xo_status_t nccl_init(xo_coll_t *g)
{
    if (!g->dev || strcmp(xo_device_backend_name(xo_device_backend(g->dev)), "cuda") != 0)
        return xo__error_set(XO_ENOTSUP, "collective %s: nccl needs the pool to own a cuda device", g->name);
    const xo__nccl_api_t *nc = xo__nccl_api();
    if (!nc) return xo__nccl_missing(g->name);
    nccl_state_t *s = calloc(1, sizeof *s);
    if (!s) return xo__error_set(XO_ENOMEM, "out of memory");
    s->nc = nc;
    g->backend_state = s;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (g->rank == 0 && (r = nc->get_unique_id(&id)) != ncclSuccess) {
        /* Still exchange (an empty blob), so that the other members fail at once instead of waiting. */
        xo_result_t *all = NULL;
        xo__coll_exchange(g, "", 0, &all);
        xo_result_free(all);
        return nccl_error(g, r, "ncclGetUniqueId");
    }
    xo_result_t *all = NULL;
    xo_status_t st = xo__coll_exchange(g, &id, g->rank == 0 ? sizeof id : 0, &all);
    xo_bytes_t root_id = {0};
    if (st == XO_OK) st = xo__coll_exchange_get(all, g->size, 0, &root_id);
    if (st == XO_OK && root_id.len != sizeof id)
        st = xo__error_set(XO_EDEVICE, "collective %s: rank 0 could not make an NCCL id", g->name);
    if (st == XO_OK) memcpy(&id, root_id.ptr, sizeof id);
    xo_result_free(all);
    if (st != XO_OK) return st;

    cudaError_t e = nc->cuda_set_device(xo_device_index(g->dev));
    if (e != cudaSuccess)
        return xo__error_set(XO_EDEVICE, "cudaSetDevice: %s (%s)", nc->cuda_get_error_string(e),
                            nc->cuda_get_error_name(e));
    st = xo_device_stream_create(g->dev, &s->stream);
    if (st != XO_OK) return st;
    s->cu = (cudaStream_t)xo_device_stream_native(s->stream);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    r = nc->comm_init_rank_config(&s->comm, g->size, id, g->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_error(g, r, "ncclCommInitRankConfig");
    return wait_comm(g, "ncclCommInitRankConfig");
}

static void nccl_fini(xo_coll_t *g)
{
    nccl_state_t *s = g->backend_state;
    if (!s) return;
    if (s->comm) {
        /* A healthy communicator is finalized (flushes, then quiesces); a broken one is aborted. */
        if (g->broken == XO_OK && s->nc->comm_finalize(s->comm) != ncclSuccess) g->broken = XO_EDEVICE;
        if (g->broken == XO_OK && xo__nccl_wait_comm(&s->comm, g->timeout_ms, "ncclCommFinalize", NULL, NULL) != XO_OK)
            g->broken = XO_EDEVICE;
        if (g->broken == XO_OK) s->nc->comm_destroy(s->comm);
        else if (s->comm) s->nc->comm_abort(s->comm);
    }
    if (s->stream) xo_device_stream_destroy(s->stream);
    free(s);
    g->backend_state = NULL;
}

static ncclDataType_t nccl_type(xo_dtype_t dt)
{
    switch (dt) {
    case XO_DTYPE_INT8: return ncclInt8;
    case XO_DTYPE_UINT8: return ncclUint8;
    case XO_DTYPE_INT32: return ncclInt32;
    case XO_DTYPE_UINT32: return ncclUint32;
    case XO_DTYPE_INT64: return ncclInt64;
    case XO_DTYPE_UINT64: return ncclUint64;
    case XO_DTYPE_FLOAT32: return ncclFloat32;
    case XO_DTYPE_FLOAT64: return ncclFloat64;
    }
    return ncclInt8;
}

static ncclRedOp_t nccl_op(xo_reduce_op_t op)
{
    switch (op) {
    case XO_REDUCE_SUM: return ncclSum;
    case XO_REDUCE_PROD: return ncclProd;
    case XO_REDUCE_MIN: return ncclMin;
    case XO_REDUCE_MAX: return ncclMax;
    }
    return ncclSum;
}

/* After enqueuing: a non-blocking communicator may still be enqueuing (ncclInProgress); then the stream runs it. */
static xo_status_t finish(xo_coll_t *g, ncclResult_t r, const char *what)
{
    g->last_algorithm = "nccl";
    if (r != ncclSuccess && r != ncclInProgress) return nccl_error(g, r, what);
    xo_status_t st = r == ncclInProgress ? wait_comm(g, what) : XO_OK;
    return st == XO_OK ? wait_stream(g, what) : st;
}

static xo_status_t nccl_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, s->nc->all_reduce(send, recv, count, nccl_type(dt), nccl_op(op), s->comm, s->cu), "ncclAllReduce");
}

static xo_status_t nccl_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, s->nc->broadcast(buf, buf, count, nccl_type(dt), root, s->comm, s->cu), "ncclBroadcast");
}

static xo_status_t nccl_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, s->nc->all_gather(send, recv, count, nccl_type(dt), s->comm, s->cu), "ncclAllGather");
}

static xo_status_t nccl_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                       xo_reduce_op_t op)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, s->nc->reduce_scatter(send, recv, count, nccl_type(dt), nccl_op(op), s->comm, s->cu),
                  "ncclReduceScatter");
}

static xo_status_t nccl_reduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                               xo_reduce_op_t op, int root)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, s->nc->reduce(send, recv, count, nccl_type(dt), nccl_op(op), root, s->comm, s->cu), "ncclReduce");
}

/* A member's own block of gather, scatter and alltoall: a copy on the stream, queued before the group's transfers
 * (nothing when in place). Not a send to itself: NCCL's self send and receive of one buffer would overlap. */
static xo_status_t own_block(xo_coll_t *g, void *dst, const void *src, size_t bytes, const char *what)
{
    nccl_state_t *s = g->backend_state;
    if (dst == src) return XO_OK;
    cudaError_t e = s->nc->cuda_memcpy_async(dst, src, bytes, cudaMemcpyDeviceToDevice, s->cu);
    if (e == cudaSuccess) return XO_OK;
    return xo__coll_fail(g, XO_EDEVICE, "collective %s: %s: cudaMemcpyAsync: %s (%s)", g->name, what,
                        s->nc->cuda_get_error_string(e), s->nc->cuda_get_error_name(e));
}

/* One point-to-point transfer of a group (ncclGroupStart .. ncclGroupEnd): on a non-blocking communicator the calls
 * inside may answer ncclInProgress; ncclGroupEnd's answer is what finish() waits on. */
static ncclResult_t p2p(bool send, void *buf, size_t count, xo_dtype_t dt, int peer, nccl_state_t *s)
{
    ncclResult_t r = send ? s->nc->send(buf, count, nccl_type(dt), peer, s->comm, s->cu)
                          : s->nc->recv(buf, count, nccl_type(dt), peer, s->comm, s->cu);
    return r == ncclInProgress ? ncclSuccess : r;
}

/* Ends a group begun with ncclGroupStart, whatever happened inside it (an open group would capture later calls). */
static ncclResult_t group_end(const nccl_state_t *s, ncclResult_t r)
{
    ncclResult_t e = s->nc->group_end();
    return r != ncclSuccess ? r : e;
}

static xo_status_t nccl_gather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    nccl_state_t *s = g->backend_state;
    size_t block = count * xo_dtype_size(dt);
    if (g->rank == root) {
        xo_status_t st = own_block(g, (char *)recv + block * (size_t)root, send, block, "gather");
        if (st != XO_OK) return st;
    }
    ncclResult_t r = s->nc->group_start();
    if (r != ncclSuccess) return finish(g, r, "ncclGroupStart (gather)");
    if (g->rank != root) r = p2p(true, (void *)send, count, dt, root, s);
    for (int i = 0; r == ncclSuccess && g->rank == root && i < g->size; i++)
        if (i != root) r = p2p(false, (char *)recv + block * (size_t)i, count, dt, i, s);
    return finish(g, group_end(s, r), "gather (ncclSend/ncclRecv)");
}

static xo_status_t nccl_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    nccl_state_t *s = g->backend_state;
    size_t block = count * xo_dtype_size(dt);
    if (g->rank == root) {
        xo_status_t st = own_block(g, recv, (const char *)send + block * (size_t)root, block, "scatter");
        if (st != XO_OK) return st;
    }
    ncclResult_t r = s->nc->group_start();
    if (r != ncclSuccess) return finish(g, r, "ncclGroupStart (scatter)");
    if (g->rank != root) r = p2p(false, recv, count, dt, root, s);
    for (int i = 0; r == ncclSuccess && g->rank == root && i < g->size; i++)
        if (i != root) r = p2p(true, (char *)send + block * (size_t)i, count, dt, i, s);
    return finish(g, group_end(s, r), "scatter (ncclSend/ncclRecv)");
}

static xo_status_t nccl_alltoall(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    nccl_state_t *s = g->backend_state;
    size_t block = count * xo_dtype_size(dt);
    int me = g->rank, n = g->size;
    xo_status_t st = own_block(g, (char *)recv + block * (size_t)me, (const char *)send + block * (size_t)me, block,
                               "alltoall");
    if (st != XO_OK) return st;
    ncclResult_t r = s->nc->group_start();
    if (r != ncclSuccess) return finish(g, r, "ncclGroupStart (alltoall)");
    for (int k = 1; r == ncclSuccess && k < n; k++) { /* from rank+1 on, as the host backend's pairwise order */
        int to = (me + k) % n, from = (me - k + n) % n;
        r = p2p(true, (char *)send + block * (size_t)to, count, dt, to, s);
        if (r == ncclSuccess) r = p2p(false, (char *)recv + block * (size_t)from, count, dt, from, s);
    }
    return finish(g, group_end(s, r), "alltoall (ncclSend/ncclRecv)");
}

const xo_coll_backend_t xo_coll_nccl_backend = {
    .name = "nccl",
    .init = nccl_init,
    .fini = nccl_fini,
    .allreduce = nccl_allreduce,
    .broadcast = nccl_broadcast,
    .allgather = nccl_allgather,
    .reduce_scatter = nccl_reduce_scatter,
    .reduce = nccl_reduce,
    .gather = nccl_gather,
    .scatter = nccl_scatter,
    .alltoall = nccl_alltoall,
};
