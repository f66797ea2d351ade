/* An actor module for the device pipeline example: three stages on three pools, each owning a device; the buffer
 * is allocated once, by the producer, and lent to the next stages (no copy between processes of a host).
 *
 *   Producer  run(n, a, main address[, transform uid = "transform", reduce uid = "reduce"])
 *               -> [sum, where, device, where, device, where, device]
 *             fills x[i] = i % 1000 and y[i] = 1 (2n floats, one allocation) on its pool's device, lends x and y to
 *             the transform actor (y = a*x + y, in place) while its upload is still queued on its stream (with a
 *             ready event: the transform's stream waits for it on the device), and then y to the reduce actor
 *             (sum), both found by uid
 *             through the host's main pool; returns the sum and, for each stage, its pool's address and
 *             "backend:index (what ran the kernel)"
 *   Transform saxpy(a, x, y) -> [where, device]        SAXPY on the lent buffers
 *   Reduce    sum(y) -> [sum, where, device]           the sum of the lent floats
 *
 * Every stage uses its pool's own device (xo_ctx_device) and runs the kernels of examples/kernels that match the
 * device's backend: the CUDA kernels (nvcc, kernels.cu) on a "cuda" device, their C twins on the "host" device
 * (kernels.h, xo_k_saxpy / xo_k_sum). Waits suspend the method, not the pool's thread (xo_k_wait). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "xoscar/device_buf.h"
#include "xoscar/module.h"

/* "cuda:0 (CUDA kernel)" or "host:0 (host C kernel)": where a stage's kernel ran. */
static void device_label(const xo_device_t *dev, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%d (%s)", xo_device_backend_name(xo_device_backend(dev)), xo_device_index(dev),
             xo_k_is_cuda(dev) ? "CUDA kernel" : "host C kernel");
}

/* The pool's device, with an error text when the pool owns none or this module has no kernels for it. */
static xo_status_t stage_device(xo_ctx_t *ctx, xo_device_t **dev_p)
{
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev)
        return xo_ctx_error(ctx, XO_EINVAL, "pool %s owns no device (give it one: a cluster file's device key)",
                            xo_ctx_address(ctx));
    const char *why = xo_k_unsupported(dev);
    if (why) return xo_ctx_error(ctx, XO_ENOTSUP, "pool %s: %s", xo_ctx_address(ctx), why);
    *dev_p = dev;
    return XO_OK;
}

/* A lent buffer of floats, usable on dev until the method returns. With a stream, work queued on it afterwards is
 * ordered after the sender's ready event, if the sender lent the buffer with one; without, this waits for it. */
static xo_status_t borrow(xo_ctx_t *ctx, xo_device_t *dev, xo_device_stream_t *s, const msgpack_object *desc,
                          float **p, size_t *n)
{
    void *ptr;
    size_t size;
    xo_status_t st = xo_unpack_device_buf_on(dev, s, desc, &ptr, &size, NULL);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error());
    *p = ptr;
    *n = size / sizeof(float);
    return XO_OK;
}

static xo_status_t fail(xo_ctx_t *ctx, xo_status_t st, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "%s", xo_last_error());
    return xo_ctx_error(ctx, st, "%s on %s: %s", what, xo_ctx_address(ctx), text);
}

static xo_status_t transform_saxpy(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *dx, *dy;
    double a;
    xo_device_t *dev = NULL;
    xo_status_t st = xo_unpack(args, "doo", &a, &dx, &dy);
    if (st == XO_OK) st = stage_device(ctx, &dev);
    if (st != XO_OK) return st;
    float *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    xo_device_stream_t *s;
    if ((st = xo_device_stream_create(dev, &s)) != XO_OK) return fail(ctx, st, "saxpy");
    if ((st = borrow(ctx, dev, s, dx, &x, &nx)) != XO_OK || (st = borrow(ctx, dev, s, dy, &y, &ny)) != XO_OK ||
        (nx != ny && (st = xo_ctx_error(ctx, XO_EBADARGS, "saxpy: x has %zu floats, y %zu", nx, ny)) != XO_OK)) {
        xo_device_stream_destroy(s); /* waits for a queued wait on the sender's event: it completes */
        return st;
    }
    xo_k_saxpy_t k = {.n = nx, .a = (float)a, .x = x, .y = y};
    st = xo_k_saxpy(dev, s, &k);
    xo_status_t wst = xo_k_wait(dev, s); /* also after a failed launch: nothing may use k or y once we return */
    xo_device_stream_destroy(s);
    if (st == XO_OK) st = wst;
    if (st != XO_OK) return fail(ctx, st, "saxpy");
    char label[64];
    device_label(dev, label, sizeof label);
    return xo_pack(out, "[ss]", xo_ctx_address(ctx), label);
}

static xo_status_t reduce_sum(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *dy;
    xo_device_t *dev = NULL;
    xo_status_t st = xo_unpack(args, "o", &dy);
    if (st == XO_OK) st = stage_device(ctx, &dev);
    if (st != XO_OK) return st;
    float *y = NULL;
    size_t n = 0;
    if ((st = borrow(ctx, dev, NULL, dy, &y, &n)) != XO_OK) return st;
    /* The result and the CUDA reduction's partial sums live on this pool's device. */
    void *scratch = NULL;
    xo_device_stream_t *s = NULL;
    float sum = 0;
    xo_k_sum_t k;
    st = xo_device_alloc(dev, (1 + XO_K_SUM_SCRATCH) * sizeof(float), &scratch);
    if (st == XO_OK) st = xo_device_stream_create(dev, &s);
    if (st == XO_OK) {
        k = (xo_k_sum_t){.n = n, .x = y, .out = scratch};
        st = xo_k_sum(dev, s, &k, (float *)scratch + 1);
        if (st == XO_OK) st = xo_device_memcpy(dev, &sum, scratch, sizeof sum, XO_MEMCPY_DEVICE_TO_HOST, s);
        xo_status_t wst = xo_k_wait(dev, s);
        if (st == XO_OK) st = wst;
    }
    if (s) xo_device_stream_destroy(s);
    if (scratch) xo_device_free(dev, scratch);
    if (st != XO_OK) return fail(ctx, st, "sum");
    char label[64];
    device_label(dev, label, sizeof label);
    return xo_pack(out, "[dss]", (double)sum, xo_ctx_address(ctx), label);
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
    st = xo_call(ref, method, args, 30000, r);
    xo_ref_free(ref);
    return st;
}

static xo_status_t producer_run(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    double a;
    xo_str_t main_s, t_uid = {"transform", 9}, r_uid = {"reduce", 6};
    xo_device_t *dev = NULL;
    xo_status_t st = xo_unpack(args, "lds|ss", &n, &a, &main_s, &t_uid, &r_uid);
    if (st == XO_OK) st = stage_device(ctx, &dev);
    if (st != XO_OK) return st;
    if (n <= 0 || n > (int64_t)1 << 30) return xo_ctx_error(ctx, XO_EBADARGS, "run: n = %lld out of range", (long long)n);
    char main_address[256], transform_uid[128], reduce_uid[128];
    snprintf(main_address, sizeof main_address, "%.*s", (int)main_s.len, main_s.ptr);
    snprintf(transform_uid, sizeof transform_uid, "%.*s", (int)t_uid.len, t_uid.ptr);
    snprintf(reduce_uid, sizeof reduce_uid, "%.*s", (int)r_uid.len, r_uid.ptr);
    size_t bytes = (size_t)n * sizeof(float);
    float *host = malloc(2 * bytes);
    if (!host) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        host[i] = (float)(i % 1000);
        host[n + i] = 1.0f;
    }
    /* The upload is queued on a stream and the buffer lent at once, with an event recorded after the upload: the
     * transform stage's stream waits for that event on the device, so nobody here waits for the copy (the pool's
     * thread and this method go straight on to the call). */
    void *buf = NULL;
    xo_device_stream_t *s = NULL;
    xo_device_event_t *uploaded = NULL;
    st = xo_device_alloc(dev, 2 * bytes, &buf);
    if (st == XO_OK) st = xo_device_stream_create(dev, &s);
    if (st == XO_OK) st = xo_device_event_create_ipc(dev, &uploaded);
    if (st == XO_OK) st = xo_device_memcpy(dev, buf, host, 2 * bytes, XO_MEMCPY_HOST_TO_DEVICE, s);
    if (st == XO_OK) st = xo_device_event_record(uploaded, s);
    float *x = buf, *y = x + n;
    xo_result_t *r1 = NULL, *r2 = NULL;
    if (st == XO_OK) { /* lend x and y (two parts of one allocation) to the transform stage; ours again at the reply */
        xo_args_t *call = xo_args_new(3);
        xo_pack(xo_args_packer(call), "d", a);
        st = xo_pack_device_buf_ready(xo_args_packer(call), dev, x, bytes, uploaded);
        if (st == XO_OK) st = xo_pack_device_buf_ready(xo_args_packer(call), dev, y, bytes, uploaded);
        st = st == XO_OK ? call_stage(main_address, transform_uid, "saxpy", call, &r1) : (xo_args_free(call), st);
    }
    if (s) xo_device_stream_destroy(s); /* the upload is done (the transform waited for it); host can go */
    xo_device_event_destroy(uploaded);
    free(host);
    if (st == XO_OK) { /* then y to the reduce stage */
        xo_args_t *call = xo_args_new(1);
        st = xo_pack_device_buf(xo_args_packer(call), dev, y, bytes);
        st = st == XO_OK ? call_stage(main_address, reduce_uid, "sum", call, &r2) : (xo_args_free(call), st);
    }
    double sum = 0;
    xo_str_t where_t, dev_t, where_r, dev_r;
    if (st == XO_OK) st = xo_result_unpack(r1, "[ss]", &where_t, &dev_t);
    if (st == XO_OK) st = xo_result_unpack(r2, "[dss]", &sum, &where_r, &dev_r);
    if (st == XO_OK) {
        char label[64];
        device_label(dev, label, sizeof label);
        st = xo_pack(out, "[dssSSSS]", sum, xo_ctx_address(ctx), label, where_t, dev_t, where_r, dev_r);
    }
    xo_result_free(r1);
    xo_result_free(r2);
    if (buf) xo_device_free(dev, buf); /* the stages have replied: nobody uses it any more */
    return st == XO_OK ? XO_OK : fail(ctx, st, "run");
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
