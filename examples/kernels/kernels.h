/* The kernels of the example modules, in two implementations: C functions that the host device backend runs on a
 * stream's worker (xo_device_launch_host), and CUDA kernels launched on a CUDA stream (xo_device_launch_kernel).
 * xo_k_saxpy / xo_k_sum / xo_k_matmul pick the one that matches the device's backend (kernels_run.c); a module
 * that compiles kernels.cu defines XO_KERNELS_CUDA. Every pointer below is device memory of the stream's device;
 * matrices are row-major floats. */
#ifndef XO_EXAMPLES_KERNELS_H
#define XO_EXAMPLES_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

#include "xoscar/gpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- host: one argument struct per kernel, read when the stream runs it (keep it alive until then) ---- */

typedef struct xo_k_saxpy {
    size_t n;
    float a;
    const float *x;
    float *y; /* y = a * x + y */
} xo_k_saxpy_t;

typedef struct xo_k_sum {
    size_t n;
    const float *x;
    float *out; /* one float: the sum of x */
} xo_k_sum_t;

typedef struct xo_k_matmul {
    int m, k, n;
    const float *a; /* m x k */
    const float *b; /* k x n */
    float *c;       /* m x n = a b */
} xo_k_matmul_t;

void xo_k_saxpy_host(void *arg);
void xo_k_sum_host(void *arg);
void xo_k_matmul_host(void *arg);

/* ---- cuda: queue the kernel(s) on stream; return at once (errors of the launch only) ---- */

/* How many floats of scratch device memory xo_k_sum_cuda needs for partial sums. */
#define XO_K_SUM_SCRATCH 1024

xo_status_t xo_k_saxpy_cuda(xo_device_stream_t *stream, size_t n, float a, const float *x, float *y);
xo_status_t xo_k_sum_cuda(xo_device_stream_t *stream, size_t n, const float *x, float *scratch, float *out);
xo_status_t xo_k_matmul_cuda(xo_device_stream_t *stream, int m, int k, int n, const float *a, const float *b, float *c);

/* ---- either: the implementation of dev's backend ("cuda": the CUDA kernels; "host": the C functions) ---- */

/* Whether dev is a CUDA device (its kernels are the CUDA ones). */
bool xo_k_is_cuda(const xo_device_t *dev);

/* NULL when this module has kernels for dev's backend, else why not (static text): a cuda device in a module built
 * without kernels.cu, or a backend other than cuda and host. */
const char *xo_k_unsupported(const xo_device_t *dev);

/* Queue the kernel described by p on stream s of dev and return at once. The host implementation reads *p when the
 * stream runs it: keep p alive, and the buffers untouched, until xo_k_wait (or a synchronize) has returned. sum:
 * scratch is XO_K_SUM_SCRATCH floats of dev's memory on cuda; host ignores it (NULL is fine). XO_ENOTSUP where
 * xo_k_unsupported(dev) says why; XO_EINVAL for a cuda sum without scratch; launch errors (xo_last_error). */
xo_status_t xo_k_saxpy(xo_device_t *dev, xo_device_stream_t *s, const xo_k_saxpy_t *p);
xo_status_t xo_k_sum(xo_device_t *dev, xo_device_stream_t *s, const xo_k_sum_t *p, float *scratch);
xo_status_t xo_k_matmul(xo_device_t *dev, xo_device_stream_t *s, const xo_k_matmul_t *p);

/* Waits until the work queued on s so far has finished, and returns its error (XO_EDEVICE with the backend's text).
 * Inside an actor method it suspends only the method: it records an event and queries it, at every turn of the
 * scheduler for the first 0.2 ms and then every millisecond (xo_sleep_ms), so the pool's thread runs other actors
 * meanwhile; a stream synchronize would block that thread for the kernel's whole duration. XO_K_WAIT=sync in the
 * environment makes it synchronize instead, to measure the difference (examples/kernels/wait_bench.c: on the host
 * device, a 36 ms matmul delayed a ping of the same one-thread pool by 36 ms with sync, by at most 1 ms here; a
 * small kernel call took the same ~0.08 ms either way). */
xo_status_t xo_k_wait(xo_device_t *dev, xo_device_stream_t *s);

#ifdef __cplusplus
}
#endif
#endif
