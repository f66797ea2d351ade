/* The kernels for the host device backend: plain C, run by a stream's worker thread on the device's memory (host
 * memory). They are the CPU twins of kernels.cu, computing the same results (up to float rounding order). */
#include <string.h>

#include "kernels.h"

void xo_k_saxpy_host(void *arg)
{
    const xo_k_saxpy_t *p = arg;
    for (size_t i = 0; i < p->n; i++) p->y[i] = p->a * p->x[i] + p->y[i];
}

void xo_k_sum_host(void *arg)
{
    const xo_k_sum_t *p = arg;
    /* A double accumulator: for large n a float one loses digits that the GPU's tree reduction keeps. */
    double s = 0;
    for (size_t i = 0; i < p->n; i++) s += p->x[i];
    *p->out = (float)s;
}

void xo_k_matmul_host(void *arg)
{
    const xo_k_matmul_t *p = arg;
    /* i-k-j order: the inner loop walks rows of b and c contiguously. */
    memset(p->c, 0, (size_t)p->m * (size_t)p->n * sizeof(float));
    for (int i = 0; i < p->m; i++) {
        float *crow = p->c + (size_t)i * p->n;
        for (int kk = 0; kk < p->k; kk++) {
            float aik = p->a[(size_t)i * p->k + kk];
            const float *brow = p->b + (size_t)kk * p->n;
            for (int j = 0; j < p->n; j++) crow[j] += aik * brow[j];
        }
    }
}
