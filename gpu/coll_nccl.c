/* The NCCL backend of collectives (include/xoscar/collective.h). Built only where the CUDA toolkit and NCCL are
 * found (gpu/CMakeLists.txt); not run in CI, which has no GPU.
 *
 * Setup: rank 0 makes the unique id, the rendezvous hands it to every member (phase 1 of the group's exchange), and
 * each member creates its communicator on its pool's CUDA device. The communicator is non-blocking
 * (ncclConfig_t.blocking = 0): ncclCommInitRankConfig returns at once and this member's method polls
 * ncclCommGetAsyncError, suspending between polls. A blocking init would hold a scheduler thread until every rank has
 * joined, and with two members in one pool of one thread it would never finish.
 *
 * Operations run on a stream of the pool's device; the member's method waits for the stream by polling
 * (cudaStreamQuery), spinning for a short while first (small collectives finish in microseconds) and then
 * suspending 1 ms at a time, so the pool's other actors run meanwhile. A member that does not finish within the
 * group's timeout aborts the communicator (ncclCommAbort, so nothing stays blocked on a dead peer) and fails with
 * XO_ETIMEDOUT; the group is broken after that, as after any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "runtime/coll.h"
#include "runtime/error.h"

#define SPIN_NS 100000 /* poll without suspending for this long first */

typedef struct nccl_state {
    ncclComm_t comm;
    xo_device_stream_t *stream;
    cudaStream_t cu;
} nccl_state_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static xo_status_t nccl_error(xo_coll_t *g, ncclResult_t r, const char *what)
{
    nccl_state_t *s = g->backend_state;
    const char *last = s && s->comm ? ncclGetLastError(s->comm) : NULL;
    return xo_coll_fail(g, XO_EDEVICE, "collective %s: %s: %s%s%s", g->name, what, ncclGetErrorString(r),
                        last && *last ? ": " : "", last ? last : "");
}

/* Waits, suspending, until the communicator has no operation in progress (non-blocking mode). */
static xo_status_t wait_comm(xo_coll_t *g, const char *what)
{
    nccl_state_t *s = g->backend_state;
    uint64_t t0 = now_ns(), limit = (uint64_t)g->timeout_ms * 1000000u;
    for (;;) {
        ncclResult_t state = ncclSuccess, r = ncclCommGetAsyncError(s->comm, &state);
        if (r != ncclSuccess) return nccl_error(g, r, what);
        if (state == ncclSuccess) return XO_OK;
        if (state != ncclInProgress) return nccl_error(g, state, what);
        if (now_ns() - t0 > limit) {
            ncclCommAbort(s->comm);
            s->comm = NULL;
            return xo_coll_fail(g, XO_ETIMEDOUT, "collective %s: %s did not finish within %lld ms (a member missing?)",
                                g->name, what, (long long)g->timeout_ms);
        }
        if (now_ns() - t0 > SPIN_NS) xo_sleep_ms(1);
    }
}

/* Waits, suspending, until the stream has run everything queued on it. */
static xo_status_t wait_stream(xo_coll_t *g, const char *what)
{
    nccl_state_t *s = g->backend_state;
    uint64_t t0 = now_ns(), limit = (uint64_t)g->timeout_ms * 1000000u;
    for (;;) {
        cudaError_t e = cudaStreamQuery(s->cu);
        if (e == cudaSuccess) return XO_OK;
        if (e != cudaErrorNotReady)
            return xo_coll_fail(g, XO_EDEVICE, "collective %s: %s: %s (%s)", g->name, what, cudaGetErrorString(e),
                                cudaGetErrorName(e));
        ncclResult_t state = ncclSuccess;
        if (ncclCommGetAsyncError(s->comm, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
            return nccl_error(g, state, what);
        if (now_ns() - t0 > limit) {
            ncclCommAbort(s->comm); /* unblocks the kernels waiting for a peer that will not come */
            s->comm = NULL;
            return xo_coll_fail(g, XO_ETIMEDOUT, "collective %s: %s did not finish within %lld ms (a member missing?)",
                                g->name, what, (long long)g->timeout_ms);
        }
        if (now_ns() - t0 > SPIN_NS) xo_sleep_ms(1);
    }
}

static xo_status_t nccl_init(xo_coll_t *g)
{
    if (!g->dev || strcmp(xo_device_backend_name(xo_device_backend(g->dev)), "cuda") != 0)
        return xo_error_set(XO_ENOTSUP, "collective %s: nccl needs the pool to own a cuda device", g->name);
    nccl_state_t *s = calloc(1, sizeof *s);
    if (!s) return xo_error_set(XO_ENOMEM, "out of memory");
    g->backend_state = s;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r;
    if (g->rank == 0 && (r = ncclGetUniqueId(&id)) != ncclSuccess) {
        /* Still exchange (an empty blob), so that the other members fail at once instead of waiting. */
        xo_result_t *all = NULL;
        xo_coll_exchange(g, "", 0, &all);
        xo_result_free(all);
        return nccl_error(g, r, "ncclGetUniqueId");
    }
    xo_result_t *all = NULL;
    xo_status_t st = xo_coll_exchange(g, &id, g->rank == 0 ? sizeof id : 0, &all);
    xo_bytes_t root_id = {0};
    if (st == XO_OK) st = xo_coll_exchange_get(all, g->size, 0, &root_id);
    if (st == XO_OK && root_id.len != sizeof id)
        st = xo_error_set(XO_EDEVICE, "collective %s: rank 0 could not make an NCCL id", g->name);
    if (st == XO_OK) memcpy(&id, root_id.ptr, sizeof id);
    xo_result_free(all);
    if (st != XO_OK) return st;

    cudaError_t e = cudaSetDevice(xo_device_index(g->dev));
    if (e != cudaSuccess)
        return xo_error_set(XO_EDEVICE, "cudaSetDevice: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    st = xo_device_stream_create(g->dev, &s->stream);
    if (st != XO_OK) return st;
    s->cu = (cudaStream_t)xo_device_stream_native(s->stream);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    r = ncclCommInitRankConfig(&s->comm, g->size, id, g->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_error(g, r, "ncclCommInitRankConfig");
    return wait_comm(g, "ncclCommInitRankConfig");
}

static void nccl_fini(xo_coll_t *g)
{
    nccl_state_t *s = g->backend_state;
    if (!s) return;
    if (s->comm) {
        /* A healthy communicator is finalized (flushes, then quiesces); a broken one is aborted. */
        if (g->broken == XO_OK && ncclCommFinalize(s->comm) != ncclSuccess) g->broken = XO_EDEVICE;
        if (g->broken == XO_OK) wait_comm(g, "ncclCommFinalize");
        if (g->broken == XO_OK) ncclCommDestroy(s->comm);
        else if (s->comm) ncclCommAbort(s->comm);
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
    return finish(g, ncclAllReduce(send, recv, count, nccl_type(dt), nccl_op(op), s->comm, s->cu), "ncclAllReduce");
}

static xo_status_t nccl_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, ncclBroadcast(buf, buf, count, nccl_type(dt), root, s->comm, s->cu), "ncclBroadcast");
}

static xo_status_t nccl_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    nccl_state_t *s = g->backend_state;
    return finish(g, ncclAllGather(send, recv, count, nccl_type(dt), s->comm, s->cu), "ncclAllGather");
}

const xo_coll_backend_t xo_coll_nccl_backend = {
    .name = "nccl",
    .init = nccl_init,
    .fini = nccl_fini,
    .allreduce = nccl_allreduce,
    .broadcast = nccl_broadcast,
    .allgather = nccl_allgather,
};
