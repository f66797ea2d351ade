/* Polling NCCL communicators and streams from actor methods (services/nccl/nccl_wait.h). Every function here is
 * reached with a communicator, so the NCCL plugin is loaded: xo__nccl_api() is not NULL. */
#include <time.h>

#include "services/nccl/nccl_wait.h"
#include "services/nccl/nccl_api.h"
#include "base/error.h"
#include "xoscar/xoscar.h"

#define SPIN_NS 100000 /* poll without suspending for this long first */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

xo_status_t xo__nccl_error(ncclComm_t comm, ncclResult_t r, const char *what)
{
    const xo__nccl_api_t *nc = xo__nccl_api();
    if (!nc) return xo__error_set(XO_EDEVICE, "%s: NCCL error %d (the NCCL plugin is not loaded)", what, (int)r);
    const char *last = comm ? nc->get_last_error(comm) : NULL;
    return xo__error_set(XO_EDEVICE, "%s: %s%s%s", what, nc->get_error_string(r), last && *last ? ": " : "",
                        last ? last : "");
}

/* One turn of a wait: XO_EAGAIN to go on, or how it ends. */
static xo_status_t turn(ncclComm_t *comm, uint64_t t0, int64_t timeout_ms, const char *what, xo_nccl_stop_fn stop,
                        void *stop_arg)
{
    if (stop && stop(stop_arg)) {
        xo__nccl_api()->comm_abort(*comm);
        *comm = NULL;
        return xo__error_set(XO_ECANCELED, "%s: stopped (the peer gave up)", what);
    }
    if (now_ns() - t0 > (uint64_t)timeout_ms * 1000000u) {
        xo__nccl_api()->comm_abort(*comm);
        *comm = NULL;
        return xo__error_set(XO_ETIMEDOUT, "%s did not finish within %lld ms (a peer missing?)", what,
                            (long long)timeout_ms);
    }
    if (now_ns() - t0 > SPIN_NS) xo_sleep_ms(1);
    return XO_EAGAIN;
}

xo_status_t xo__nccl_wait_comm(ncclComm_t *comm, int64_t timeout_ms, const char *what, xo_nccl_stop_fn stop,
                               void *stop_arg)
{
    const xo__nccl_api_t *nc = xo__nccl_api();
    uint64_t t0 = now_ns();
    for (;;) {
        ncclResult_t state = ncclSuccess, r = nc->comm_get_async_error(*comm, &state);
        if (r != ncclSuccess) return xo__nccl_error(*comm, r, what);
        if (state == ncclSuccess) return XO_OK;
        if (state != ncclInProgress) return xo__nccl_error(*comm, state, what);
        xo_status_t st = turn(comm, t0, timeout_ms, what, stop, stop_arg);
        if (st != XO_EAGAIN) return st;
    }
}

xo_status_t xo__nccl_wait_stream(ncclComm_t *comm, cudaStream_t stream, int64_t timeout_ms, const char *what,
                                 xo_nccl_stop_fn stop, void *stop_arg)
{
    const xo__nccl_api_t *nc = xo__nccl_api();
    uint64_t t0 = now_ns();
    for (;;) {
        cudaError_t e = nc->cuda_stream_query(stream);
        if (e == cudaSuccess) return XO_OK;
        if (e != cudaErrorNotReady)
            return xo__error_set(XO_EDEVICE, "%s: %s (%s)", what, nc->cuda_get_error_string(e),
                                nc->cuda_get_error_name(e));
        ncclResult_t state = ncclSuccess;
        if (nc->comm_get_async_error(*comm, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
            return xo__nccl_error(*comm, state, what);
        xo_status_t st = turn(comm, t0, timeout_ms, what, stop, stop_arg);
        if (st != XO_EAGAIN) return st;
    }
}
