/* The kernels of the example module, in two implementations: C functions that the host device backend runs on a
 * stream's worker (xo_device_launch_host), and CUDA kernels launched on a CUDA stream (xo_device_launch_kernel).
 * Every pointer below is device memory of the stream's device; matrices are row-major floats. */
#ifndef XO_EXAMPLES_KERNELS_H
#define XO_EXAMPLES_KERNELS_H

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

#ifdef __cplusplus
}
#endif
#endif
