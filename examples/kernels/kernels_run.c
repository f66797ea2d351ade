/* Which implementation of a kernel runs: the device's backend decides (kernels.h). Also the example's wait for a
 * stream, which suspends the calling method instead of blocking its scheduler thread. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "xoscar/xoscar.h"

bool xo_k_is_cuda(const xo_device_t *dev)
{
    return strcmp(xo_device_backend_name(xo_device_backend(dev)), "cuda") == 0;
}

const char *xo_k_unsupported(const xo_device_t *dev)
{
    const char *be = xo_device_backend_name(xo_device_backend(dev));
#ifndef XO_KERNELS_CUDA
    if (strcmp(be, "cuda") == 0) return "this module was built without the CUDA kernels (no nvcc at build time)";
#endif
    if (strcmp(be, "cuda") != 0 && strcmp(be, "host") != 0) return "no kernels for this device backend";
    return NULL;
}

/* XO_OK and *cuda_p when dev has an implementation here; XO_ENOTSUP when not (xo_k_unsupported says why). */
static xo_status_t pick(const xo_device_t *dev, bool *cuda_p)
{
    if (xo_k_unsupported(dev)) return XO_ENOTSUP;
    *cuda_p = xo_k_is_cuda(dev);
    return XO_OK;
}

xo_status_t xo_k_saxpy(xo_device_t *dev, xo_device_stream_t *s, const xo_k_saxpy_t *p)
{
    bool cuda;
    xo_status_t st = pick(dev, &cuda);
    if (st != XO_OK) return st;
#ifdef XO_KERNELS_CUDA
    if (cuda) return xo_k_saxpy_cuda(s, p->n, p->a, p->x, p->y);
#endif
    return xo_device_launch_host(s, xo_k_saxpy_host, (void *)p);
}

xo_status_t xo_k_sum(xo_device_t *dev, xo_device_stream_t *s, const xo_k_sum_t *p, float *scratch)
{
    bool cuda;
    xo_status_t st = pick(dev, &cuda);
    if (st != XO_OK) return st;
#ifdef XO_KERNELS_CUDA
    if (cuda) {
        if (!scratch) return XO_EINVAL; /* the CUDA reduction writes its partial sums there */
        return xo_k_sum_cuda(s, p->n, p->x, scratch, p->out);
    }
#endif
    (void)scratch;
    return xo_device_launch_host(s, xo_k_sum_host, (void *)p);
}

xo_status_t xo_k_matmul(xo_device_t *dev, xo_device_stream_t *s, const xo_k_matmul_t *p)
{
    bool cuda;
    xo_status_t st = pick(dev, &cuda);
    if (st != XO_OK) return st;
#ifdef XO_KERNELS_CUDA
    if (cuda) return xo_k_matmul_cuda(s, p->m, p->k, p->n, p->a, p->b, p->c);
#endif
    return xo_device_launch_host(s, xo_k_matmul_host, (void *)p);
}

/* How long xo_k_wait re-queries at every scheduler turn before it polls each millisecond. */
#define SPIN_NS 200000

xo_status_t xo_k_wait(xo_device_t *dev, xo_device_stream_t *s)
{
    const char *mode = getenv("XO_K_WAIT");
    if (mode && strcmp(mode, "sync") == 0) return xo_device_stream_synchronize(s);
    xo_device_event_t *ev;
    xo_status_t st = xo_device_event_create(dev, &ev);
    if (st != XO_OK) return st;
    st = xo_device_event_record(ev, s);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (st == XO_OK && (st = xo_device_event_query(ev)) == XO_EAGAIN) {
        /* Short work ends within microseconds: for the first SPIN_NS re-query at each turn of the scheduler
         * (xo_sleep_ms(0) still lets the pool's other actors run), then every millisecond. A cancelled call still
         * waits for its work: the buffers it uses must outlive the kernel. */
        clock_gettime(CLOCK_MONOTONIC, &t);
        int64_t ns = (int64_t)(t.tv_sec - t0.tv_sec) * 1000000000 + (t.tv_nsec - t0.tv_nsec);
        xo_sleep_ms(ns < SPIN_NS ? 0 : 1);
        st = XO_OK;
    }
    xo_device_event_destroy(ev);
    return st;
}
