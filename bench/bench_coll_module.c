/* The collectives bench's member actor (bench_coll.c), as a module every pool of the bench host loads.
 *
 *   BenchCollMember.allreduce(name, rank, size, rendezvous, count, iters) -> [p50 us, p99 us]
 *     Joins the group, allreduces count float32 sums on a buffer of its pool's device (host memory without one)
 *     iters times after 3 warm-up rounds, each timed on its own, and returns its own percentiles. */
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

static xo_status_t m_allreduce(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)state;
    xo_str_t name, rdv;
    int rank, size, iters;
    int64_t count;
    xo_status_t st = xo_unpack(args, "siisli", &name, &rank, &size, &rdv, &count, &iters);
    if (st != XO_OK) return st;
    if (count < 1 || iters < 1) return xo_ctx_error(ctx, XO_EBADARGS, "count and iters must be >= 1");
    char name_c[128], rdv_c[256];
    snprintf(name_c, sizeof name_c, "%.*s", (int)name.len, name.ptr);
    snprintf(rdv_c, sizeof rdv_c, "%.*s", (int)rdv.len, rdv.ptr);
    xo_coll_config_t cfg = {.name = name_c, .rank = rank, .size = size, .rendezvous = rdv_c};
    xo_device_t *dev = xo_ctx_device(ctx);
    size_t bytes = (size_t)count * sizeof(float);
    float *host = calloc((size_t)count, sizeof *host);
    uint64_t *t = calloc((size_t)iters, sizeof *t);
    void *buf = NULL;
    xo_coll_t *g = NULL;
    if (!host || !t) st = XO_ENOMEM;
    for (int64_t i = 0; st == XO_OK && i < count; i++) host[i] = (float)(rank + 1);
    if (st == XO_OK) st = dev ? xo_device_alloc(dev, bytes, &buf) : ((buf = malloc(bytes)) ? XO_OK : XO_ENOMEM);
    if (st == XO_OK)
        st = dev ? xo_device_memcpy(dev, buf, host, bytes, XO_MEMCPY_HOST_TO_DEVICE, NULL) : (memcpy(buf, host, bytes), XO_OK);
    if (st == XO_OK) st = xo_coll_init(&cfg, &g);
    for (int i = -3; st == XO_OK && i < iters; i++) {
        uint64_t t0 = now_ns();
        st = xo_coll_allreduce(g, buf, buf, (size_t)count, XO_DTYPE_FLOAT32, XO_REDUCE_SUM);
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

static const xo_method_t member_methods[] = {{.name = "allreduce", .fn = m_allreduce}};
static const xo_actor_class_t member_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "BenchCollMember", .methods = member_methods, .n_methods = 1};

XO_MODULE_DEFINE("bench_coll", &member_class);
