/* The device benchmarks' receiving actor (bench_device.c), as a module every pool of the bench host loads: the main
 * pool (in-process receiver) and the sub pool (the receiver in another process). It works on its pool's device
 * (xo_ctx_device), whatever its backend (host, cuda).
 *
 * BenchDevSink (stateful; creating it in a pool without a device fails with the reason):
 *   "copy"   (buf, verify) -> [unpack ns, copy ns, first byte, last byte]
 *                                            receives a lent device buffer (xo_unpack_device_buf: the pointer in
 *                                            the same process, an import or a staged copy across processes) and
 *                                            copies it device -> device into its own allocation (grown to the
 *                                            largest size seen, kept across calls), blocking until the copy is
 *                                            done; replies the two receiver-side times. The runtime releases the
 *                                            import or staged copy when the method returns. verify: also reads
                                            back the first and last byte of its copy (else -1, -1): the bench
                                            checks them on its untimed warm-up call.
 *   "copy_handle" (bin handle, u size, verify) -> as copy
 *                                            the same from a device IPC handle (xo_device_ipc_export's bytes)
 *                                            that it imports itself and keeps open across calls (a warm mapping):
 *                                            re-imported only when the handle changes, closed by "forget"
 *   "forget" ()     -> nil                   closes that import (before the owner frees the buffer)
 *   "copy_on" (buf) -> nil                   receives a lent buffer onto its own stream (xo_unpack_device_buf_on:
 *                                            a sender's ready event becomes a wait of that stream), copies it into
 *                                            its allocation on that stream and synchronizes the stream (devready) 
 *   "launch" ()     -> nil                   queues a small kernel (SAXPY of 256 floats, examples/kernels: the CUDA
 *                                            kernel on cuda, its C twin through xo_device_launch_host on host) on
 *                                            its own stream of the pool's device and synchronizes that stream
 *   "noop"   ()     -> nil                   nothing: the call's own cost, next to "launch"
 *   "pid"    ()     -> the process id        (the bench checks which process the actor lives in) */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "xoscar/device_buf.h"
#include "xoscar/module.h"

#define SAXPY_N 256

typedef struct sink {
    xo_device_t *dev;            /* the pool's, not ours to close */
    xo_device_stream_t *stream;
    void *dst;                   /* the copy target, cap bytes */
    size_t cap;
    float *x, *y;                /* the kernel's operands, SAXPY_N floats each */
    xo_k_saxpy_t kp;             /* read by the host kernel when the stream runs it: lives in the state */
    void *imp;                   /* copy_handle's open import (NULL: none) and the handle it came from */
    xo_device_ipc_handle_t imp_handle;
} sink_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sends the device layer's text with st (copied first: the ctx text and xo_last_error may share a buffer). */
static xo_status_t fail(xo_ctx_t *ctx, xo_status_t st, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "%s", xo_last_error());
    return xo_ctx_error(ctx, st, "%s: %s", what, text);
}

static xo_status_t sink_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    (void)args;
    sink_t *s = state;
    s->dev = xo_ctx_device(ctx);
    if (!s->dev) return xo_ctx_error(ctx, XO_EINVAL, "BenchDevSink: this pool owns no device");
    const char *why = xo_k_unsupported(s->dev);
    if (why) return xo_ctx_error(ctx, XO_ENOTSUP, "BenchDevSink: %s", why);
    xo_status_t st = xo_device_stream_create(s->dev, &s->stream);
    if (st != XO_OK) return fail(ctx, st, "creating a stream");
    void *x = NULL, *y = NULL;
    st = xo_device_alloc(s->dev, SAXPY_N * sizeof(float), &x);
    if (st == XO_OK) st = xo_device_alloc(s->dev, SAXPY_N * sizeof(float), &y);
    if (st == XO_OK) st = xo_device_memset(s->dev, x, 0, SAXPY_N * sizeof(float), NULL);
    if (st == XO_OK) st = xo_device_memset(s->dev, y, 0, SAXPY_N * sizeof(float), NULL);
    if (st != XO_OK) {
        st = fail(ctx, st, "allocating the kernel's operands");
        if (x) xo_device_free(s->dev, x);
        if (y) xo_device_free(s->dev, y);
        xo_device_stream_destroy(s->stream);
        s->stream = NULL;
        return st;
    }
    s->x = x, s->y = y;
    s->kp = (xo_k_saxpy_t){.n = SAXPY_N, .a = 2.0f, .x = s->x, .y = s->y};
    return XO_OK;
}

static void sink_fini(void *state)
{
    sink_t *s = state;
    if (!s->stream) return; /* init failed: it released what it took */
    xo_device_stream_destroy(s->stream); /* waits for queued work before the buffers go */
    if (s->imp) xo_device_ipc_close(s->dev, s->imp);
    xo_device_free(s->dev, s->x);
    xo_device_free(s->dev, s->y);
    if (s->dst) xo_device_free(s->dev, s->dst);
}

/* Grows the copy target to n bytes (outside the timed copies: the bench's warm-up call does it). */
static xo_status_t grow_target(xo_ctx_t *ctx, sink_t *s, size_t n)
{
    if (n <= s->cap) return XO_OK;
    if (s->dst) xo_device_free(s->dev, s->dst);
    s->dst = NULL, s->cap = 0;
    xo_status_t st = xo_device_alloc(s->dev, n, &s->dst);
    if (st != XO_OK) return fail(ctx, st, "allocating the copy target");
    s->cap = n;
    return XO_OK;
}

/* Copies n bytes at src (a pointer usable on the sink's device) into its own allocation and packs the reply of
 * copy and copy_handle. */
static xo_status_t copy_in(xo_ctx_t *ctx, sink_t *s, const void *src, size_t n, bool verify, uint64_t unpack_ns,
                           msgpack_packer *out)
{
    xo_status_t st = grow_target(ctx, s, n);
    if (st != XO_OK) return st;
    uint64_t t2 = now_ns();
    st = xo_device_memcpy(s->dev, s->dst, src, n, XO_MEMCPY_DEVICE_TO_DEVICE, NULL);
    uint64_t t3 = now_ns();
    if (st != XO_OK) return fail(ctx, st, "copying device to device");
    unsigned char b[2] = {0, 0};
    if (verify && n > 0) {
        st = xo_device_memcpy(s->dev, &b[0], s->dst, 1, XO_MEMCPY_DEVICE_TO_HOST, NULL);
        if (st == XO_OK) st = xo_device_memcpy(s->dev, &b[1], (char *)s->dst + n - 1, 1, XO_MEMCPY_DEVICE_TO_HOST, NULL);
        if (st != XO_OK) return fail(ctx, st, "reading the copy back");
    }
    return xo_pack(out, "[uull]", unpack_ns, t3 - t2, verify ? (int64_t)b[0] : -1, verify ? (int64_t)b[1] : -1);
}

static xo_status_t sink_copy(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    sink_t *s = state;
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 2 ||
        args->via.array.ptr[1].type != MSGPACK_OBJECT_BOOLEAN)
        return xo_ctx_error(ctx, XO_EBADARGS, "copy takes a device buffer and a bool");
    bool verify = args->via.array.ptr[1].via.boolean;
    uint64_t t0 = now_ns();
    void *src = NULL;
    size_t n = 0;
    xo_status_t st = xo_unpack_device_buf(s->dev, &args->via.array.ptr[0], &src, &n, NULL);
    uint64_t t1 = now_ns();
    if (st != XO_OK) return fail(ctx, st, "unpacking the buffer");
    return copy_in(ctx, s, src, n, verify, t1 - t0, out);
}

static xo_status_t sink_copy_handle(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    sink_t *s = state;
    xo_bytes_t h;
    uint64_t n;
    bool verify;
    xo_status_t st = xo_unpack(args, "but", &h, &n, &verify);
    if (st != XO_OK) return st;
    if (h.len != sizeof s->imp_handle.bytes) return xo_ctx_error(ctx, XO_EBADARGS, "copy_handle: not an IPC handle");
    uint64_t t0 = now_ns();
    if (!s->imp || memcmp(s->imp_handle.bytes, h.ptr, h.len) != 0) {
        if (s->imp) xo_device_ipc_close(s->dev, s->imp);
        s->imp = NULL;
        memcpy(s->imp_handle.bytes, h.ptr, h.len);
        st = xo_device_ipc_import(s->dev, &s->imp_handle, &s->imp);
        if (st != XO_OK) {
            s->imp = NULL;
            return fail(ctx, st, "importing the handle");
        }
    }
    uint64_t t1 = now_ns();
    return copy_in(ctx, s, s->imp, (size_t)n, verify, t1 - t0, out);
}

static xo_status_t sink_copy_on(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    sink_t *s = state;
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1)
        return xo_ctx_error(ctx, XO_EBADARGS, "copy_on takes a device buffer");
    void *src = NULL;
    size_t n = 0;
    xo_status_t st = xo_unpack_device_buf_on(s->dev, s->stream, &args->via.array.ptr[0], &src, &n, NULL);
    if (st != XO_OK) return fail(ctx, st, "unpacking the buffer onto a stream");
    if ((st = grow_target(ctx, s, n)) != XO_OK) return st;
    st = xo_device_memcpy(s->dev, s->dst, src, n, XO_MEMCPY_DEVICE_TO_DEVICE, s->stream);
    if (st == XO_OK) st = xo_device_stream_synchronize(s->stream); /* before the runtime releases the import */
    return st == XO_OK ? XO_OK : fail(ctx, st, "copying on the stream");
}

static xo_status_t sink_forget(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    sink_t *s = state;
    if (!s->imp) return XO_OK;
    xo_status_t st = xo_device_ipc_close(s->dev, s->imp);
    s->imp = NULL;
    return st == XO_OK ? XO_OK : fail(ctx, st, "closing the import");
}

static xo_status_t sink_launch(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)args, (void)out;
    sink_t *s = state;
    xo_status_t st = xo_k_saxpy(s->dev, s->stream, &s->kp);
    if (st != XO_OK) return fail(ctx, st, "launching saxpy");
    st = xo_device_stream_synchronize(s->stream);
    if (st != XO_OK) return fail(ctx, st, "synchronizing the stream");
    return XO_OK;
}

static xo_status_t sink_noop(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)state, (void)args, (void)out;
    return XO_OK;
}

static xo_status_t sink_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)state, (void)args;
    return xo_pack(out, "l", (int64_t)getpid());
}

static const xo_method_t sink_methods[] = {
    {.name = "copy", .fn = sink_copy},
    {.name = "copy_handle", .fn = sink_copy_handle},
    {.name = "forget", .fn = sink_forget},
    {.name = "copy_on", .fn = sink_copy_on},
    {.name = "launch", .fn = sink_launch},
    {.name = "noop", .fn = sink_noop},
    {.name = "pid", .fn = sink_pid},
};
static const xo_actor_class_t sink_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchDevSink",
    .state_size = sizeof(sink_t),
    .init = sink_init,
    .fini = sink_fini,
    .methods = sink_methods,
    .n_methods = sizeof sink_methods / sizeof sink_methods[0],
};

XO_MODULE_DEFINE("bench_device", &sink_class);
