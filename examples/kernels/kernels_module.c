/* An actor module with device kernels: SAXPY, a sum reduction and a tiled matrix multiply, run on a device of the
 * pool's process through the device interface (include/xoscar/gpu.h).
 *
 *   Kernels (stateful)  create args: [backend = "host", device index = 0, capacity bytes = 0 (backend default)]
 *     device()                 -> [backend, index, mem_free, mem_total]
 *     saxpy(a, x, y)           -> a * x + y        x, y: bin of n floats (native byte order); a: number
 *     sum(x)                   -> the sum of x, as a double (computed in float on the device)
 *     matmul(m, k, n, a, b)    -> a b              a: bin of m*k floats, b: bin of k*n floats, row-major; -> m*n
 *
 * Each method copies its inputs to device memory on the actor's stream, queues the kernel (the C implementation as a
 * host function on the host backend; the CUDA kernel on the cuda backend), copies the result back and waits for the
 * stream. The wait blocks the scheduler thread for the kernel's duration; the runtime's device-buffer integration is
 * to replace it with a wait that suspends only the method.
 *
 * For now the actor opens the device named by its create arguments; once pools own a device, that is the default.
 * The module does not link the runtime (the loading process provides it); the CUDA part links the shared libcudart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "xoscar/gpu.h"
#include "xoscar/module.h"

typedef struct kstate {
    xo_device_t *dev;
    xo_device_stream_t *stream;
    bool cuda; /* which implementation: the CUDA kernels, or the host functions */
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
    xo_str_t backend = {"host", 4};
    int64_t index = 0;
    uint64_t capacity = 0;
    xo_status_t st = xo_unpack(args, "|slu", &backend, &index, &capacity);
    if (st != XO_OK) return st;
    char name[16];
    if (backend.len >= sizeof name) return xo_ctx_error(ctx, XO_EINVAL, "backend name too long");
    memcpy(name, backend.ptr, backend.len);
    name[backend.len] = '\0';

    const xo_device_ops_t *be = xo_device_backend_find(name);
    if (!be) return xo_ctx_error(ctx, XO_ENOTSUP, "no device backend \"%s\" in this runtime", name);
    s->cuda = strcmp(name, "cuda") == 0;
#ifndef XO_KERNELS_CUDA
    if (s->cuda) return xo_ctx_error(ctx, XO_ENOTSUP, "this kernels module was built without CUDA kernels");
#endif
    xo_device_config_t cfg = {.capacity = capacity};
    st = xo_device_open(be, (int)index, &cfg, &s->dev);
    if (st != XO_OK) return fail(ctx, st, "opening the device");
    st = xo_device_stream_create(s->dev, &s->stream);
    if (st != XO_OK) {
        xo_device_close(s->dev);
        s->dev = NULL;
        return fail(ctx, st, "creating a stream");
    }
    return XO_OK;
}

static void k_fini(void *state)
{
    kstate_t *s = state;
    if (s->stream) xo_device_stream_destroy(s->stream);
    if (s->dev) xo_device_close(s->dev);
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

/* Copies len bytes of result from device src, packs them as bin. The stream is synchronized here. */
static xo_status_t finish_bin(xo_ctx_t *ctx, kstate_t *s, const void *src, size_t len, msgpack_packer *out)
{
    void *host = malloc(len ? len : 1);
    if (!host) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for %zu result bytes", len);
    xo_status_t st = xo_device_memcpy(s->dev, host, src, len, XO_MEMCPY_DEVICE_TO_HOST, s->stream);
    if (st == XO_OK) st = xo_device_stream_synchronize(s->stream);
    if (st != XO_OK) {
        free(host);
        return fail(ctx, st, "copying the result");
    }
    msgpack_pack_bin(out, len);
    msgpack_pack_bin_body(out, host, len);
    free(host);
    return XO_OK;
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
    size_t n = x.len / sizeof(float);
    bufs_t b = {.dev = s->dev};
    xo_k_saxpy_t karg;
    if ((st = bufs_alloc(&b, 0, x.len)) != XO_OK || (st = bufs_alloc(&b, 1, y.len)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], x.ptr, x.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[1], y.ptr, y.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if (s->cuda) {
#ifdef XO_KERNELS_CUDA
        st = xo_k_saxpy_cuda(s->stream, n, (float)a, b.p[0], b.p[1]);
#endif
    } else {
        karg = (xo_k_saxpy_t){.n = n, .a = (float)a, .x = b.p[0], .y = b.p[1]};
        st = xo_device_launch_host(s->stream, xo_k_saxpy_host, &karg);
    }
    if (st != XO_OK) goto err;
    st = finish_bin(ctx, s, b.p[1], y.len, out); /* synchronizes: karg and the buffers are no longer used after */
    bufs_free(&b);
    return st;
err:
    /* Work may be queued that reads karg or the buffers: let it finish before they go. */
    xo_device_stream_synchronize(s->stream);
    st = fail(ctx, st, "saxpy");
    bufs_free(&b);
    return st;
}

static xo_status_t k_sum(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    xo_bytes_t x;
    xo_status_t st = xo_unpack(args, "b", &x);
    if (st != XO_OK) return st;
    if (x.len % sizeof(float)) return xo_ctx_error(ctx, XO_EBADARGS, "sum: %zu bytes is not whole floats", x.len);
    size_t n = x.len / sizeof(float);
    bufs_t b = {.dev = s->dev};
    xo_k_sum_t karg;
    float result = 0;
    if ((st = bufs_alloc(&b, 0, x.len)) != XO_OK || (st = bufs_alloc(&b, 1, sizeof(float))) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], x.ptr, x.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if (s->cuda) {
#ifdef XO_KERNELS_CUDA
        if ((st = bufs_alloc(&b, 2, XO_K_SUM_SCRATCH * sizeof(float))) != XO_OK) goto err;
        st = xo_k_sum_cuda(s->stream, n, b.p[0], b.p[2], b.p[1]);
#endif
    } else {
        karg = (xo_k_sum_t){.n = n, .x = b.p[0], .out = b.p[1]};
        st = xo_device_launch_host(s->stream, xo_k_sum_host, &karg);
    }
    if (st != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, &result, b.p[1], sizeof result, XO_MEMCPY_DEVICE_TO_HOST, s->stream)) != XO_OK)
        goto err;
    if ((st = xo_device_stream_synchronize(s->stream)) != XO_OK) goto err;
    bufs_free(&b);
    return xo_pack(out, "d", (double)result);
err:
    xo_device_stream_synchronize(s->stream);
    st = fail(ctx, st, "sum");
    bufs_free(&b);
    return st;
}

static xo_status_t k_matmul(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    kstate_t *s = state;
    int m, k, n;
    xo_bytes_t a, bm;
    xo_status_t st = xo_unpack(args, "iiibb", &m, &k, &n, &a, &bm);
    if (st != XO_OK) return st;
    /* 65535 tiles of 16 along y: the CUDA grid's limit; the same bound on both backends. */
    if (m <= 0 || k <= 0 || n <= 0 || m > 1 << 20 || k > 1 << 20 || n > 1 << 20)
        return xo_ctx_error(ctx, XO_EBADARGS, "matmul: sizes %d x %d x %d must be in [1, 1048576]", m, k, n);
    if (a.len != (size_t)m * k * sizeof(float) || bm.len != (size_t)k * n * sizeof(float))
        return xo_ctx_error(ctx, XO_EBADARGS, "matmul: a is %zu bytes (want %zu), b is %zu bytes (want %zu)", a.len,
                            (size_t)m * k * sizeof(float), bm.len, (size_t)k * n * sizeof(float));
    size_t clen = (size_t)m * n * sizeof(float);
    bufs_t b = {.dev = s->dev};
    xo_k_matmul_t karg;
    if ((st = bufs_alloc(&b, 0, a.len)) != XO_OK || (st = bufs_alloc(&b, 1, bm.len)) != XO_OK ||
        (st = bufs_alloc(&b, 2, clen)) != XO_OK)
        goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[0], a.ptr, a.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if ((st = xo_device_memcpy(s->dev, b.p[1], bm.ptr, bm.len, XO_MEMCPY_HOST_TO_DEVICE, s->stream)) != XO_OK) goto err;
    if (s->cuda) {
#ifdef XO_KERNELS_CUDA
        st = xo_k_matmul_cuda(s->stream, m, k, n, b.p[0], b.p[1], b.p[2]);
#endif
    } else {
        karg = (xo_k_matmul_t){.m = m, .k = k, .n = n, .a = b.p[0], .b = b.p[1], .c = b.p[2]};
        st = xo_device_launch_host(s->stream, xo_k_matmul_host, &karg);
    }
    if (st != XO_OK) goto err;
    st = finish_bin(ctx, s, b.p[2], clen, out);
    bufs_free(&b);
    return st;
err:
    xo_device_stream_synchronize(s->stream);
    st = fail(ctx, st, "matmul");
    bufs_free(&b);
    return st;
}

static const xo_method_t kernel_methods[] = {
    {.name = "device", .fn = k_device},
    {.name = "saxpy", .fn = k_saxpy},
    {.name = "sum", .fn = k_sum},
    {.name = "matmul", .fn = k_matmul},
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
