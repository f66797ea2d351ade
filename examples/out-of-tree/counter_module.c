/* A module with one stateful class, Counter: init(start) sets the count, add(n) adds n and returns the new count,
 * get() returns it. docs/modules.md walks through it. */
#include <xoscar/module.h>

typedef struct {
    int64_t value;
} counter_t;

static xo_status_t counter_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    counter_t *c = state;
    c->value = 0;
    return xo_unpack(args, "|l", &c->value); /* an optional start value */
}

static xo_status_t counter_add(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    counter_t *c = state;
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    if ((n > 0 && c->value > INT64_MAX - n) || (n < 0 && c->value < INT64_MIN - n))
        return xo_ctx_error(ctx, XO_EINVAL, "adding %lld would overflow the count", (long long)n);
    c->value += n;
    return xo_pack(out, "l", c->value);
}

static xo_status_t counter_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", ((counter_t *)state)->value);
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

XO_MODULE_DEFINE("counter_example", &counter_class);
