/* A first tour of Xoscar-C in one process: a stateful counter, a stateless squarer called concurrently, an actor
 * that calls another from inside a method (A→B→A reentrancy), a batch, a delayed tell and a cancelled call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xoscar/xoscar.h>

#include "check.h"


/* ---- Counter: stateful ---- */
typedef struct {
    int64_t value;
} counter_t;

static xo_status_t counter_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    counter_t *c = state;
    return xo_unpack(args, "|l", &c->value); /* optional start value */
}

static xo_status_t counter_add(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    counter_t *c = state;
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    c->value += n;
    return xo_pack(out, "l", c->value);
}

static xo_status_t counter_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", ((counter_t *)state)->value);
}

/* The batch handler receives every call of a batch at once. */
static xo_status_t counter_add_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                                     xo_batch_out_t *out)
{
    counter_t *c = state;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (xo_unpack(args[i], "l", &v) != XO_OK) {
            xo_batch_error(out, i, XO_EBADARGS, "%s", xo_last_error());
            continue;
        }
        c->value += v;
        xo_pack(xo_batch_result(out, i), "l", c->value);
    }
    return XO_OK;
}

static const xo_method_t counter_methods[] = {
    {.name = "add", .fn = counter_add, .batch = counter_add_batch, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "get", .fn = counter_get},
};
static const xo_actor_class_t counter_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "Counter",
    .state_size = sizeof(counter_t),
    .init = counter_init,
    .methods = counter_methods,
    .n_methods = 2,
};

/* ---- Squarer: stateless; "slow_square" sleeps without blocking its thread ---- */
static xo_status_t slow_square(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int x;
    xo_status_t st = xo_unpack(args, "i", &x);
    if (st != XO_OK) return st;
    st = xo_sleep_ms(50);
    if (st == XO_ECANCELED) return xo_ctx_error(ctx, XO_ECANCELED, "slow_square(%d) cancelled while sleeping", x);
    return xo_pack(out, "i", x * x);
}
static const xo_method_t squarer_methods[] = {{.name = "slow_square", .fn = slow_square}};
static const xo_actor_class_t squarer_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "Squarer",
    .flags = XO_ACTOR_STATELESS,
    .methods = squarer_methods,
    .n_methods = 1,
};

/* ---- Pinger: calls a counter, which is fine; and asks a Ponger that calls back into it (A→B→A) ---- */
static xo_status_t pinger_ping(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t ponger_uid;
    xo_status_t st = xo_unpack(args, "s", &ponger_uid);
    if (st != XO_OK) return st;
    char uid[64];
    snprintf(uid, sizeof uid, "%.*s", (int)ponger_uid.len, ponger_uid.ptr);
    xo_ref_t *ponger;
    st = xo_actor_ref(xo_ctx_address(ctx), uid, &ponger);
    if (st != XO_OK) return st;
    xo_result_t *r = NULL;
    st = xo_call(ponger, "pong", xo_args("s", xo_ctx_uid(ctx)), 1000, &r); /* pong calls back into us */
    xo_ref_free(ponger);
    if (st != XO_OK) return st;
    xo_str_t text;
    st = xo_result_unpack(r, "s", &text);
    if (st == XO_OK) st = xo_pack(out, "S", text);
    xo_result_free(r);
    return st;
}
static xo_status_t pinger_name(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "s", "pinger");
}
static const xo_method_t pinger_methods[] = {{.name = "ping", .fn = pinger_ping}, {.name = "name", .fn = pinger_name}};
static const xo_actor_class_t pinger_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Pinger", .methods = pinger_methods, .n_methods = 2};

static xo_status_t ponger_pong(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t caller;
    xo_status_t st = xo_unpack(args, "s", &caller);
    if (st != XO_OK) return st;
    char uid[64];
    snprintf(uid, sizeof uid, "%.*s", (int)caller.len, caller.ptr);
    xo_ref_t *back;
    st = xo_actor_ref(xo_ctx_address(ctx), uid, &back);
    if (st != XO_OK) return st;
    xo_result_t *r = NULL;
    st = xo_call(back, "name", NULL, 1000, &r);
    xo_ref_free(back);
    if (st != XO_OK) return st;
    xo_str_t name;
    xo_result_unpack(r, "s", &name);
    char text[128];
    snprintf(text, sizeof text, "pong to %.*s", (int)name.len, name.ptr);
    xo_result_free(r);
    return xo_pack(out, "s", text);
}
static const xo_method_t ponger_methods[] = {{.name = "pong", .fn = ponger_pong}};
static const xo_actor_class_t ponger_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "Ponger", .methods = ponger_methods, .n_methods = 1};

int main(void)
{
    xo_pool_t *pool;
    CHECK(xo_pool_start(NULL, &pool));
    const char *addr = xo_pool_address(pool);
    printf("pool %s started\n", addr);

    xo_ref_t *counter;
    CHECK(xo_create_actor(&counter_class, xo_args("l", (int64_t)100), addr, "counter", &counter));
    xo_result_t *r;
    CHECK(xo_call(counter, "add", xo_args("l", (int64_t)5), 1000, &r));
    int64_t v;
    CHECK(xo_result_unpack(r, "l", &v));
    xo_result_free(r);
    printf("counter.add(5) from 100 -> %lld\n", (long long)v);

    xo_delayed_t *calls[3] = {xo_delay("add", xo_args("l", (int64_t)1)), xo_delay("add", xo_args("l", (int64_t)2)),
                              xo_delay("add", xo_args("l", (int64_t)3))};
    xo_status_t sts[3];
    xo_result_t *res[3];
    CHECK(xo_batch(counter, calls, 3, 1000, sts, res, NULL));
    printf("batch add(1), add(2), add(3) in one message ->");
    for (int i = 0; i < 3; i++) {
        xo_result_unpack(res[i], "l", &v);
        printf(" %lld", (long long)v);
        xo_result_free(res[i]);
    }
    printf("\n");

    CHECK(xo_tell_delay(counter, "add", xo_args("l", (int64_t)1000), 20));
    xo_sleep_ms(60);
    CHECK(xo_call(counter, "get", NULL, 1000, &r));
    xo_result_unpack(r, "l", &v);
    xo_result_free(r);
    printf("after a tell delayed by 20 ms: %lld\n", (long long)v);

    xo_ref_t *squarer;
    CHECK(xo_create_actor(&squarer_class, NULL, addr, NULL, &squarer));
    xo_future_t *futs[4];
    for (int i = 0; i < 4; i++) CHECK(xo_send(squarer, "slow_square", xo_args("i", i + 2), &futs[i]));
    xo_future_cancel(futs[3]);
    printf("stateless squarer, 4 concurrent 50 ms calls (the last cancelled):");
    for (int i = 0; i < 4; i++) {
        xo_status_t st = xo_future_wait(futs[i], 1000, &r);
        if (st == XO_OK) {
            int sq;
            xo_result_unpack(r, "i", &sq);
            printf(" %d", sq);
            xo_result_free(r);
        } else {
            printf(" [%s: %s]", xo_status_name(st), xo_last_error());
        }
        xo_future_free(futs[i]);
    }
    printf("\n");

    xo_ref_t *pinger, *ponger;
    CHECK(xo_create_actor(&pinger_class, NULL, addr, "pinger", &pinger));
    CHECK(xo_create_actor(&ponger_class, NULL, addr, "ponger", &ponger));
    CHECK(xo_call(pinger, "ping", xo_args("s", "ponger"), 1000, &r));
    xo_str_t s;
    xo_result_unpack(r, "s", &s);
    printf("pinger -> ponger -> pinger (reentrant, no deadlock): \"%.*s\"\n", (int)s.len, s.ptr);
    xo_result_free(r);

    xo_status_t st = xo_call(counter, "no_such_method", NULL, 1000, NULL);
    printf("unknown method -> %s: %s\n", xo_status_name(st), xo_last_error());
    st = xo_call(counter, "add", xo_args("s", "five"), 1000, NULL);
    printf("wrong argument type -> %s: %s\n", xo_status_name(st), xo_last_error());

    CHECK(xo_destroy_actor(counter));
    printf("after destroy, has_actor(counter) = %s\n", xo_has_actor(counter) ? "true" : "false");

    xo_ref_free(counter);
    xo_ref_free(squarer);
    xo_ref_free(pinger);
    xo_ref_free(ponger);
    xo_pool_stop(pool);
    printf("pool stopped\n");
    return 0;
}
