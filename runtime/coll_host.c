/* The host backend of collectives: the algorithms over the mailbox's put messages.
 *
 *   allreduce  ring: reduce-scatter then allgather, size-1 steps each. Each member sends and receives 2(size-1)/size
 *              of the buffer in all (bandwidth-optimal), at the cost of 2(size-1) message latencies. Small buffers
 *              (size * bytes <= 64 KiB) instead go to every member at once and are reduced by each: one latency.
 *   broadcast  binomial tree from root: ceil(log2 size) rounds.
 *   allgather  ring: size-1 steps, each member forwarding the block it received in the step before.
 *
 * Device memory is staged: the member's buffer is copied to host memory first and back at the end (one copy each
 * way on the host device backend; PCIe transfers on a GPU, where the nccl backend is the better choice). Host
 * memory (a pool without a device) is worked on in place. Large allreduces and allgathers among members that all
 * own host devices on one host skip the messages and read each other's buffers (coll_shm.c). */
#include <stdlib.h>
#include <string.h>

#include "runtime/coll.h"
#include "runtime/core.h"

/* ---- element-wise reduction ---- */

#define REDUCE_LOOP(T)                                                                                               \
    do {                                                                                                             \
        T *d = dst;                                                                                                  \
        const T *s = src;                                                                                            \
        switch (op) {                                                                                                \
        case XO_REDUCE_SUM:                                                                                          \
            for (size_t i = 0; i < n; i++) d[i] = (T)(d[i] + s[i]);                                                  \
            break;                                                                                                   \
        case XO_REDUCE_PROD:                                                                                         \
            for (size_t i = 0; i < n; i++) d[i] = (T)(d[i] * s[i]);                                                  \
            break;                                                                                                   \
        case XO_REDUCE_MIN:                                                                                          \
            for (size_t i = 0; i < n; i++) d[i] = s[i] < d[i] ? s[i] : d[i];                                         \
            break;                                                                                                   \
        case XO_REDUCE_MAX:                                                                                          \
            for (size_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];                                         \
            break;                                                                                                   \
        }                                                                                                            \
    } while (0)

/* dst[i] = op(dst[i], src[i]) for n elements. Integer sums and products wrap (unsigned arithmetic for the unsigned
 * types; the signed ones are computed as such, as NCCL does). */
void xo_coll_reduce(void *dst, const void *src, size_t n, xo_dtype_t dt, xo_reduce_op_t op)
{
    switch (dt) {
    case XO_DTYPE_INT8: REDUCE_LOOP(int8_t); break;
    case XO_DTYPE_UINT8: REDUCE_LOOP(uint8_t); break;
    case XO_DTYPE_INT32: REDUCE_LOOP(int32_t); break;
    case XO_DTYPE_UINT32: REDUCE_LOOP(uint32_t); break;
    case XO_DTYPE_INT64: REDUCE_LOOP(int64_t); break;
    case XO_DTYPE_UINT64: REDUCE_LOOP(uint64_t); break;
    case XO_DTYPE_FLOAT32: REDUCE_LOOP(float); break;
    case XO_DTYPE_FLOAT64: REDUCE_LOOP(double); break;
    }
}

/* ---- staging between the member's buffer and host memory ---- */

/* Copies bytes of the member's buffer src into the host work buffer (nothing when they are the same memory). */
static xo_status_t stage_in(xo_coll_t *g, const void *src, size_t bytes, void *host)
{
    if (src == host) return XO_OK;
    if (g->dev) return xo_device_memcpy(g->dev, host, src, bytes, XO_MEMCPY_DEVICE_TO_HOST, NULL);
    memmove(host, src, bytes);
    return XO_OK;
}

static xo_status_t stage_out(xo_coll_t *g, void *dst, const void *host, size_t bytes)
{
    if (dst == host) return XO_OK;
    if (g->dev) return xo_device_memcpy(g->dev, dst, host, bytes, XO_MEMCPY_HOST_TO_DEVICE, NULL);
    memmove(dst, host, bytes);
    return XO_OK;
}

/* The host buffer an operation works in: dst itself for host memory, else a new one (freed by the caller). */
static void *work_buffer(xo_coll_t *g, void *dst, size_t bytes, void **owned_p)
{
    *owned_p = NULL;
    if (!g->dev) return dst;
    *owned_p = malloc(bytes ? bytes : 1);
    return *owned_p;
}

static xo_status_t staging_failed(xo_coll_t *g, xo_status_t st)
{
    return xo_coll_fail(g, st, "collective %s: staging device memory: %s", g->name, xo_last_error());
}

/* ---- allreduce ---- */

void xo_coll_part(size_t count, int size, int i, size_t *start, size_t *n)
{
    size_t a = count * (size_t)i / (size_t)size, b = count * (size_t)(i + 1) / (size_t)size;
    *start = a;
    *n = b - a;
}

/* Small buffers, one message latency instead of the ring's 2(size-1): every member gives block `to` of w (stride 0:
 * all of w) to member `to`, and each reduces the n blocks it got in rank order into out, so that every member gets
 * the same bits. w and out may be the same memory. */
static xo_status_t direct_reduce(xo_coll_t *g, const unsigned char *w, size_t stride, unsigned char *out, size_t count,
                                 xo_dtype_t dt, xo_reduce_op_t op, const char *what)
{
    size_t len = count * xo_dtype_size(dt);
    int n = g->size;
    unsigned char *got = malloc(len * (size_t)n);
    if (!got) return xo_coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of %s", len * (size_t)n, what);
    xo_coll_sends_t sends = {0};
    xo_status_t st = xo_coll_all_to_all(g, &sends, 0, w, stride, len, got);
    if (st == XO_OK) st = xo_coll_sends_wait(g, &sends);
    if (st == XO_OK) {
        memcpy(out, got, len);
        for (int r = 1; r < n; r++) xo_coll_reduce(out, got + len * (size_t)r, count, dt, op);
    }
    xo_coll_sends_free(&sends);
    free(got);
    return st;
}

static xo_status_t host_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op)
{
    size_t es = xo_dtype_size(dt), bytes = count * es;
    int n = g->size, r = g->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    if (g->shm && n > 1 && bytes * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo_coll_shm_allreduce(g, send, recv, count, dt, op, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, recv, bytes, &owned);
    unsigned char *w = work;
    size_t max_part = (count + (size_t)n - 1) / (size_t)n * es;
    void *tmp = n > 1 ? malloc(max_part ? max_part : 1) : NULL;
    if (!work || (n > 1 && !tmp)) {
        free(owned), free(tmp);
        return xo_coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of allreduce", bytes);
    }
    xo_status_t st = stage_in(g, send, bytes, work);
    if (st != XO_OK) st = staging_failed(g, st);
    if (st == XO_OK && n > 1 && bytes * (size_t)n <= XO_COLL_DIRECT_MAX) {
        g->last_algorithm = "direct";
        st = direct_reduce(g, w, 0, w, count, dt, op, "allreduce");
        if (st == XO_OK && (st = stage_out(g, recv, work, bytes)) != XO_OK) st = staging_failed(g, st);
        free(tmp);
        free(owned);
        return st;
    }
    g->last_algorithm = "ring";
    xo_coll_sends_t sends = {0};
    for (int step = 0; st == XO_OK && step < n - 1; step++) { /* reduce-scatter */
        size_t s0, sn, r0, rn;
        xo_coll_part(count, n, (r - step + n) % n, &s0, &sn);
        xo_coll_part(count, n, (r - step - 1 + 2 * n) % n, &r0, &rn);
        st = xo_coll_send(g, &sends, next, (uint32_t)step, w + s0 * es, sn * es);
        if (st == XO_OK) st = xo_coll_recv(g, prev, (uint32_t)step, tmp, rn * es);
        if (st == XO_OK) xo_coll_reduce(w + r0 * es, tmp, rn, dt, op);
    }
    for (int step = 0; st == XO_OK && step < n - 1; step++) { /* allgather of the reduced parts */
        size_t s0, sn, r0, rn;
        xo_coll_part(count, n, (r + 1 - step + n) % n, &s0, &sn);
        xo_coll_part(count, n, (r - step + n) % n, &r0, &rn);
        uint32_t tag = (uint32_t)(n - 1 + step);
        st = xo_coll_send(g, &sends, next, tag, w + s0 * es, sn * es);
        if (st == XO_OK) st = xo_coll_recv(g, prev, tag, w + r0 * es, rn * es);
    }
    /* The puts' replies are collected once, at the end: waiting for each step's would add a round trip per step
     * (the data was copied into the messages when they were sent, so the buffer is free to change meanwhile). */
    if (st == XO_OK) st = xo_coll_sends_wait(g, &sends);
    if (st == XO_OK && (st = stage_out(g, recv, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_free(&sends);
    free(tmp);
    free(owned);
    return st;
}

/* ---- broadcast ---- */

static xo_status_t host_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root)
{
    size_t bytes = count * xo_dtype_size(dt);
    int n = g->size, v = (g->rank - root + n) % n; /* rank relative to root */
    if (g->shm && n > 1 && bytes > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo_coll_shm_broadcast(g, buf, count, dt, root, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, buf, bytes, &owned);
    if (!work) return xo_coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of broadcast", bytes);
    g->last_algorithm = "tree";
    xo_status_t st = v == 0 ? stage_in(g, buf, bytes, work) : XO_OK;
    if (st != XO_OK) st = staging_failed(g, st);
    int mask = 1;
    for (; st == XO_OK && mask < n; mask <<= 1) { /* receive once, from the member mask below */
        if (v & mask) {
            st = xo_coll_recv(g, (g->rank - mask + n) % n, 0, work, bytes);
            break;
        }
    }
    xo_coll_sends_t sends = {0};
    for (mask >>= 1; st == XO_OK && mask > 0; mask >>= 1) /* then pass it down the tree */
        if (v + mask < n) st = xo_coll_send(g, &sends, (g->rank + mask) % n, 0, work, bytes);
    if (st == XO_OK) st = xo_coll_sends_wait(g, &sends);
    if (st == XO_OK && v != 0 && (st = stage_out(g, buf, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_free(&sends);
    free(owned);
    return st;
}

/* ---- allgather ---- */

static xo_status_t host_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    size_t block = count * xo_dtype_size(dt);
    int n = g->size, r = g->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    if (g->shm && n > 1 && block * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo_coll_shm_allgather(g, send, recv, count, dt, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, recv, block * (size_t)n, &owned);
    unsigned char *w = work;
    if (!work) return xo_coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of allgather", block * (size_t)n);
    g->last_algorithm = "ring";
    xo_status_t st = stage_in(g, send, block, w + block * (size_t)r);
    if (st != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_t sends = {0};
    for (int step = 0; st == XO_OK && step < n - 1; step++) {
        int si = (r - step + n) % n, ri = (r - step - 1 + 2 * n) % n;
        st = xo_coll_send(g, &sends, next, (uint32_t)step, w + block * (size_t)si, block);
        if (st == XO_OK) st = xo_coll_recv(g, prev, (uint32_t)step, w + block * (size_t)ri, block);
    }
    if (st == XO_OK) st = xo_coll_sends_wait(g, &sends);
    if (st == XO_OK && (st = stage_out(g, recv, work, block * (size_t)n)) != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_free(&sends);
    free(owned);
    return st;
}

/* ---- reduce-scatter ---- */

/* Large blocks: the ring's reduce-scatter, shifted so that member r ends with block r. */
static xo_status_t host_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                       xo_reduce_op_t op)
{
    size_t es = xo_dtype_size(dt), block = count * es;
    int n = g->size, r = g->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    if (n == 1) {
        xo_status_t st = g->dev ? xo_device_memcpy(g->dev, recv, send, block, XO_MEMCPY_DEVICE_TO_DEVICE, NULL)
                                : (memcpy(recv, send, block), XO_OK);
        return st == XO_OK ? XO_OK : staging_failed(g, st);
    }
    if (g->shm && block * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo_coll_shm_reduce_scatter(g, send, recv, count, dt, op, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    /* The work buffer holds the whole send (host memory: a copy, as the ring reduces into it). */
    unsigned char *w = malloc(block * (size_t)n), *tmp = malloc(block), *out = g->dev ? malloc(block) : recv;
    if (!w || !tmp || !out) {
        free(w), free(tmp);
        if (g->dev) free(out);
        return xo_coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of reduce_scatter", block * (size_t)n);
    }
    xo_status_t st = g->dev ? xo_device_memcpy(g->dev, w, send, block * (size_t)n, XO_MEMCPY_DEVICE_TO_HOST, NULL)
                            : (memcpy(w, send, block * (size_t)n), XO_OK);
    if (st != XO_OK) st = staging_failed(g, st);
    if (st == XO_OK && block * (size_t)n <= XO_COLL_DIRECT_MAX) {
        g->last_algorithm = "direct";
        st = direct_reduce(g, w, block, out, count, dt, op, "reduce_scatter");
    } else if (st == XO_OK) {
        g->last_algorithm = "ring";
        xo_coll_sends_t sends = {0};
        for (int step = 0; st == XO_OK && step < n - 1; step++) {
            int si = (r - step - 1 + 2 * n) % n, ri = (r - step - 2 + 2 * n) % n;
            st = xo_coll_send(g, &sends, next, (uint32_t)step, w + block * (size_t)si, block);
            if (st == XO_OK) st = xo_coll_recv(g, prev, (uint32_t)step, tmp, block);
            if (st == XO_OK) xo_coll_reduce(w + block * (size_t)ri, tmp, count, dt, op);
        }
        if (st == XO_OK) st = xo_coll_sends_wait(g, &sends);
        xo_coll_sends_free(&sends);
        if (st == XO_OK) memcpy(out, w + block * (size_t)r, block);
    }
    if (st == XO_OK && g->dev && (st = xo_device_memcpy(g->dev, recv, out, block, XO_MEMCPY_HOST_TO_DEVICE, NULL)) != XO_OK)
        st = staging_failed(g, st);
    free(w), free(tmp);
    if (g->dev) free(out);
    return st;
}

static xo_status_t host_init(xo_coll_t *g)
{
    (void)g;
    return XO_OK;
}

static void host_fini(xo_coll_t *g) { (void)g; }

const xo_coll_backend_t xo_coll_host_backend = {
    .name = "host",
    .init = host_init,
    .fini = host_fini,
    .allreduce = host_allreduce,
    .broadcast = host_broadcast,
    .allgather = host_allgather,
    .reduce_scatter = host_reduce_scatter,
};
