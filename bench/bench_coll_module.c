/* The collectives bench's member actor (bench_coll.c), as a module every pool of the bench host loads.
 *
 *   BenchCollMember.allreduce(name, rank, size, rendezvous, count, iters) -> [p50 us, p99 us]
 *     Joins the group, allreduces count float32 sums on a buffer of its pool's device (host memory without one)
 *     iters times after 3 warm-up rounds, each timed on its own, and returns its own percentiles.
 *   BenchCollMember.op(name, rank, size, rendezvous, op, count, iters) -> [p50 us, p99 us]
 *     The same for op "allreduce" (in place), "reduce", "gather", "scatter" (root 0; each followed by a barrier,
 *     timed with it), "alltoall" or "barrier": count is the float32 elements of each member's block (the buffers are
 *     size blocks where the operation needs them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xoscar/collective.h"
#include "xoscar/device_buf.h"
#include "xoscar/module.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One operation of the group on buf (size blocks of count floats where the operation needs them; recv after).
 * The rooted operations end with a barrier: over messages, members that only send would otherwise run ahead of root
 * (their data buffered at root's mailbox), and root's time would not be the operation's. */
static xo_status_t run_op(xo_coll_t *g, xo_str_t op, float *buf, size_t count, int size)
{
    float *recv = buf + count * (size_t)size;
    xo_status_t st = XO_EBADARGS; /* not kept: timed() checks op first */
    if (xo_str_eq(op, "allreduce")) return xo_coll_allreduce(g, buf, buf, count, XO_DTYPE_FLOAT32, XO_REDUCE_SUM);
    if (xo_str_eq(op, "alltoall")) return xo_coll_alltoall(g, buf, recv, count, XO_DTYPE_FLOAT32);
    if (xo_str_eq(op, "barrier")) return xo_coll_barrier(g);
    if (xo_str_eq(op, "reduce")) st = xo_coll_reduce(g, buf, recv, count, XO_DTYPE_FLOAT32, XO_REDUCE_SUM, 0);
    if (xo_str_eq(op, "gather")) st = xo_coll_gather(g, buf, recv, count, XO_DTYPE_FLOAT32, 0);
    if (xo_str_eq(op, "scatter")) st = xo_coll_scatter(g, buf, recv, count, XO_DTYPE_FLOAT32, 0);
    return st == XO_OK ? xo_coll_barrier(g) : st;
}

static xo_status_t timed(xo_ctx_t *ctx, xo_str_t name, int rank, int size, xo_str_t rdv, xo_str_t op, int64_t count,
                         int iters, msgpack_packer *out)
{
    xo_status_t st = XO_OK;
    if (count < 1 || iters < 1 || size < 1) return xo_ctx_error(ctx, XO_EBADARGS, "count and iters must be >= 1");
    if (!xo_str_eq(op, "allreduce") && !xo_str_eq(op, "reduce") && !xo_str_eq(op, "gather") &&
        !xo_str_eq(op, "scatter") && !xo_str_eq(op, "alltoall") && !xo_str_eq(op, "barrier"))
        return xo_ctx_error(ctx, XO_EBADARGS, "unknown op %.*s", (int)op.len, op.ptr);
    char name_c[128], rdv_c[256];
    snprintf(name_c, sizeof name_c, "%.*s", (int)name.len, name.ptr);
    snprintf(rdv_c, sizeof rdv_c, "%.*s", (int)rdv.len, rdv.ptr);
    xo_coll_config_t cfg = {.name = name_c, .rank = rank, .size = size, .rendezvous = rdv_c};
    xo_device_t *dev = xo_ctx_device(ctx);
    /* allreduce: one buffer of count; the others: size blocks to send from and as many to receive into */
    size_t elems = xo_str_eq(op, "allreduce") ? (size_t)count : 2 * (size_t)count * (size_t)size;
    size_t bytes = elems * sizeof(float);
    float *host = calloc(elems, sizeof *host);
    uint64_t *t = calloc((size_t)iters, sizeof *t);
    void *buf = NULL;
    xo_coll_t *g = NULL;
    if (!host || !t) st = XO_ENOMEM;
    for (size_t i = 0; st == XO_OK && i < elems; i++) host[i] = (float)(rank + 1);
    if (st == XO_OK) st = dev ? xo_device_alloc(dev, bytes, &buf) : ((buf = malloc(bytes)) ? XO_OK : XO_ENOMEM);
    if (st == XO_OK)
        st = dev ? xo_device_memcpy(dev, buf, host, bytes, XO_MEMCPY_HOST_TO_DEVICE, NULL) : (memcpy(buf, host, bytes), XO_OK);
    if (st == XO_OK) st = xo_coll_init(&cfg, &g);
    for (int i = -3; st == XO_OK && i < iters; i++) {
        uint64_t t0 = now_ns();
        st = run_op(g, op, buf, (size_t)count, size);
        if (i >= 0) t[i] = now_ns() - t0;
    }
    if (st == XO_OK) {
        qsort(t, (size_t)iters, sizeof *t, cmp_u64);
        st = xo_pack(out, "[dd]", (double)t[iters / 2] / 1e3, (double)t[(size_t)(iters * 0.99)] / 1e3);
    } else {
        char text[512];
        snprintf(text, sizeof text, "%s", xo_last_error());
        st = xo_ctx_error(ctx, st, "%s", text);
    }
    xo_coll_destroy(g);
    if (buf) dev ? (void)xo_device_free(dev, buf) : free(buf);
    free(host);
    free(t);
    return st;
}

static xo_status_t m_allreduce(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    xo_str_t name, rdv;
    int rank, size, iters;
    int64_t count;
    xo_status_t st = xo_unpack(args, "siisli", &name, &rank, &size, &rdv, &count, &iters);
    if (st != XO_OK) return st;
    return timed(ctx, name, rank, size, rdv, (xo_str_t){"allreduce", 9}, count, iters, out);
}

static xo_status_t m_op(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    xo_str_t name, rdv, op;
    int rank, size, iters;
    int64_t count;
    xo_status_t st = xo_unpack(args, "siissli", &name, &rank, &size, &rdv, &op, &count, &iters);
    if (st != XO_OK) return st;
    return timed(ctx, name, rank, size, rdv, op, count, iters, out);
}

static const xo_method_t member_methods[] = {{.name = "allreduce", .fn = m_allreduce}, {.name = "op", .fn = m_op}};
static const xo_actor_class_t member_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "BenchCollMember", .methods = member_methods, .n_methods = 2};

XO_MODULE_DEFINE("bench_coll", &member_class);
