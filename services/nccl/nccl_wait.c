/* Polling NCCL communicators and streams from actor methods (services/nccl/nccl_wait.h). */
#include <time.h>

#include "services/nccl/nccl_wait.h"
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
    const char *last = comm ? ncclGetLastError(comm) : NULL;
    return xo__error_set(XO_EDEVICE, "%s: %s%s%s", what, ncclGetErrorString(r), last && *last ? ": " : "",
                        last ? last : "");
}

/* One turn of a wait: XO_EAGAIN to go on, or how it ends. */
static xo_status_t turn(ncclComm_t *comm, uint64_t t0, int64_t timeout_ms, const char *what, xo_nccl_stop_fn stop,
                        void *stop_arg)
{
    if (stop && stop(stop_arg)) {
        ncclCommAbort(*comm);
        *comm = NULL;
        return xo__error_set(XO_ECANCELED, "%s: stopped (the peer gave up)", what);
    }
    if (now_ns() - t0 > (uint64_t)timeout_ms * 1000000u) {
        ncclCommAbort(*comm);
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
    uint64_t t0 = now_ns();
    for (;;) {
        ncclResult_t state = ncclSuccess, r = ncclCommGetAsyncError(*comm, &state);
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
    uint64_t t0 = now_ns();
    for (;;) {
        cudaError_t e = cudaStreamQuery(stream);
        if (e == cudaSuccess) return XO_OK;
        if (e != cudaErrorNotReady)
            return xo__error_set(XO_EDEVICE, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
        ncclResult_t state = ncclSuccess;
        if (ncclCommGetAsyncError(*comm, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
            return xo__nccl_error(*comm, state, what);
        xo_status_t st = turn(comm, t0, timeout_ms, what, stop, stop_arg);
        if (st != XO_EAGAIN) return st;
    }
}
