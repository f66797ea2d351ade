/* An actor module with device kernels: SAXPY, a sum reduction and a tiled matrix multiply, on a device of the
 * pool's process through the device interface (include/xoscar/gpu.h), with the implementation of the device's
 * backend: the CUDA kernels of kernels.cu on "cuda", their C twins (kernels_host.c) on "host" (kernels_run.c).
 *
 *   Kernels (stateful)  create args: none -> the pool's own device (xo_ctx_device; an error when the pool owns
 *                       none); [backend, device index = 0, capacity bytes = 0] -> a device the actor opens itself
 *     device()                     -> [backend, index, mem_free, mem_total]
 *   on bin (copied to the device and back):      x, y, a, b: bin of floats (native byte order)
 *     saxpy(a, x, y)               -> a * x + y
 *     sum(x)                       -> the sum of x, as a double (computed in float on the device)
 *     matmul(m, k, n, a, b)        -> a b      a: m*k floats, b: k*n floats, row-major; -> m*n floats
 *   on device buffers (descriptors of xo_pack_device_buf: nothing is copied between pools of a host):
 *     upload(bin)                  -> buf      a buffer on the actor's device holding the bytes; the actor owns it
 *                                              until release(buf) or its destruction
 *     download(buf)                -> bin      the bytes of any buffer lent to it
 *     release(buf)                 -> nil      frees a buffer this actor returned (upload, matmul_buf)
 *     saxpy_buf(a, x, y)           -> nil      y = a * x + y, in place in the lent buffer y
 *     sum_buf(x)                   -> double
 *     matmul_buf(m, k, n, a, b)    -> buf      c = a b in a new buffer the actor owns (release it)
 *
 * Buffers follow the lend rule of include/xoscar/device_buf.h: a buffer passed in is the sender's and is used only
 * during the method; a buffer returned stays allocated by this actor until release. Each method queues its work
 * on the actor's stream and waits with xo_k_wait, which suspends the method rather than blocking the pool's
 * scheduler thread. The module does not link the runtime (the loading process provides it); the CUDA part links
 * the shared libcudart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "xoscar/device_buf.h"
#include "xoscar/module.h"

/* A buffer this actor returned and still owns. */
typedef struct owned {
    struct owned *next;
    void *ptr;
    size_t size;
} owned_t;

typedef struct kstate {
    xo_device_t *dev;
    bool own_dev; /* opened by the actor (closed in fini), not the pool's */
    xo_device_stream_t *stream;
    owned_t *owned;
} kstate_t;

/* Sends the device layer's error text with st (copied first: the ctx text and xo_last_error may share a buffer). */
static xo_status_t fail(xo_ctx_t *ctx, xo_status_t st, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "%s", xo_last_error());
    return xo_ctx_error(ctx, st, "%s: %s", what, text);
}

static xo_status_t k_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    kstate_t *s = state;
    xo_str_t backend = {NULL, 0};
    int64_t index = 0;
    uint64_t capacity = 0;
    xo_status_t st = xo_unpack(args, "|slu", &backend, &index, &capacity);
    if (st != XO_OK) return st;
    if (!backend.ptr) { /* the pool's device */
        s->dev = xo_ctx_device(ctx);
        if (!s->dev)
            return xo_ctx_error(ctx, XO_EINVAL, "this pool owns no device: create Kernels in a pool that owns one "
                                                "(a cluster file's device/gpu key), or pass [backend, index]");
    } else {
        char name[16];
        if (backend.len >= sizeof name) return xo_ctx_error(ctx, XO_EINVAL, "backend name too long");
        memcpy(name, backend.ptr, backend.len);
        name[backend.len] = '\0';
        const xo_device_ops_t *be = xo_device_backend_find(name);
        if (!be) return xo_ctx_error(ctx, XO_ENOTSUP, "no device backend \"%s\" in this runtime", name);
        xo_device_config_t cfg = {.capacity = capacity};
        st = xo_device_open(be, (int)index, &cfg, &s->dev);
        if (st != XO_OK) return fail(ctx, st, "opening the device");
        s->own_dev = true;
    }
    const char *why = xo_k_unsupported(s->dev);
    if (!why) st = xo_device_stream_create(s->dev, &s->stream);
    if (why || st != XO_OK) {
        if (s->own_dev) xo_device_close(s->dev);
        s->dev = NULL;
        return why ? xo_ctx_error(ctx, XO_ENOTSUP, "%s", why) : fail(ctx, st, "creating a stream");
    }
    return XO_OK;
}

static void k_fini(void *state)
{
    kstate_t *s = state;
    if (s->stream) xo_device_stream_destroy(s->stream); /* waits for queued work before the buffers go */
    while (s->owned) {
        owned_t *o = s->owned;
        s->owned = o->next;
        xo_device_free(s->dev, o->ptr);
        free(o);
    }
    if (s->own_dev) xo_device_close(s->dev);
}

static xo_status_t k_device(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    xo_device_mem_info_t mi;
    xo_status_t st = xo_device_mem_info(s->dev, &mi);
    if (st != XO_OK) return fail(ctx, st, "mem_info");
    return xo_pack(out, "[sluu]", xo_device_backend_name(xo_device_backend(s->dev)),
                   (int64_t)xo_device_index(s->dev), mi.free, mi.total);
}

/* Device buffers of one call, freed together. */
typedef struct bufs {
    xo_device_t *dev;
    void *p[4];
} bufs_t;

static xo_status_t bufs_alloc(bufs_t *b, int i, size_t n)
{
    return xo_device_alloc(b->dev, n ? n : 1, &b->p[i]);
}

static void bufs_free(bufs_t *b)
{
    for (int i = 0; i < 4; i++)
        if (b->p[i]) xo_device_free(b->dev, b->p[i]);
}

/* Copies len bytes from device src into a bin of out, waiting for the stream (and the work queued before). */
static xo_status_t pack_bin_from(xo_ctx_t *ctx, kstate_t *s, const void *src, size_t len, msgpack_packer *out)
{
    void *host = malloc(len ? len : 1);
    if (!host) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for %zu result bytes", len);
    xo_status_t st = xo_device_memcpy(s->dev, host, src, len, XO_MEMCPY_DEVICE_TO_HOST, s->stream);
    if (st == XO_OK) st = xo_k_wait(s->dev, s->stream);
    if (st != XO_OK) {
        free(host);
        return fail(ctx, st, "copying the result");
    }
    msgpack_pack_bin(out, len);
    msgpack_pack_bin_body(out, host, len);
    free(host);
    return XO_OK;
}

/* The error path of a method: work may be queued that reads the kernel's arguments or the buffers, so it is waited
 * for before they go. */
static xo_status_t fail_after_wait(xo_ctx_t *ctx, kstate_t *s, xo_status_t st, const char *what, bufs_t *b)
{
    char text[512];
    snprintf(text, sizeof text, "%s", st == XO_ENOTSUP ? xo_k_unsupported(s->dev) : xo_last_error());
    xo_k_wait(s->dev, s->stream);
    if (b) bufs_free(b);
    return xo_ctx_error(ctx, st, "%s: %s", what, text);
}

static xo_status_t k_saxpy(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    double a;
    xo_bytes_t x, y;
    xo_status_t st = xo_unpack(args, "dbb", &a, &x, &y);
    if (st != XO_OK) return st;
    if (x.len != y.len || x.len % sizeof(float))
        return xo_ctx_error(ctx, XO_EBADARGS, "saxpy: x (%zu bytes) and y (%zu bytes) must be as long, in whole floats",
                            x.len, y.len);
    bufs_t b = {.dev = s->dev};
    xo_k_saxpy_t karg;
    if ((st = bufs_alloc(&b, 0, x.len)) != XO_OK || (st = bufs_alloc(&b, 1, y.len)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], x.ptr, x.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[1], y.ptr, y.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    karg = (xo_k_saxpy_t){.n = x.len / sizeof(float), .a = (float)a, .x = b.p[0], .y = b.p[1]};
    if ((st = xo_k_saxpy(s->dev, s->stream, &karg)) != XO_OK) goto err;
    st = pack_bin_from(ctx, s, b.p[1], y.len, out); /* waits: karg and the buffers are no longer used after */
    bufs_free(&b);
    return st;
err:
    return fail_after_wait(ctx, s, st, "saxpy", &b);
}

static xo_status_t k_sum(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    xo_bytes_t x;
    xo_status_t st = xo_unpack(args, "b", &x);
    if (st != XO_OK) return st;
    if (x.len % sizeof(float)) return xo_ctx_error(ctx, XO_EBADARGS, "sum: %zu bytes is not whole floats", x.len);
    bufs_t b = {.dev = s->dev};
    xo_k_sum_t karg;
    float result = 0;
    if ((st = bufs_alloc(&b, 0, x.len)) != XO_OK || (st = bufs_alloc(&b, 1, sizeof(float))) != XO_OK ||
        (st = bufs_alloc(&b, 2, XO_K_SUM_SCRATCH * sizeof(float))) != XO_OK)
        goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], x.ptr, x.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    karg = (xo_k_sum_t){.n = x.len / sizeof(float), .x = b.p[0], .out = b.p[1]};
    if ((st = xo_k_sum(s->dev, s->stream, &karg, b.p[2])) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, &result, b.p[1], sizeof result, XO_MEMCPY_DEVICE_TO_HOST, s->stream)) != XO_OK)
        goto err;
    if ((st = xo_k_wait(s->dev, s->stream)) != XO_OK) goto err;
    bufs_free(&b);
    return xo_pack(out, "d", (double)result);
err:
    return fail_after_wait(ctx, s, st, "sum", &b);
}

/* Checks matmul's sizes: 65535 tiles of 16 along y is the CUDA grid's limit; the same bound on both backends. */
static xo_status_t matmul_sizes(xo_ctx_t *ctx, int m, int k, int n, size_t alen, size_t blen)
{
    if (m <= 0 || k <= 0 || n <= 0 || m > 1 << 20 || k > 1 << 20 || n > 1 << 20)
        return xo_ctx_error(ctx, XO_EBADARGS, "matmul: sizes %d x %d x %d must be in [1, 1048576]", m, k, n);
    if (alen != (size_t)m * k * sizeof(float) || blen != (size_t)k * n * sizeof(float))
        return xo_ctx_error(ctx, XO_EBADARGS, "matmul: a is %zu bytes (want %zu), b is %zu bytes (want %zu)", alen,
                            (size_t)m * k * sizeof(float), blen, (size_t)k * n * sizeof(float));
    return XO_OK;
}

static xo_status_t k_matmul(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    int m, k, n;
    xo_bytes_t a, bm;
    xo_status_t st = xo_unpack(args, "iiibb", &m, &k, &n, &a, &bm);
    if (st != XO_OK) return st;
    if ((st = matmul_sizes(ctx, m, k, n, a.len, bm.len)) != XO_OK) return st;
    size_t clen = (size_t)m * n * sizeof(float);
    bufs_t b = {.dev = s->dev};
    xo_k_matmul_t karg;
    if ((st = bufs_alloc(&b, 0, a.len)) != XO_OK || (st = bufs_alloc(&b, 1, bm.len)) != XO_OK ||
        (st = bufs_alloc(&b, 2, clen)) != XO_OK)
        goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], a.ptr, a.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[1], bm.ptr, bm.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    karg = (xo_k_matmul_t){.m = m, .k = k, .n = n, .a = b.p[0], .b = b.p[1], .c = b.p[2]};
    if ((st = xo_k_matmul(s->dev, s->stream, &karg)) != XO_OK) goto err;
    st = pack_bin_from(ctx, s, b.p[2], clen, out);
    bufs_free(&b);
    return st;
err:
    return fail_after_wait(ctx, s, st, "matmul", &b);
}

/* ---- device buffers ----------------------------------------------------------------------------------------- */

/* A lent buffer of the arguments, as floats on the actor's device (released by the runtime after the method). */
static xo_status_t borrow(xo_ctx_t *ctx, kstate_t *s, const msgpack_object *o, const char *what, void **p,
                          size_t *size)
{
    xo_status_t st = xo_unpack_device_buf(s->dev, o, p, size, NULL);
    if (st != XO_OK) return fail(ctx, st, what);
    if (*size % sizeof(float))
        return xo_ctx_error(ctx, XO_EBADARGS, "%s: %zu bytes is not whole floats", what, *size);
    return XO_OK;
}

/* Records ptr as owned and packs its descriptor into out; on failure frees it. Takes ownership of ptr. */
static xo_status_t keep_and_pack(xo_ctx_t *ctx, kstate_t *s, void *ptr, size_t size, msgpack_packer *out)
{
    owned_t *o = malloc(sizeof *o);
    if (!o) {
        xo_device_free(s->dev, ptr);
        return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    }
    *o = (owned_t){.next = s->owned, .ptr = ptr, .size = size};
    s->owned = o;
    xo_status_t st = xo_pack_device_buf(out, s->dev, ptr, size);
    return st == XO_OK ? XO_OK : fail(ctx, st, "packing the buffer");
}

static xo_status_t k_upload(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    xo_bytes_t x;
    xo_status_t st = xo_unpack(args, "b", &x);
    if (st != XO_OK) return st;
    void *p;
    if ((st = xo_device_alloc(s->dev, x.len ? x.len : 1, &p)) != XO_OK) return fail(ctx, st, "upload");
    if ((st = xo_device_memcpy(s->dev, p, x.ptr, x.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) == XO_OK)
        st = xo_k_wait(s->dev, s->stream); /* x is the message's memory: copied before the method returns */
    if (st != XO_OK) {
        st = fail(ctx, st, "upload");
        xo_device_free(s->dev, p);
        return st;
    }
    return keep_and_pack(ctx, s, p, x.len, out);
}

static xo_status_t k_download(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    const msgpack_object *d;
    void *p;
    size_t size;
    xo_status_t st = xo_unpack(args, "o", &d);
    if (st == XO_OK) st = xo_unpack_device_buf(s->dev, d, &p, &size, NULL);
    if (st != XO_OK) return fail(ctx, st, "download");
    return pack_bin_from(ctx, s, p, size, out);
}

static xo_status_t k_release(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    const msgpack_object *d;
    void *p;
    size_t size;
    xo_status_t st = xo_unpack(args, "o", &d);
    if (st == XO_OK) st = xo_unpack_device_buf(s->dev, d, &p, &size, NULL);
    if (st != XO_OK) return fail(ctx, st, "release");
    for (owned_t **o = &s->owned; *o; o = &(*o)->next) {
        if ((*o)->ptr != p) continue;
        owned_t *dead = *o;
        *o = dead->next;
        xo_k_wait(s->dev, s->stream); /* nothing of ours may still use it */
        st = xo_device_free(s->dev, dead->ptr);
        free(dead);
        return st == XO_OK ? xo_pack(out, "n") : fail(ctx, st, "release");
    }
    return xo_ctx_error(ctx, XO_EINVAL, "release: not a buffer this actor returned (or already released)");
}

static xo_status_t k_saxpy_buf(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    double a;
    const msgpack_object *dx, *dy;
    void *x, *y;
    size_t xs, ys;
    xo_status_t st = xo_unpack(args, "doo", &a, &dx, &dy);
    if (st != XO_OK) return st;
    if ((st = borrow(ctx, s, dx, "saxpy_buf: x", &x, &xs)) != XO_OK) return st;
    if ((st = borrow(ctx, s, dy, "saxpy_buf: y", &y, &ys)) != XO_OK) return st;
    if (xs != ys) return xo_ctx_error(ctx, XO_EBADARGS, "saxpy_buf: x has %zu bytes, y %zu", xs, ys);
    xo_k_saxpy_t karg = {.n = xs / sizeof(float), .a = (float)a, .x = x, .y = y};
    if ((st = xo_k_saxpy(s->dev, s->stream, &karg)) != XO_OK) return fail_after_wait(ctx, s, st, "saxpy_buf", NULL);
    if ((st = xo_k_wait(s->dev, s->stream)) != XO_OK) return fail(ctx, st, "saxpy_buf");
    return xo_pack(out, "n");
}

static xo_status_t k_sum_buf(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    const msgpack_object *dx;
    void *x;
    size_t xs;
    xo_status_t st = xo_unpack(args, "o", &dx);
    if (st != XO_OK) return st;
    if ((st = borrow(ctx, s, dx, "sum_buf: x", &x, &xs)) != XO_OK) return st;
    bufs_t b = {.dev = s->dev};
    float result = 0;
    xo_k_sum_t karg;
    if ((st = bufs_alloc(&b, 0, sizeof(float))) != XO_OK ||
        (st = bufs_alloc(&b, 1, XO_K_SUM_SCRATCH * sizeof(float))) != XO_OK)
        goto err;
    karg = (xo_k_sum_t){.n = xs / sizeof(float), .x = x, .out = b.p[0]};
    if ((st = xo_k_sum(s->dev, s->stream, &karg, b.p[1])) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, &result, b.p[0], sizeof result, XO_MEMCPY_DEVICE_TO_HOST, s->stream)) != XO_OK)
        goto err;
    if ((st = xo_k_wait(s->dev, s->stream)) != XO_OK) goto err;
    bufs_free(&b);
    return xo_pack(out, "d", (double)result);
err:
    return fail_after_wait(ctx, s, st, "sum_buf", &b);
}

static xo_status_t k_matmul_buf(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    int m, k, n;
    const msgpack_object *da, *db;
    void *a, *bm;
    size_t as, bs;
    xo_status_t st = xo_unpack(args, "iiioo", &m, &k, &n, &da, &db);
    if (st != XO_OK) return st;
    if ((st = borrow(ctx, s, da, "matmul_buf: a", &a, &as)) != XO_OK) return st;
    if ((st = borrow(ctx, s, db, "matmul_buf: b", &bm, &bs)) != XO_OK) return st;
    if ((st = matmul_sizes(ctx, m, k, n, as, bs)) != XO_OK) return st;
    size_t clen = (size_t)m * n * sizeof(float);
    bufs_t b = {.dev = s->dev};
    xo_k_matmul_t karg;
    if ((st = bufs_alloc(&b, 0, clen)) != XO_OK) goto err;
    karg = (xo_k_matmul_t){.m = m, .k = k, .n = n, .a = a, .b = bm, .c = b.p[0]};
    if ((st = xo_k_matmul(s->dev, s->stream, &karg)) != XO_OK) goto err;
    if ((st = xo_k_wait(s->dev, s->stream)) != XO_OK) goto err;
    return keep_and_pack(ctx, s, b.p[0], clen, out); /* c is the actor's now */
err:
    return fail_after_wait(ctx, s, st, "matmul_buf", &b);
}

static const xo_method_t kernel_methods[] = {
    {.name = "device", .fn = k_device},       {.name = "saxpy", .fn = k_saxpy},
    {.name = "sum", .fn = k_sum},             {.name = "matmul", .fn = k_matmul},
    {.name = "upload", .fn = k_upload},       {.name = "download", .fn = k_download},
    {.name = "release", .fn = k_release},     {.name = "saxpy_buf", .fn = k_saxpy_buf},
    {.name = "sum_buf", .fn = k_sum_buf},     {.name = "matmul_buf", .fn = k_matmul_buf},
};

static const xo_actor_class_t kernels_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Kernels",
    .state_size = sizeof(kstate_t),
    .init = k_init,
    .fini = k_fini,
    .methods = kernel_methods,
    .n_methods = sizeof kernel_methods / sizeof kernel_methods[0],
};

XO_MODULE_DEFINE("kernels", &kernels_class);
