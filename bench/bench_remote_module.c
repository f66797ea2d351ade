/* xo_bench_actors: the actor module the cross-process benchmarks load into every pool (the host's main pool, its
 * sub pools and the stand-alone xoscar-pool of the TCP case). Like any module it does not link the runtime: its xo_*
 * references bind to the runtime of the process that loads it (include/xoscar/module.h).
 *
 * BenchEcho (stateful):
 *   "len"  (bytes b)      -> the length of b: the payload travels one way, the reply is one small int
 *   "echo" (bytes b)      -> b itself: the payload travels both ways
 *   "sum"  (bytes b)      -> a fold of b's 8-byte words and its length (bench_bulk.c checks the bytes with it)
 *   "fill" (u n)          -> n bytes of a buffer kept filled (the payload travels back only: bench_bulk.c)
 *   "fill_lent" (u n)     -> the same bytes lent to the result ('B')
 *   "ping" ()             -> nil
 *   "add"  (| bytes b)    -> nil; counts the call (the target of tells); extensible: a batch (xo_batch) of n adds
 *                            counts n in one handler call
 *   "get"  ()             -> the count of "add"s so far
 *   "pid"  ()             -> the process id (to check which process the actor lives in) */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xoscar/module.h>
#include <xoscar/xoscar.h>

#include "bench_fold.h"

static xo_status_t echo_len(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    return xo_pack(out, "u", (uint64_t)b.len);
}

static xo_status_t echo_echo(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    return xo_pack(out, "b", b.ptr, b.len);
}

static xo_status_t echo_sum(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    return xo_pack(out, "u", bench_fold(b.ptr, b.len));
}

/* One buffer for every BenchEcho of the process, grown and filled (pages faulted in) once per size: what a
 * method answering with data it already holds pays. Stateful actors of one bench run one call at a time. */
static char *fill_buf;
static size_t fill_len;

/* lent: the bytes are lent to the result ('B'): a caller in another process gets them with one copy (into the
 * reply's segment), valid because fill_buf stays as it is until the reply has gone out. */
static xo_status_t fill_reply(xo_ctx_t *ctx, const msgpack_object *args, msgpack_packer *out, bool lent)
{
    uint64_t n;
    xo_status_t st = xo_unpack(args, "u", &n);
    if (st != XO_OK) return st;
    if (n > fill_len) {
        char *b = realloc(fill_buf, n);
        if (!b) return xo_ctx_error(ctx, XO_ENOMEM, "fill: no memory for %llu bytes", (unsigned long long)n);
        for (size_t i = 0; i < n; i++) b[i] = (char)(i * 131u);
        fill_buf = b;
        fill_len = n;
    }
    return xo_pack(out, lent ? "B" : "b", fill_buf, (size_t)n);
}

static xo_status_t echo_fill(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return fill_reply(ctx, args, out, false);
}

static xo_status_t echo_fill_lent(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return fill_reply(ctx, args, out, true);
}

static xo_status_t echo_ping(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return XO_OK;
}

static xo_status_t echo_add(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    ++*(int64_t *)state;
    return XO_OK;
}

static xo_status_t echo_add_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                                  xo_batch_out_t *out)
{
    *(int64_t *)state += (int64_t)n;
    return XO_OK; /* every call left untouched replies nil, as a single add does */
}

static xo_status_t echo_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", *(int64_t *)state);
}

static xo_status_t echo_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", (int64_t)getpid());
}

static const xo_method_t echo_methods[] = {
    {.name = "len", .fn = echo_len},  {.name = "echo", .fn = echo_echo}, {.name = "ping", .fn = echo_ping},
    {.name = "sum", .fn = echo_sum},  {.name = "fill", .fn = echo_fill},
    {.name = "fill_lent", .fn = echo_fill_lent},
    {.name = "add", .fn = echo_add, .batch = echo_add_batch, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "get", .fn = echo_get},
    {.name = "pid", .fn = echo_pid},
};

static const xo_actor_class_t bench_echo_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchEcho",
    .state_size = sizeof(int64_t),
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

XO_MODULE_DEFINE("xo_bench_actors", &bench_echo_class);
