/* libxo_test_actors.so: an actor module for tests (module loading now, multi-process pools later).
 *
 *   Counter (stateful)  init([start]); add(n) -> total; get() -> total
 *   Echo (stateless)    echo(v) -> v; pid() -> getpid(); sleep_ms(ms) -> ms, after xo_sleep_ms(ms);
 *                       crash() -> kills its process with SIGKILL (death tests); in_runtime() -> true when the
 *                       module's view of the runtime is the caller's (xo_ctx_current() is the method's ctx)
 *   Sum (stateful)      add(n) -> running total, extensible: a batch of adds is one handler run;
 *                       batches() -> how many batch handler runs there were */
#include <signal.h>
#include <unistd.h>

#include "xoscar/module.h"

/* ---- Counter -------------------------------------------------------------------------------------------------- */

typedef struct {
    int64_t total;
} counter_t;

static xo_status_t counter_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    counter_t *c = state;
    return xo_unpack(args, "|l", &c->total);
}

static xo_status_t counter_add(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    counter_t *c = state;
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    c->total += n;
    return xo_pack(out, "l", c->total);
}

static xo_status_t counter_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", ((counter_t *)state)->total);
}

static const xo_method_t counter_methods[] = {
    {.name = "add", .fn = counter_add},
    {.name = "get", .fn = counter_get},
};

static const xo_actor_class_t counter_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Counter",
    .state_size = sizeof(counter_t),
    .init = counter_init,
    .methods = counter_methods,
    .n_methods = sizeof counter_methods / sizeof counter_methods[0],
};

/* ---- Echo ----------------------------------------------------------------------------------------------------- */

static xo_status_t echo_echo(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *v;
    xo_status_t st = xo_unpack(args, "o", &v);
    if (st != XO_OK) return st;
    return xo_pack(out, "o", v);
}

static xo_status_t echo_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", (int64_t)getpid());
}

static xo_status_t echo_sleep_ms(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t ms;
    xo_status_t st = xo_unpack(args, "l", &ms);
    if (st != XO_OK) return st;
    if (ms < 0) return xo_ctx_error(ctx, XO_EBADARGS, "sleep_ms: negative time %lld", (long long)ms);
    st = xo_sleep_ms(ms);
    if (st != XO_OK) return st;
    return xo_pack(out, "l", ms);
}

static xo_status_t echo_crash(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    /* SIGKILL rather than abort(): no core file, no sanitizer report, and nothing the runtime could catch; the
     * process just vanishes, as a pool killed by the OOM killer does. */
    raise(SIGKILL);
    return XO_OK;
}

static xo_status_t echo_in_runtime(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "t", xo_ctx_current() == ctx);
}

static const xo_method_t echo_methods[] = {
    {.name = "echo", .fn = echo_echo},
    {.name = "pid", .fn = echo_pid},
    {.name = "sleep_ms", .fn = echo_sleep_ms},
    {.name = "crash", .fn = echo_crash},
    {.name = "in_runtime", .fn = echo_in_runtime},
};

static const xo_actor_class_t echo_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "Echo",
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

/* ---- Sum ------------------------------------------------------------------------------------------------------ */

typedef struct {
    int64_t total;
    int64_t batches;
} sum_t;

static xo_status_t sum_add_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                                 xo_batch_out_t *out)
{
    sum_t *s = state;
    s->batches++;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (xo_unpack(args[i], "l", &v) != XO_OK) {
            xo_batch_error(out, i, XO_EBADARGS, "add: call %zu: %s", i, xo_last_error());
            continue;
        }
        s->total += v;
        xo_pack(xo_batch_result(out, i), "l", s->total);
    }
    return XO_OK;
}

static xo_status_t sum_batches(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", ((sum_t *)state)->batches);
}

static const xo_method_t sum_methods[] = {
    {.name = "add", .batch = sum_add_batch, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "batches", .fn = sum_batches},
};

static const xo_actor_class_t sum_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Sum",
    .state_size = sizeof(sum_t),
    .methods = sum_methods,
    .n_methods = sizeof sum_methods / sizeof sum_methods[0],
};

XO_MODULE_DEFINE("test_actors", &counter_class, &echo_class, &sum_class);
