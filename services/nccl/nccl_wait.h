/* Waiting for NCCL without holding a pool's thread, shared by the NCCL users of gpu/ (collectives' nccl backend,
 * device buffers across hosts). Built where NCCL is found; NCCL itself is reached through its plugin (nccl_api.h).
 *
 * Communicators are made non-blocking (ncclConfig_t.blocking = 0) so that their init and operations return at
 * once; these functions then poll, spinning for a short while first (small operations finish in microseconds) and
 * then suspending 1 ms at a time (xo_sleep_ms: inside a method only the method waits). A wait that passes its
 * timeout, or whose stop callback says so, aborts the communicator (ncclCommAbort also unblocks kernels waiting
 * for a peer that will not come) and sets *comm to NULL. */
#ifndef XO_SERVICES_NCCL_NCCL_WAIT_H
#define XO_SERVICES_NCCL_NCCL_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "xoscar/status.h"

/* Optional: polled at each turn; returning true ends the wait with XO_ECANCELED (e.g. the peer already failed). */
typedef bool (*xo_nccl_stop_fn)(void *arg);

/* Until the communicator has nothing in progress. Errors: XO_EDEVICE (NCCL's text), XO_ETIMEDOUT, XO_ECANCELED;
 * the text names what. */
xo_status_t xo__nccl_wait_comm(ncclComm_t *comm, int64_t timeout_ms, const char *what, xo_nccl_stop_fn stop,
                               void *stop_arg);

/* Until stream has run everything queued on it (and the communicator reports no error). Errors as above. */
xo_status_t xo__nccl_wait_stream(ncclComm_t *comm, cudaStream_t stream, int64_t timeout_ms, const char *what,
                                 xo_nccl_stop_fn stop, void *stop_arg);

/* Sets the error text for r from `what` and NCCL's own words; returns XO_EDEVICE. */
xo_status_t xo__nccl_error(ncclComm_t comm, ncclResult_t r, const char *what);

#endif
