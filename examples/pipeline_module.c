/* An actor module for the device pipeline example: three stages on three pools, each owning a device; the buffer
 * is allocated once, by the producer, and lent to the next stages (no copy between processes).
 *
 *   Producer  run(n, a, main address): fills n floats x[i] = i on its device, lends the buffer to "transform" (y = a*x + 1, in
 *             place) then to "reduce" (sum), returns [sum, the pools the stages ran in]
 *   Transform saxpy(buffer, a): x = a*x + 1 on the lent buffer
 *   Reduce    sum(buffer): the sum of the lent floats
 *
 * The stages do their arithmetic through the device API (copies and host functions on a stream), which the host
 * backend runs; a CUDA build would launch the kernels of examples/kernels instead (not wired here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xoscar/device_buf.h"
#include "xoscar/module.h"

typedef struct {
    float *v;
    size_t n;
    float a;
    double sum;
} work_t;

static void saxpy_host(void *arg)
{
    work_t *w = arg;
    for (size_t i = 0; i < w->n; i++) w->v[i] = w->a * w->v[i] + 1.0f;
}

static void sum_host(void *arg)
{
    work_t *w = arg;
    double s = 0;
    for (size_t i = 0; i < w->n; i++) s += w->v[i];
    w->sum = s;
}

/* Runs fn over the lent buffer on a stream of the pool's device, and waits for it. */
static xo_status_t on_stream(xo_ctx_t *ctx, void (*fn)(void *), work_t *w)
{
    xo_device_t *dev = xo_ctx_device(ctx);
    xo_device_stream_t *s = NULL;
    xo_status_t st = xo_device_stream_create(dev, &s);
    if (st == XO_OK) st = xo_device_launch_host(s, fn, w);
    if (st == XO_OK) st = xo_device_stream_synchronize(s);
    if (s) xo_device_stream_destroy(s);
    return st;
}

static xo_status_t borrow(xo_ctx_t *ctx, const msgpack_object *desc, work_t *w)
{
    void *p;
    size_t size;
    bool imported;
    xo_status_t st = xo_unpack_device_buf(xo_ctx_device(ctx), desc, &p, &size, &imported);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error());
    w->v = p;
    w->n = size / sizeof(float);
    return XO_OK;
}

static xo_status_t transform_saxpy(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *desc;
    double a;
    xo_status_t st = xo_unpack(args, "od", &desc, &a);
    work_t w = {0};
    if (st == XO_OK) st = borrow(ctx, desc, &w);
    w.a = (float)a;
    if (st == XO_OK) st = on_stream(ctx, saxpy_host, &w);
    return st == XO_OK ? xo_pack(out, "s", xo_ctx_address(ctx)) : st;
}

static xo_status_t reduce_sum(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *desc;
    xo_status_t st = xo_unpack(args, "o", &desc);
    work_t w = {0};
    if (st == XO_OK) st = borrow(ctx, desc, &w);
    if (st == XO_OK) st = on_stream(ctx, sum_host, &w);
    return st == XO_OK ? xo_pack(out, "[ds]", w.sum, xo_ctx_address(ctx)) : st;
}

static xo_status_t call_stage(const char *main_address, const char *uid, const char *method, xo_args_t *args,
                              xo_result_t **r)
{
    xo_ref_t *ref;
    xo_status_t st = xo_actor_ref(main_address, uid, &ref); /* found through the host's main pool */
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    st = xo_call(ref, method, args, 10000, r);
    xo_ref_free(ref);
    return st;
}

static xo_status_t producer_run(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    double a;
    xo_str_t main_s;
    xo_status_t st = xo_unpack(args, "lds", &n, &a, &main_s);
    if (st != XO_OK) return st;
    char main_address[256];
    snprintf(main_address, sizeof main_address, "%.*s", (int)main_s.len, main_s.ptr);
    xo_device_t *dev = xo_ctx_device(ctx);
    float *host = malloc((size_t)n * sizeof *host);
    void *buf = NULL;
    if (!host) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) host[i] = (float)i;
    st = xo_device_alloc(dev, (size_t)n * sizeof(float), &buf);
    if (st == XO_OK) st = xo_device_memcpy(dev, buf, host, (size_t)n * sizeof(float), XO_MEMCPY_HOST_TO_DEVICE, NULL);
    free(host);
    xo_result_t *r1 = NULL, *r2 = NULL;
    if (st == XO_OK) { /* lend the buffer to the transform stage; it stays ours, untouched, until the reply */
        xo_args_t *call = xo_args_new(2);
        st = xo_pack_device_buf(xo_args_packer(call), dev, buf, (size_t)n * sizeof(float));
        xo_pack(xo_args_packer(call), "d", a);
        st = st == XO_OK ? call_stage(main_address, "transform", "saxpy", call, &r1) : (xo_args_free(call), st);
    }
    if (st == XO_OK) { /* then to the reduce stage */
        xo_args_t *call = xo_args_new(1);
        st = xo_pack_device_buf(xo_args_packer(call), dev, buf, (size_t)n * sizeof(float));
        st = st == XO_OK ? call_stage(main_address, "reduce", "sum", call, &r2) : (xo_args_free(call), st);
    }
    double sum = 0;
    xo_str_t where_t = {"", 0}, where_r = {"", 0};
    if (st == XO_OK) {
        xo_result_unpack(r1, "s", &where_t);
        xo_result_unpack(r2, "[ds]", &sum, &where_r);
        st = xo_pack(out, "[dsSS]", sum, xo_ctx_address(ctx), where_t, where_r);
    }
    xo_result_free(r1);
    xo_result_free(r2);
    if (buf) xo_device_free(dev, buf);
    return st == XO_OK ? XO_OK : xo_ctx_error(ctx, st, "%s", xo_last_error());
}

static const xo_method_t producer_methods[] = {{.name = "run", .fn = producer_run}};
static const xo_method_t transform_methods[] = {{.name = "saxpy", .fn = transform_saxpy}};
static const xo_method_t reduce_methods[] = {{.name = "sum", .fn = reduce_sum}};
static const xo_actor_class_t producer_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Producer", .methods = producer_methods, .n_methods = 1};
static const xo_actor_class_t transform_class = {.abi_version = XO_CLASS_ABI_V1,
                                                 .flags = XO_ACTOR_STATELESS,
                                                 .name = "Transform",
                                                 .methods = transform_methods,
                                                 .n_methods = 1};
static const xo_actor_class_t reduce_class = {.abi_version = XO_CLASS_ABI_V1,
                                              .flags = XO_ACTOR_STATELESS,
                                              .name = "Reduce",
                                              .methods = reduce_methods,
                                              .n_methods = 1};

XO_MODULE_DEFINE("pipeline", &producer_class, &transform_class, &reduce_class);
