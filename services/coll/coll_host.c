/* The host backend of collectives: the algorithms over the mailbox's put messages.
 *
 *   allreduce  ring: reduce-scatter then allgather, size-1 steps each. Each member sends and receives 2(size-1)/size
 *              of the buffer in all (bandwidth-optimal), at the cost of 2(size-1) message latencies. Small buffers
 *              (size * bytes <= 64 KiB) instead go to every member at once and are reduced by each: one latency.
 *   broadcast  binomial tree from root: ceil(log2 size) rounds.
 *   allgather  ring: size-1 steps, each member forwarding the block it received in the step before.
 *   reduce     to root: a binomial tree for buffers up to 64 KiB (ceil(log2 size) latencies, each member sends the
 *              buffer once); larger ones run the allreduce ring's reduce-scatter and then send the reduced parts to
 *              root, which receives 2(size-1)/size of the buffer instead of the tree's whole buffer per round.
 *   gather, scatter  straight between root and each member: root receives (sends) size-1 blocks, each member one.
 *   alltoall   pairwise exchange: each member sends block i to member i, in the order rank+1, rank+2, ..., and
 *              receives from every member (the exchange the direct allreduce uses, with a stride).
 *
 * Device memory is staged: the member's buffer is copied to host memory first and back at the end (one copy each
 * way on the host device backend; PCIe transfers on a GPU, where the nccl backend is the better choice). Host
 * memory (a pool without a device) is worked on in place. Large operations among members that all own host devices
 * on one host skip the messages and read each other's buffers (coll_shm.c). */
#include <stdlib.h>
#include <string.h>

#include "services/coll/coll.h"
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
void xo__coll_combine(void *dst, const void *src, size_t n, xo_dtype_t dt, xo_reduce_op_t op)
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
    return xo__coll_fail(g, st, "collective %s: staging device memory: %s", g->name, xo_last_error());
}

/* The host copy of bytes of the member's buffer src that an operation only sends from: src itself for host memory,
 * else a new one (*owned_p, freed by the caller). NULL with the group failed when it cannot be made. */
static const void *send_buffer(xo_coll_t *g, const void *src, size_t bytes, void **owned_p)
{
    *owned_p = NULL;
    if (!g->dev) return src;
    if (!(*owned_p = malloc(bytes ? bytes : 1))) {
        xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of %s", bytes, g->name);
        return NULL;
    }
    xo_status_t st = stage_in(g, src, bytes, *owned_p);
    if (st != XO_OK) {
        staging_failed(g, st);
        free(*owned_p);
        *owned_p = NULL;
        return NULL;
    }
    return *owned_p;
}

/* dst = src within the member's own memory: what reduce and reduce-scatter do in a group of one. */
static xo_status_t local_copy(xo_coll_t *g, void *dst, const void *src, size_t bytes)
{
    if (dst == src) return XO_OK;
    xo_status_t st = g->dev ? xo_device_memcpy(g->dev, dst, src, bytes, XO_MEMCPY_DEVICE_TO_DEVICE, NULL)
                            : (memmove(dst, src, bytes), XO_OK);
    return st == XO_OK ? XO_OK : staging_failed(g, st);
}

/* ---- allreduce ---- */

void xo__coll_part(size_t count, int size, int i, size_t *start, size_t *n)
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
    if (!got) return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of %s", len * (size_t)n, what);
    xo_coll_sends_t sends = {0};
    xo_status_t st = xo__coll_all_to_all(g, &sends, 0, w, stride, len, got);
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK) {
        memcpy(out, got, len);
        for (int r = 1; r < n; r++) xo__coll_combine(out, got + len * (size_t)r, count, dt, op);
    }
    xo__coll_sends_free(&sends);
    free(got);
    return st;
}

/* The ring's reduce-scatter over w (count elements, reduced in place), tags 0..size-2: afterwards member r holds part
 * (r + 1) % size (xo__coll_part) of the reduction in w. tmp holds the largest part. The puts' replies are left in
 * sends. */
static xo_status_t ring_reduce_scatter(xo_coll_t *g, xo_coll_sends_t *sends, unsigned char *w, void *tmp, size_t count,
                                       xo_dtype_t dt, xo_reduce_op_t op)
{
    size_t es = xo_dtype_size(dt);
    int n = g->size, r = g->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    xo_status_t st = XO_OK;
    for (int step = 0; st == XO_OK && step < n - 1; step++) {
        size_t s0, sn, r0, rn;
        xo__coll_part(count, n, (r - step + n) % n, &s0, &sn);
        xo__coll_part(count, n, (r - step - 1 + 2 * n) % n, &r0, &rn);
        st = xo__coll_send(g, sends, next, (uint32_t)step, w + s0 * es, sn * es);
        if (st == XO_OK) st = xo__coll_recv(g, prev, (uint32_t)step, tmp, rn * es);
        if (st == XO_OK) xo__coll_combine(w + r0 * es, tmp, rn, dt, op);
    }
    return st;
}

static xo_status_t host_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op)
{
    size_t es = xo_dtype_size(dt), bytes = count * es;
    int n = g->size, r = g->rank, next = (r + 1) % n, prev = (r + n - 1) % n;
    if (g->shm && n > 1 && bytes * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_allreduce(g, send, recv, count, dt, op, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, recv, bytes, &owned);
    unsigned char *w = work;
    size_t max_part = (count + (size_t)n - 1) / (size_t)n * es;
    void *tmp = n > 1 ? malloc(max_part ? max_part : 1) : NULL;
    if (!work || (n > 1 && !tmp)) {
        free(owned), free(tmp);
        return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of allreduce", bytes);
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
    if (st == XO_OK) st = ring_reduce_scatter(g, &sends, w, tmp, count, dt, op);
    for (int step = 0; st == XO_OK && step < n - 1; step++) { /* allgather of the reduced parts */
        size_t s0, sn, r0, rn;
        xo__coll_part(count, n, (r + 1 - step + n) % n, &s0, &sn);
        xo__coll_part(count, n, (r - step + n) % n, &r0, &rn);
        uint32_t tag = (uint32_t)(n - 1 + step);
        st = xo__coll_send(g, &sends, next, tag, w + s0 * es, sn * es);
        if (st == XO_OK) st = xo__coll_recv(g, prev, tag, w + r0 * es, rn * es);
    }
    /* The puts' replies are collected once, at the end: waiting for each step's would add a round trip per step
     * (the data was copied into the messages when they were sent, so the buffer is free to change meanwhile). */
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK && (st = stage_out(g, recv, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo__coll_sends_free(&sends);
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
        xo_status_t st = xo__coll_shm_broadcast(g, buf, count, dt, root, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, buf, bytes, &owned);
    if (!work) return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of broadcast", bytes);
    g->last_algorithm = "tree";
    xo_status_t st = v == 0 ? stage_in(g, buf, bytes, work) : XO_OK;
    if (st != XO_OK) st = staging_failed(g, st);
    int mask = 1;
    for (; st == XO_OK && mask < n; mask <<= 1) { /* receive once, from the member mask below */
        if (v & mask) {
            st = xo__coll_recv(g, (g->rank - mask + n) % n, 0, work, bytes);
            break;
        }
    }
    xo_coll_sends_t sends = {0};
    for (mask >>= 1; st == XO_OK && mask > 0; mask >>= 1) /* then pass it down the tree */
        if (v + mask < n) st = xo__coll_send(g, &sends, (g->rank + mask) % n, 0, work, bytes);
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK && v != 0 && (st = stage_out(g, buf, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo__coll_sends_free(&sends);
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
        xo_status_t st = xo__coll_shm_allgather(g, send, recv, count, dt, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    void *owned, *work = work_buffer(g, recv, block * (size_t)n, &owned);
    unsigned char *w = work;
    if (!work) return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of allgather", block * (size_t)n);
    g->last_algorithm = "ring";
    xo_status_t st = stage_in(g, send, block, w + block * (size_t)r);
    if (st != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_t sends = {0};
    for (int step = 0; st == XO_OK && step < n - 1; step++) {
        int si = (r - step + n) % n, ri = (r - step - 1 + 2 * n) % n;
        st = xo__coll_send(g, &sends, next, (uint32_t)step, w + block * (size_t)si, block);
        if (st == XO_OK) st = xo__coll_recv(g, prev, (uint32_t)step, w + block * (size_t)ri, block);
    }
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK && (st = stage_out(g, recv, work, block * (size_t)n)) != XO_OK) st = staging_failed(g, st);
    xo__coll_sends_free(&sends);
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
    if (n == 1) return local_copy(g, recv, send, block);
    if (g->shm && block * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_reduce_scatter(g, send, recv, count, dt, op, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    /* The work buffer holds the whole send (host memory: a copy, as the ring reduces into it). */
    unsigned char *w = malloc(block * (size_t)n), *tmp = malloc(block), *out = g->dev ? malloc(block) : recv;
    if (!w || !tmp || !out) {
        free(w), free(tmp);
        if (g->dev) free(out);
        return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of reduce_scatter", block * (size_t)n);
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
            st = xo__coll_send(g, &sends, next, (uint32_t)step, w + block * (size_t)si, block);
            if (st == XO_OK) st = xo__coll_recv(g, prev, (uint32_t)step, tmp, block);
            if (st == XO_OK) xo__coll_combine(w + block * (size_t)ri, tmp, count, dt, op);
        }
        if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
        xo__coll_sends_free(&sends);
        if (st == XO_OK) memcpy(out, w + block * (size_t)r, block);
    }
    if (st == XO_OK && g->dev && (st = xo_device_memcpy(g->dev, recv, out, block, XO_MEMCPY_HOST_TO_DEVICE, NULL)) != XO_OK)
        st = staging_failed(g, st);
    free(w), free(tmp);
    if (g->dev) free(out);
    return st;
}

/* ---- reduce ---- */

/* Binomial tree toward root over w (count elements, reduced in place), tag 0: a member receives from the members
 * mask above it (relative to root) until the first mask bit of its own, then sends what it has down to the member
 * mask below. Root ends with the reduction. tmp holds one buffer. */
static xo_status_t tree_reduce(xo_coll_t *g, xo_coll_sends_t *sends, unsigned char *w, void *tmp, size_t count,
                               xo_dtype_t dt, xo_reduce_op_t op, int root)
{
    size_t bytes = count * xo_dtype_size(dt);
    int n = g->size, v = (g->rank - root + n) % n;
    xo_status_t st = XO_OK;
    for (int mask = 1; st == XO_OK && mask < n; mask <<= 1) {
        if (v & mask) return xo__coll_send(g, sends, (g->rank - mask + n) % n, 0, w, bytes);
        if (v + mask < n) {
            st = xo__coll_recv(g, (g->rank + mask) % n, 0, tmp, bytes);
            if (st == XO_OK) xo__coll_combine(w, tmp, count, dt, op);
        }
    }
    return st;
}

static xo_status_t host_reduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                               xo_reduce_op_t op, int root)
{
    size_t es = xo_dtype_size(dt), bytes = count * es;
    int n = g->size;
    bool is_root = g->rank == root, tree = bytes <= XO_COLL_TREE_MAX;
    g->last_algorithm = tree ? "tree" : "ring";
    if (n == 1) return local_copy(g, recv, send, bytes);
    if (g->shm && bytes * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_reduce(g, send, recv, count, dt, op, root, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    /* Off root the work buffer is scratch (recv may be NULL there); both algorithms reduce into it. */
    void *owned = NULL, *work = is_root ? work_buffer(g, recv, bytes, &owned) : (owned = malloc(bytes));
    size_t tmp_len = tree ? bytes : (count + (size_t)n - 1) / (size_t)n * es;
    void *tmp = malloc(tmp_len ? tmp_len : 1);
    if (!work || !tmp) {
        free(owned), free(tmp);
        return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of reduce", bytes);
    }
    unsigned char *w = work;
    xo_status_t st = stage_in(g, send, bytes, work);
    if (st != XO_OK) st = staging_failed(g, st);
    xo_coll_sends_t sends = {0};
    g->last_algorithm = tree ? "tree" : "ring"; /* again: the shm path may have given up */
    if (st == XO_OK && tree) {
        st = tree_reduce(g, &sends, w, tmp, count, dt, op, root);
    } else if (st == XO_OK) {
        st = ring_reduce_scatter(g, &sends, w, tmp, count, dt, op);
        /* Member i holds part (i + 1) % n: each sends it to root, which already holds its own. */
        size_t p0, pn;
        xo__coll_part(count, n, (g->rank + 1) % n, &p0, &pn);
        if (st == XO_OK && !is_root) st = xo__coll_send(g, &sends, root, (uint32_t)(n - 1), w + p0 * es, pn * es);
        for (int i = 0; st == XO_OK && is_root && i < n; i++) {
            if (i == root) continue;
            xo__coll_part(count, n, (i + 1) % n, &p0, &pn);
            st = xo__coll_recv(g, i, (uint32_t)(n - 1), w + p0 * es, pn * es);
        }
    }
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK && is_root && (st = stage_out(g, recv, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo__coll_sends_free(&sends);
    free(tmp);
    free(owned);
    return st;
}

/* ---- gather and scatter ---- */

static xo_status_t host_gather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    size_t block = count * xo_dtype_size(dt);
    int n = g->size;
    if (g->shm && n > 1 && block * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_gather(g, send, recv, count, dt, root, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    g->last_algorithm = "direct";
    xo_coll_sends_t sends = {0};
    xo_status_t st = XO_OK;
    if (g->rank != root) {
        void *owned;
        const void *src = send_buffer(g, send, block, &owned);
        st = src ? xo__coll_send(g, &sends, root, 0, src, block) : g->broken;
        if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
        xo__coll_sends_free(&sends);
        free(owned);
        return st;
    }
    void *owned, *work = work_buffer(g, recv, block * (size_t)n, &owned);
    unsigned char *w = work;
    if (!work) return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of gather", block * (size_t)n);
    st = stage_in(g, send, block, w + block * (size_t)root); /* nothing in place, send being that block */
    if (st != XO_OK) st = staging_failed(g, st);
    for (int i = 1; st == XO_OK && i < n; i++) {
        int from = (root + i) % n;
        st = xo__coll_recv(g, from, 0, w + block * (size_t)from, block);
    }
    if (st == XO_OK && (st = stage_out(g, recv, work, block * (size_t)n)) != XO_OK) st = staging_failed(g, st);
    free(owned);
    return st;
}

static xo_status_t host_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root)
{
    size_t block = count * xo_dtype_size(dt);
    int n = g->size;
    if (g->shm && n > 1 && block * (size_t)n > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_scatter(g, send, recv, count, dt, root, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    g->last_algorithm = "direct";
    xo_status_t st = XO_OK;
    if (g->rank == root) {
        /* Device memory is staged whole, so that the own block comes out of the same copy (in place included). */
        void *owned;
        const unsigned char *src = send_buffer(g, send, block * (size_t)n, &owned);
        if (!src) return g->broken;
        xo_coll_sends_t sends = {0};
        for (int i = 1; st == XO_OK && i < n; i++) {
            int to = (root + i) % n;
            st = xo__coll_send(g, &sends, to, 0, src + block * (size_t)to, block);
        }
        if (st == XO_OK && (st = stage_out(g, recv, src + block * (size_t)root, block)) != XO_OK)
            st = staging_failed(g, st);
        if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
        xo__coll_sends_free(&sends);
        free(owned);
        return st;
    }
    void *owned, *work = work_buffer(g, recv, block, &owned);
    if (!work) return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of scatter", block);
    st = xo__coll_recv(g, root, 0, work, block);
    if (st == XO_OK && (st = stage_out(g, recv, work, block)) != XO_OK) st = staging_failed(g, st);
    free(owned);
    return st;
}

/* ---- all-to-all ---- */

static xo_status_t host_alltoall(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt)
{
    size_t block = count * xo_dtype_size(dt), bytes = block * (size_t)g->size;
    if (g->shm && g->size > 1 && bytes > XO_COLL_DIRECT_MAX) {
        bool done = false;
        xo_status_t st = xo__coll_shm_alltoall(g, send, recv, count, dt, &done);
        g->last_algorithm = "shm";
        if (st != XO_OK || done) return st;
    }
    g->last_algorithm = "pairwise";
    void *owned_src, *owned_dst;
    const void *src = send_buffer(g, send, bytes, &owned_src);
    if (!src) return g->broken;
    void *work = work_buffer(g, recv, bytes, &owned_dst);
    if (!work) {
        free(owned_src);
        return xo__coll_fail(g, XO_ENOMEM, "out of memory for %zu bytes of alltoall", bytes);
    }
    xo_coll_sends_t sends = {0};
    xo_status_t st = xo__coll_all_to_all(g, &sends, 0, src, block, block, work);
    if (st == XO_OK) st = xo__coll_sends_wait(g, &sends);
    if (st == XO_OK && (st = stage_out(g, recv, work, bytes)) != XO_OK) st = staging_failed(g, st);
    xo__coll_sends_free(&sends);
    free(owned_src);
    free(owned_dst);
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
    .reduce = host_reduce,
    .gather = host_gather,
    .scatter = host_scatter,
    .alltoall = host_alltoall,
};
