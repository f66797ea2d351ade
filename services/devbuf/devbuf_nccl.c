/* Device buffers across hosts over NCCL point-to-point (services/devbuf/devbuf.h): when the owner's and the receiver's
 * pools both own CUDA devices, the receiver pulls the lent range GPU to GPU with ncclSend/ncclRecv instead of
 * staging it through host memory. Built only with NCCL; not run in CI (no GPU).
 *
 * One transfer, one communicator: the receiver makes the unique id and sends it with its request to the owner's
 * xo.devbuf service ("nccl_send"); both sides then create a two-rank non-blocking communicator (owner rank 0,
 * receiver rank 1), move the bytes on a stream of their device, and destroy it. A communicator per transfer costs
 * its setup (milliseconds) every time: worth it for large buffers, and the simple way to keep concurrent transfers
 * between the same two pools apart; caching one per pair of pools is not built. If anything fails, the receiver
 * says why in a warning and stages instead (services/devbuf/device_buf.c). NCCL is reached through its plugin's
 * table (services/nccl/nccl_api.h); without the plugin both sides refuse with the reason and the receiver stages. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "services/nccl/nccl_api.h"
#include "services/nccl/nccl_wait.h"
#include "runtime/core.h"
#include "services/devbuf/devbuf.h"
#include "base/error.h"

/* Both sides: a two-rank communicator on dev, the transfer on a new stream, then everything released. send: rank 0
 * sends size bytes at buf; else rank 1 receives them into buf. */
static xo_status_t transfer(const xo__nccl_api_t *nc, xo_device_t *dev, const ncclUniqueId *id, bool send, void *buf,
                            uint64_t size, int64_t timeout_ms, xo_nccl_stop_fn stop, void *stop_arg)
{
    cudaError_t e = nc->cuda_set_device(xo_device_index(dev));
    if (e != cudaSuccess)
        return xo__error_set(XO_EDEVICE, "cudaSetDevice: %s (%s)", nc->cuda_get_error_string(e),
                            nc->cuda_get_error_name(e));
    xo_device_stream_t *stream = NULL;
    xo_status_t st = xo_device_stream_create(dev, &stream);
    if (st != XO_OK) return st;
    cudaStream_t cu = (cudaStream_t)xo_device_stream_native(stream);
    ncclComm_t comm = NULL;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = nc->comm_init_rank_config(&comm, 2, *id, send ? 0 : 1, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) st = xo__nccl_error(comm, r, "ncclCommInitRankConfig");
    if (st == XO_OK) st = xo__nccl_wait_comm(&comm, timeout_ms, "ncclCommInitRankConfig", stop, stop_arg);
    if (st == XO_OK) {
        r = send ? nc->send(buf, (size_t)size, ncclUint8, 1, comm, cu) : nc->recv(buf, (size_t)size, ncclUint8, 0, comm, cu);
        if (r != ncclSuccess && r != ncclInProgress) st = xo__nccl_error(comm, r, send ? "ncclSend" : "ncclRecv");
        if (st == XO_OK && r == ncclInProgress)
            st = xo__nccl_wait_comm(&comm, timeout_ms, send ? "ncclSend" : "ncclRecv", stop, stop_arg);
        if (st == XO_OK) st = xo__nccl_wait_stream(&comm, cu, timeout_ms, send ? "ncclSend" : "ncclRecv", stop, stop_arg);
    }
    if (comm) {
        if (st == XO_OK) nc->comm_destroy(comm);
        else nc->comm_abort(comm);
    }
    xo_device_stream_destroy(stream);
    return st;
}

xo_status_t xo__devbuf_nccl_send(xo_device_t *dev, uint64_t ptr, uint64_t size, const void *id, size_t id_len,
                                 int64_t timeout_ms)
{
    const xo__nccl_api_t *nc = xo__nccl_api();
    if (!nc) return xo__nccl_missing("NCCL send of a device buffer");
    if (id_len != sizeof(ncclUniqueId)) return xo__error_set(XO_EINVAL, "an NCCL unique id of %zu bytes", id_len);
    if (strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") != 0)
        return xo__error_set(XO_ENOTSUP, "NCCL transfers need a cuda device");
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    return transfer(nc, dev, &uid, true, (void *)(uintptr_t)ptr, size, timeout_ms, NULL, NULL);
}

/* The owner answering with an error (a bad token, no cuda device, its own NCCL failure) means it will not send:
 * stop waiting for it. Its success may come before this side's receive has finished, which is no reason to stop. */
static bool owner_failed(void *arg)
{
    xo_future_t *f = arg;
    return atomic_load_explicit(&f->state, memory_order_acquire) == XO_FUT_DONE && f->status != XO_OK;
}

xo_status_t xo__devbuf_nccl_fetch(xo_device_t *dev, const char *owner, uint64_t ptr, uint64_t size,
                                  const unsigned char token[XO_DEVBUF_TOKEN_LEN], int64_t timeout_ms, void **ptr_p)
{
    const xo__nccl_api_t *nc = xo__nccl_api();
    if (!nc) return xo__nccl_missing("NCCL fetch of a device buffer");
    if (strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") != 0)
        return xo__error_set(XO_ENOTSUP, "NCCL transfers need a cuda device");
    ncclUniqueId id;
    ncclResult_t r = nc->get_unique_id(&id);
    if (r != ncclSuccess) return xo__nccl_error(NULL, r, "ncclGetUniqueId");
    void *dst = NULL;
    xo_status_t st = xo_device_alloc(dev, (size_t)size, &dst);
    if (st != XO_OK) return st;
    xo_ref_t *svc = xo__ref_unchecked(owner, XO_DEVBUF_SERVICE_UID);
    xo_future_t *f = NULL;
    if (!svc) st = xo__error_set(XO_ENOMEM, "out of memory");
    if (st == XO_OK)
        st = xo_send(svc, "nccl_send", xo_args("uubb", ptr, size, token, (size_t)XO_DEVBUF_TOKEN_LEN, &id, sizeof id),
                     &f);
    if (st == XO_OK) st = transfer(nc, dev, &id, false, dst, size, timeout_ms, owner_failed, f);
    if (f) { /* the owner's own verdict: its error text is the better one when both failed */
        xo_status_t owner_st = xo_future_wait(f, timeout_ms, NULL);
        if (owner_st != XO_OK) {
            char text[XO_ERROR_TEXT_MAX];
            snprintf(text, sizeof text, "%s", xo_last_error());
            st = xo__error_set(owner_st, "the owner %s: %s", owner, text);
        }
        xo_future_free(f);
    }
    xo_ref_free(svc);
    if (st != XO_OK) {
        xo_device_free(dev, dst);
        return st;
    }
    *ptr_p = dst;
    return XO_OK;
}
