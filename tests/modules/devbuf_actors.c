/* libxo_devbuf_actors.so: actors for the device buffer staging tests (tests/services/devbuf/device_buf_staging_test.cc).
 * Buffers hold a pattern (64-bit words k * golden + seed) that a reader checks, so a wrong byte anywhere shows.
 * Copies go through xo_device_memcpy, as they would on a GPU.
 *
 *   StageOwner (stateful)   alloc(size, seed) -> device bytes used; desc() -> a descriptor of the buffer (a result
 *                           that lends it: the caller must be done before calling free); lend(address, uid, seed) ->
 *                           [reader's check result, the buffer still intact here (bool)]; free() -> bytes used;
 *                           used() -> bytes used; pid(); spin(ms): holds its pool's thread busy for ms (no yield)
 *                           lend_ready(address, uid, seed, method): rewrites the buffer with pattern seed on a
 *                           stream, behind 300 ms of other stream work, records a shareable event and lends the buffer
 *                           with it at once (xo_pack_device_buf_ready) to reader.method -> the reader's result
 *   StageReader (stateless) check(desc, seed) -> [pattern ok, imported, size, device bytes used while held]; the
 *                           reader then zeroes what it got (a copy: the owner keeps its bytes); used() -> bytes used
 *                           (0 without a device); check_on(desc, seed) -> [pattern ok, imported, ms the unpack took]:
 *                           unpacks onto a stream of its device and reads the buffer on that stream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xoscar/device_buf.h"
#include "xoscar/module.h"

static void fill_pattern(unsigned char *dst, size_t size, uint64_t seed)
{
    uint64_t w;
    for (size_t i = 0; i < size; i += 8) {
        w = (uint64_t)(i / 8) * 0x9E3779B97F4A7C15ull + seed;
        memcpy(dst + i, &w, size - i < 8 ? size - i : 8);
    }
}

/* True when the size bytes at dev_ptr (on dev) hold the pattern. */
static bool check_pattern(xo_device_t *dev, const void *dev_ptr, size_t size, uint64_t seed)
{
    unsigned char *got = malloc(size ? size : 1), *want = malloc(size ? size : 1);
    bool ok = got && want && xo_device_memcpy(dev, got, dev_ptr, size, XO_MEMCPY_DEVICE_TO_HOST, NULL) == XO_OK;
    if (ok) {
        fill_pattern(want, size, seed);
        ok = memcmp(got, want, size) == 0;
    }
    free(got);
    free(want);
    return ok;
}

/* A new allocation of dev holding the pattern, into *ptr_p (the caller frees it). */
static xo_status_t upload_pattern(xo_device_t *dev, size_t size, uint64_t seed, void **ptr_p)
{
    unsigned char *host = malloc(size ? size : 1);
    if (!host) return XO_ENOMEM;
    fill_pattern(host, size, seed);
    void *p = NULL;
    xo_status_t st = xo_device_alloc(dev, size, &p);
    if (st == XO_OK) st = xo_device_memcpy(dev, p, host, size, XO_MEMCPY_HOST_TO_DEVICE, NULL);
    free(host);
    if (st == XO_OK) *ptr_p = p;
    else if (p) xo_device_free(dev, p);
    return st;
}

static uint64_t used_of(xo_device_t *dev)
{
    xo_device_mem_info_t mi = {0};
    if (dev) xo_device_mem_info(dev, &mi);
    return mi.used;
}

/* ---- StageOwner ------------------------------------------------------------------------------------------------ */

typedef struct {
    void *buf;
    size_t size;
    uint64_t seed;
} owner_t;

static xo_status_t owner_alloc(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    owner_t *o = state;
    uint64_t size, seed;
    xo_status_t st = xo_unpack(args, "uu", &size, &seed);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "this pool owns no device");
    if (o->buf) return xo_ctx_error(ctx, XO_EINVAL, "already holds a buffer");
    st = upload_pattern(dev, size, seed, &o->buf);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "alloc: %s", xo_last_error());
    o->size = size;
    o->seed = seed;
    return xo_pack(out, "u", used_of(dev));
}

static xo_status_t owner_desc(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    owner_t *o = state;
    if (!o->buf) return xo_ctx_error(ctx, XO_EINVAL, "no buffer");
    return xo_pack_device_buf(out, xo_ctx_device(ctx), o->buf, o->size);
}

static xo_status_t owner_lend(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    owner_t *o = state;
    xo_str_t addr, uid;
    uint64_t seed;
    xo_status_t st = xo_unpack(args, "ssu", &addr, &uid, &seed);
    if (st != XO_OK) return st;
    if (!o->buf) return xo_ctx_error(ctx, XO_EINVAL, "no buffer");
    char a[256], u[256];
    snprintf(a, sizeof a, "%.*s", (int)addr.len, addr.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    xo_ref_t *ref;
    st = xo_actor_ref(a, u, &ref);
    if (st != XO_OK) return st;
    xo_args_t *call = xo_args_new(2);
    st = xo_pack_device_buf(xo_args_packer(call), xo_ctx_device(ctx), o->buf, o->size);
    if (st == XO_OK) st = xo_pack(xo_args_packer(call), "u", seed);
    xo_result_t *r = NULL;
    if (st == XO_OK) st = xo_call(ref, "check", call, 30000, &r); /* lent until the reply is here */
    else xo_args_free(call);
    xo_ref_free(ref);
    if (st != XO_OK) return st; /* the reader's text is the ctx's error already */
    bool intact = check_pattern(xo_ctx_device(ctx), o->buf, o->size, o->seed);
    st = xo_pack(out, "[ot]", xo_result_value(r), (int)intact);
    xo_result_free(r);
    return st;
}

static xo_status_t owner_free(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    owner_t *o = state;
    if (o->buf) xo_device_free(xo_ctx_device(ctx), o->buf);
    o->buf = NULL;
    return xo_pack(out, "u", used_of(xo_ctx_device(ctx)));
}

static xo_status_t owner_used(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "u", used_of(xo_ctx_device(ctx)));
}

static xo_status_t owner_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", (int64_t)getpid());
}

static xo_status_t owner_spin(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t ms;
    xo_status_t st = xo_unpack(args, "l", &ms);
    if (st != XO_OK) return st;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
    return xo_pack(out, "l", ms);
}

static void sleep_300ms(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 300 * 1000000}; /* long enough that a host-side wait shows under any load */
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static xo_status_t owner_lend_ready(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    owner_t *o = state;
    xo_str_t addr, uid, method;
    uint64_t seed;
    xo_status_t st = xo_unpack(args, "ssus", &addr, &uid, &seed, &method);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!o->buf || !dev) return xo_ctx_error(ctx, XO_EINVAL, "no buffer");
    char a[256], u[256], m[64];
    snprintf(a, sizeof a, "%.*s", (int)addr.len, addr.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    snprintf(m, sizeof m, "%.*s", (int)method.len, method.ptr);
    /* The new bytes come from another device buffer: a device-to-device copy on a stream never waits on the host
     * (a copy from pageable host memory may, on CUDA), so the buffer really is unwritten when it is lent. */
    void *src = NULL;
    xo_device_stream_t *s = NULL;
    xo_device_event_t *ev = NULL;
    xo_ref_t *ref = NULL;
    xo_result_t *r = NULL;
    xo_args_t *call = NULL;
    if ((st = upload_pattern(dev, o->size, seed, &src)) != XO_OK || (st = xo_device_stream_create(dev, &s)) != XO_OK || (st = xo_device_event_create_ipc(dev, &ev)) != XO_OK ||
        (st = xo_device_launch_host(s, sleep_300ms, NULL)) != XO_OK ||
        (st = xo_device_memcpy(dev, o->buf, src, o->size, XO_MEMCPY_DEVICE_TO_DEVICE, s)) != XO_OK ||
        (st = xo_device_event_record(ev, s)) != XO_OK)
        goto done;
    if ((st = xo_actor_ref(a, u, &ref)) != XO_OK) goto done;
    call = xo_args_new(2);
    st = xo_pack_device_buf_ready(xo_args_packer(call), dev, o->buf, o->size, ev);
    if (st == XO_OK) st = xo_pack(xo_args_packer(call), "u", seed);
    if (st == XO_OK) {
        st = xo_call(ref, m, call, 30000, &r); /* buffer and event lent until the reply is here */
        call = NULL;
    }
    if (st == XO_OK) st = xo_pack(out, "o", xo_result_value(r));
done:
    if (st != XO_OK && xo_last_error()[0]) st = xo_ctx_error(ctx, st, "lend_ready: %s", xo_last_error());
    xo_args_free(call);
    xo_result_free(r);
    xo_ref_free(ref);
    if (s) xo_device_stream_synchronize(s); /* src is read by the stream */
    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s);
    if (src) xo_device_free(dev, src);
    if (st == XO_OK) o->seed = seed;
    return st;
}

static void owner_fini(void *state) { (void)state; /* the pool's device frees what is left when it closes */ }

static const xo_method_t owner_methods[] = {
    {.name = "alloc", .fn = owner_alloc}, {.name = "desc", .fn = owner_desc}, {.name = "lend", .fn = owner_lend},
    {.name = "free", .fn = owner_free},   {.name = "used", .fn = owner_used}, {.name = "pid", .fn = owner_pid},
    {.name = "spin", .fn = owner_spin},   {.name = "lend_ready", .fn = owner_lend_ready},
};
static const xo_actor_class_t owner_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "StageOwner",
    .state_size = sizeof(owner_t),
    .fini = owner_fini,
    .methods = owner_methods,
    .n_methods = sizeof owner_methods / sizeof owner_methods[0],
};

/* ---- StageReader ----------------------------------------------------------------------------------------------- */

static xo_status_t reader_check(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *desc;
    uint64_t seed;
    xo_status_t st = xo_unpack(args, "ou", &desc, &seed);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    void *p = NULL;
    size_t size = 0;
    bool imported = false;
    st = xo_unpack_device_buf(dev, desc, &p, &size, &imported);
    if (st != XO_OK) return st; /* with the text xo_unpack_device_buf set */
    bool ok = check_pattern(dev, p, size, seed);
    uint64_t used = used_of(dev);
    if (size) xo_device_memset(dev, p, 0, size, NULL); /* a staged copy is ours: the owner must not see this */
    return xo_pack(out, "[ttuu]", (int)ok, (int)imported, (uint64_t)size, used);
}

static xo_status_t reader_check_on(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *desc;
    uint64_t seed;
    xo_status_t st = xo_unpack(args, "ou", &desc, &seed);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "this pool owns no device");
    xo_device_stream_t *s = NULL;
    if ((st = xo_device_stream_create(dev, &s)) != XO_OK) return st;
    void *p = NULL;
    size_t size = 0;
    bool imported = false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = xo_unpack_device_buf_on(dev, s, desc, &p, &size, &imported);
    double unpack_ms = ms_since(&t0);
    unsigned char *got = NULL, *want = NULL;
    bool ok = false;
    if (st == XO_OK) {
        got = malloc(size ? size : 1);
        want = malloc(size ? size : 1);
        if (!got || !want) st = XO_ENOMEM;
    }
    if (st == XO_OK) st = xo_device_memcpy(dev, got, p, size, XO_MEMCPY_DEVICE_TO_HOST, s);
    if (st == XO_OK) st = xo_device_stream_synchronize(s);
    if (st == XO_OK) {
        fill_pattern(want, size, seed);
        ok = memcmp(got, want, size) == 0;
    }
    xo_device_stream_destroy(s);
    free(got);
    free(want);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "check_on: %s", xo_last_error());
    return xo_pack(out, "[ttd]", (int)ok, (int)imported, unpack_ms);
}

static xo_status_t reader_used(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "u", used_of(xo_ctx_device(ctx)));
}

static const xo_method_t reader_methods[] = {
    {.name = "check", .fn = reader_check},
    {.name = "check_on", .fn = reader_check_on},
    {.name = "used", .fn = reader_used},
};
static const xo_actor_class_t reader_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "StageReader",
    .methods = reader_methods,
    .n_methods = sizeof reader_methods / sizeof reader_methods[0],
};

XO_MODULE_DEFINE("devbuf_actors", &owner_class, &reader_class);
