/* libxo_test_actors.so: an actor module for tests (module loading now, multi-process pools later).
 *
 *   Counter (stateful)  init([start]); add(n) -> total; get() -> total
 *   Echo (stateless)    echo(v) -> v; pid() -> getpid(); sleep_ms(ms) -> ms, after xo_sleep_ms(ms);
 *                       crash() -> kills its process with SIGKILL (death tests); in_runtime() -> true when the
 *                       module's view of the runtime is the caller's (xo_ctx_current() is the method's ctx);
 *                       where(bytes) -> the name of the mapping the bytes lie in ("" for none: the heap), as
 *                       /proc/self/maps gives it (a borrowed view of a pooled shm segment: ".../memfd:xo-shm-seg")
 *   Sum (stateful)      add(n) -> running total, extensible: a batch of adds is one handler run;
 *                       batches() -> how many batch handler runs there were
 *   Fragile (stateful)  init([path]): kills its process with SIGKILL when the file at path exists (an init that
 *                       crashes on re-creation); refuse_destroy(text): before_destroy then fails with that text;
 *                       destroy_self(): destroys itself from its own method; pid() -> getpid()
 *   Slow (stateful)     init([ms, path]): sleeps ms (xo_sleep_ms) when the file at path exists (a slow re-creation);
 *                       before_destroy sleeps the ms given to linger(ms) (xo_sleep_ms; a cancel ends it);
 *                       nap(ms): sleeps ms (keeps the actor busy); env(name) -> the process's getenv(name) or nil;
 *                       pid() -> getpid()
 *   Forward (stateless) call(address, uid, method, [args]) -> the reply of that call, made from this C method
 *                       (its error's status and text pass through); loop(address, uid, method, payload, n) ->
 *                       the nanoseconds of each of n sequential calls method(payload) (a C caller, for benches) */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* Sends its binary arguments back as an array, each lent to the result ('B') from the arguments themselves (which
 * live until the activation ends): to another process they are copied once, into the reply's frame. */
static xo_status_t echo_lent(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    msgpack_pack_array(out, args->via.array.size);
    for (uint32_t i = 0; i < args->via.array.size; i++) {
        const msgpack_object *o = &args->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_BIN)
            return xo_ctx_error(ctx, XO_EBADARGS, "echo_lent: argument %u is not a binary", i + 1);
        xo_status_t st = xo_pack(out, "B", o->via.bin.ptr, (size_t)o->via.bin.size);
        if (st != XO_OK) return st;
    }
    return XO_OK;
}

/* A result of n zero bytes (n from the arguments), written in slices so that nothing but the result is allocated. */
static xo_status_t echo_zeros(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    static const char zero[64 << 10];
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    if (n < 0 || msgpack_pack_bin(out, (size_t)n) != 0) return xo_ctx_error(ctx, XO_ENOMEM, "zeros: no room");
    for (int64_t done = 0; done < n; done += (int64_t)sizeof zero) {
        size_t k = n - done < (int64_t)sizeof zero ? (size_t)(n - done) : sizeof zero;
        if (msgpack_pack_bin_body(out, zero, k) != 0) return xo_ctx_error(ctx, XO_ENOMEM, "zeros: no room");
    }
    return XO_OK;
}

static xo_status_t echo_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", (int64_t)getpid());
}

/* sleep_ms calls of this process that ended cancelled: lets a client see that its cancel reached the pool. */
static _Atomic long sleeps_cancelled;

static xo_status_t echo_sleep_ms(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t ms;
    xo_status_t st = xo_unpack(args, "l", &ms);
    if (st != XO_OK) return st;
    if (ms < 0) return xo_ctx_error(ctx, XO_EBADARGS, "sleep_ms: negative time %lld", (long long)ms);
    st = xo_sleep_ms(ms);
    if (st == XO_ECANCELED) atomic_fetch_add(&sleeps_cancelled, 1);
    if (st != XO_OK) return st;
    return xo_pack(out, "l", ms);
}

static xo_status_t echo_sleeps_cancelled(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", (int64_t)atomic_load(&sleeps_cancelled));
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

static xo_status_t echo_where(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return xo_ctx_error(ctx, XO_EMETHOD, "where: no /proc/self/maps");
    char line[512], name[512] = "";
    unsigned long a = (unsigned long)b.ptr;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        int pos = 0;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &pos) < 2 || a < lo || a >= hi) continue;
        snprintf(name, sizeof name, "%s", line + pos);
        name[strcspn(name, "\n")] = '\0';
        break;
    }
    fclose(f);
    return xo_pack(out, "s", name);
}

static const xo_method_t echo_methods[] = {
    {.name = "where", .fn = echo_where},
    {.name = "echo", .fn = echo_echo},
    {.name = "echo_lent", .fn = echo_lent},
    {.name = "zeros", .fn = echo_zeros},
    {.name = "pid", .fn = echo_pid},
    {.name = "sleep_ms", .fn = echo_sleep_ms},
    {.name = "crash", .fn = echo_crash},
    {.name = "sleeps_cancelled", .fn = echo_sleeps_cancelled},
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

/* ---- Fragile -------------------------------------------------------------------------------------------------- */

typedef struct {
    char refusal[256]; /* non-empty: before_destroy fails with it */
} fragile_t;

static xo_status_t fragile_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    xo_str_t path = {0};
    xo_status_t st = xo_unpack(args, "|s", &path);
    if (st != XO_OK) return st;
    char p[512];
    if (path.ptr && path.len < sizeof p) {
        memcpy(p, path.ptr, path.len);
        p[path.len] = '\0';
        if (access(p, F_OK) == 0) raise(SIGKILL);
    }
    return XO_OK;
}

static xo_status_t fragile_before_destroy(xo_ctx_t *ctx, void *state)
{
    fragile_t *f = state;
    return f->refusal[0] ? xo_ctx_error(ctx, XO_EMETHOD, "%s", f->refusal) : XO_OK;
}

static xo_status_t fragile_refuse_destroy(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    fragile_t *f = state;
    xo_str_t text;
    xo_status_t st = xo_unpack(args, "s", &text);
    if (st != XO_OK) return st;
    snprintf(f->refusal, sizeof f->refusal, "%.*s", (int)text.len, text.ptr);
    return XO_OK;
}

static xo_status_t fragile_destroy_self(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_ref_t *self = xo_ctx_self(ctx);
    xo_status_t st = self ? xo_destroy_actor(self) : xo_ctx_error(ctx, XO_ENOMEM, "no ref to itself");
    xo_ref_free(self);
    return st;
}

static const xo_method_t fragile_methods[] = {
    {.name = "refuse_destroy", .fn = fragile_refuse_destroy},
    {.name = "destroy_self", .fn = fragile_destroy_self},
    {.name = "pid", .fn = echo_pid},
};

static const xo_actor_class_t fragile_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Fragile",
    .state_size = sizeof(fragile_t),
    .init = fragile_init,
    .before_destroy = fragile_before_destroy,
    .methods = fragile_methods,
    .n_methods = sizeof fragile_methods / sizeof fragile_methods[0],
};

/* ---- Slow ----------------------------------------------------------------------------------------------------- */

typedef struct {
    int64_t linger_ms; /* before_destroy sleeps this long */
} slow_t;

static xo_status_t slow_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    int64_t ms = 0;
    xo_str_t path = {0};
    xo_status_t st = xo_unpack(args, "|ls", &ms, &path);
    if (st != XO_OK) return st;
    char p[512];
    if (ms > 0 && path.ptr && path.len < sizeof p) {
        memcpy(p, path.ptr, path.len);
        p[path.len] = '\0';
        if (access(p, F_OK) == 0) return xo_sleep_ms(ms);
    }
    return XO_OK;
}

static xo_status_t slow_before_destroy(xo_ctx_t *ctx, void *state)
{
    slow_t *s = state;
    if (s->linger_ms <= 0) return XO_OK;
    xo_status_t st = xo_sleep_ms(s->linger_ms);
    return st == XO_OK ? XO_OK : xo_ctx_error(ctx, st, "before_destroy: sleep of %lld ms ended early: %s",
                                              (long long)s->linger_ms, xo_status_name(st));
}

static xo_status_t slow_linger(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_unpack(args, "l", &((slow_t *)state)->linger_ms);
}

static xo_status_t slow_env(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t name;
    xo_status_t st = xo_unpack(args, "s", &name);
    if (st != XO_OK) return st;
    char n[256];
    snprintf(n, sizeof n, "%.*s", (int)name.len, name.ptr);
    return xo_pack(out, "s", getenv(n)); /* NULL packs nil */
}

static xo_status_t slow_nap(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t ms;
    xo_status_t st = xo_unpack(args, "l", &ms);
    return st == XO_OK ? xo_sleep_ms(ms) : st;
}

static const xo_method_t slow_methods[] = {
    {.name = "linger", .fn = slow_linger},
    {.name = "nap", .fn = slow_nap},
    {.name = "env", .fn = slow_env},
    {.name = "pid", .fn = echo_pid},
};

static const xo_actor_class_t slow_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATEFUL,
    .name = "Slow",
    .state_size = sizeof(slow_t),
    .init = slow_init,
    .before_destroy = slow_before_destroy,
    .methods = slow_methods,
    .n_methods = sizeof slow_methods / sizeof slow_methods[0],
};

/* ---- device buffers (include/xoscar/device_buf.h) ------------------------------------------------------------- *
 *   DevOwner (stateful)  alloc(n): n floats 1..n on its pool's device; lend(address, uid): calls uid.scale(buffer, 2)
 *                        there, then returns [sum before, sum after, the pointer the borrower saw == ours (bool)];
 *                        release(): frees the buffer
 *   DevScale (stateless) scale(buffer, factor): multiplies the lent floats in place; returns [sum, pointer]       */

#include "xoscar/device_buf.h"

typedef struct {
    float *buf;
    size_t n;
} dev_owner_t;

static double sum_floats(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return s;
}

static xo_status_t owner_alloc(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    dev_owner_t *o = state;
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "this pool owns no device");
    void *p = NULL;
    st = xo_device_alloc(dev, (size_t)n * sizeof(float), &p);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error());
    /* host device memory is addressable here; a CUDA pool would copy in with xo_device_memcpy */
    o->buf = p;
    o->n = (size_t)n;
    for (size_t i = 0; i < o->n; i++) o->buf[i] = (float)(i + 1);
    return xo_pack(out, "d", sum_floats(o->buf, o->n));
}

static xo_status_t owner_lend(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    dev_owner_t *o = state;
    xo_str_t addr, uid;
    xo_status_t st = xo_unpack(args, "ss", &addr, &uid);
    if (st != XO_OK) return st;
    char a[256], u[256];
    snprintf(a, sizeof a, "%.*s", (int)addr.len, addr.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    xo_ref_t *ref;
    st = xo_actor_ref(a, u, &ref);
    if (st != XO_OK) return st;
    double before = sum_floats(o->buf, o->n);
    xo_args_t *call = xo_args_new(2);
    st = xo_pack_device_buf(xo_args_packer(call), xo_ctx_device(ctx), o->buf, o->n * sizeof(float));
    if (st == XO_OK) st = xo_pack(xo_args_packer(call), "d", 2.0);
    xo_result_t *r = NULL;
    if (st == XO_OK) st = xo_call(ref, "scale", call, 5000, &r); /* the buffer stays ours and untouched until here */
    else xo_args_free(call);
    xo_ref_free(ref);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error());
    double seen_sum = 0;
    uint64_t seen_ptr = 0;
    st = xo_result_unpack(r, "[du]", &seen_sum, &seen_ptr);
    xo_result_free(r);
    if (st != XO_OK) return st;
    return xo_pack(out, "[ddt]", before, sum_floats(o->buf, o->n), (int)(seen_ptr == (uint64_t)(uintptr_t)o->buf));
}

static xo_status_t owner_release(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    dev_owner_t *o = state;
    if (o->buf) xo_device_free(xo_ctx_device(ctx), o->buf);
    o->buf = NULL;
    xo_device_mem_info_t mi = {0};
    xo_device_mem_info(xo_ctx_device(ctx), &mi);
    return xo_pack(out, "u", mi.used);
}

static xo_status_t scale_scale(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *desc;
    double factor;
    xo_status_t st = xo_unpack(args, "od", &desc, &factor);
    if (st != XO_OK) return st;
    void *p;
    size_t size;
    bool imported;
    st = xo_unpack_device_buf(xo_ctx_device(ctx), desc, &p, &size, &imported);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error());
    float *v = p;
    for (size_t i = 0; i < size / sizeof(float); i++) v[i] = (float)(v[i] * factor);
    return xo_pack(out, "[du]", sum_floats(v, size / sizeof(float)), (uint64_t)(uintptr_t)p);
}

static const xo_method_t owner_methods[] = {
    {.name = "alloc", .fn = owner_alloc}, {.name = "lend", .fn = owner_lend}, {.name = "release", .fn = owner_release}};
static const xo_actor_class_t dev_owner_class = {.abi_version = XO_CLASS_ABI_V1,
                                                 .name = "DevOwner",
                                                 .state_size = sizeof(dev_owner_t),
                                                 .methods = owner_methods,
                                                 .n_methods = 3};
static const xo_method_t scale_methods[] = {{.name = "scale", .fn = scale_scale}};
static const xo_actor_class_t dev_scale_class = {.abi_version = XO_CLASS_ABI_V1,
                                                 .flags = XO_ACTOR_STATELESS,
                                                 .name = "DevScale",
                                                 .methods = scale_methods,
                                                 .n_methods = 1};

/* ---- Forward -------------------------------------------------------------------------------------------------- */

/* A ref to (address, uid) from msgpack strings (not NUL-terminated). */
static xo_status_t forward_ref(xo_ctx_t *ctx, xo_str_t address, xo_str_t uid, xo_ref_t **ref_p)
{
    char a[256], u[256];
    snprintf(a, sizeof a, "%.*s", (int)address.len, address.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    xo_status_t st = xo_actor_ref(a, u, ref_p);
    return st == XO_OK ? st : xo_ctx_error(ctx, st, "%s", xo_last_error());
}

static xo_status_t forward_call(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t address, uid, method;
    const msgpack_object *call_args;
    xo_status_t st = xo_unpack(args, "sss|o", &address, &uid, &method, &call_args);
    if (st != XO_OK) return st;
    uint32_t n = args->via.array.size > 3 && call_args->type == MSGPACK_OBJECT_ARRAY ? call_args->via.array.size : 0;
    xo_ref_t *ref;
    if ((st = forward_ref(ctx, address, uid, &ref)) != XO_OK) return st;
    xo_args_t *a = xo_args_new(n);
    for (uint32_t i = 0; i < n; i++) msgpack_pack_object(xo_args_packer(a), call_args->via.array.ptr[i]);
    char m[128];
    snprintf(m, sizeof m, "%.*s", (int)method.len, method.ptr);
    xo_result_t *r = NULL;
    st = xo_call(ref, m, a, XO_FOREVER, &r);
    xo_ref_free(ref);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "%s", xo_last_error()); /* the callee's status and text */
    msgpack_pack_object(out, *xo_result_value(r));
    xo_result_free(r);
    return XO_OK;
}

static xo_status_t forward_loop(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t address, uid, method;
    int64_t n;
    xo_bytes_t payload;
    xo_status_t st = xo_unpack(args, "sssbl", &address, &uid, &method, &payload, &n);
    if (st != XO_OK) return st;
    xo_ref_t *ref;
    if ((st = forward_ref(ctx, address, uid, &ref)) != XO_OK) return st;
    char m[128];
    snprintf(m, sizeof m, "%.*s", (int)method.len, method.ptr);
    int64_t *ns = calloc(n > 0 ? (size_t)n : 1, sizeof *ns);
    for (int64_t i = 0; i < n && st == XO_OK; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = xo_call(ref, m, xo_args("b", payload.ptr, payload.len), XO_FOREVER, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[i] = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    }
    xo_ref_free(ref);
    if (st != XO_OK) {
        free(ns);
        return xo_ctx_error(ctx, st, "%s", xo_last_error());
    }
    msgpack_pack_array(out, (size_t)n);
    for (int64_t i = 0; i < n; i++) msgpack_pack_int64(out, ns[i]);
    free(ns);
    return XO_OK;
}

static const xo_method_t forward_methods[] = {
    {.name = "call", .fn = forward_call},
    {.name = "loop", .fn = forward_loop},
};

static const xo_actor_class_t forward_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "Forward",
    .methods = forward_methods,
    .n_methods = 2,
};

XO_MODULE_DEFINE("test_actors", &counter_class, &echo_class, &sum_class, &dev_owner_class, &dev_scale_class,
                 &fragile_class, &slow_class, &forward_class);
