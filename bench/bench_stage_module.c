/* xo_bench_stage: the pipeline stage of bench/placement_bench.sh, where placement decides how far each 16 MiB
 * buffer travels. A module like xo_bench_actors (headers only; the loading process's runtime).
 *
 * Stage (stateful):
 *   "set_next" (address, uid)  the stage it hands each buffer to; none: it is the sink
 *   "push"     (bytes b)       hands b to the next stage and answers when it has (the sink answers at once), so one
 *                              push of the source's crosses every hop of the pipeline: its length
 *   "produce"  (n, bytes)      the source: pushes n buffers of that size down the pipeline one after the other;
 *                              -> the seconds it took, end to end
 *
 * DevStage (stateful), the device-buffer case: the same pipeline, handing buffers of the pools' devices
 * (xo_pack_device_buf) instead of bytes in the message. Each stage's pool must own a device.
 *   "set_next" (address, uid)  as Stage's
 *   "push"     (device buffer) takes the buffer onto its own device (the runtime imports it from a process of its
 *                              host, or stages a copy from another host), copies it into a buffer of its own (the
 *                              stage's output: device to device) and lends that to the next stage; answers when the
 *                              next has (the lend rule: the output stays ours until then)
 *   "produce"  (n, bytes)      the source: a buffer of its device, lent n times down the pipeline -> seconds */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xoscar/device_buf.h>
#include <xoscar/gpu.h>
#include <xoscar/module.h>
#include <xoscar/xoscar.h>

typedef struct {
    xo_ref_t *next;
} stage_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static xo_status_t stage_set_next(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    stage_t *s = state;
    xo_str_t a, u;
    xo_status_t st = xo_unpack(args, "ss", &a, &u);
    if (st != XO_OK) return st;
    char addr[256], uid[256];
    if (a.len >= sizeof addr || u.len >= sizeof uid) return xo_ctx_error(ctx, XO_EBADARGS, "set_next: too long");
    memcpy(addr, a.ptr, a.len);
    addr[a.len] = '\0';
    memcpy(uid, u.ptr, u.len);
    uid[u.len] = '\0';
    xo_ref_free(s->next);
    s->next = NULL;
    return xo_actor_ref(addr, uid, &s->next);
}

static xo_status_t stage_push(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    stage_t *s = state;
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    if (s->next) {
        xo_result_t *r = NULL;
        st = xo_call(s->next, "push", xo_args("b", b.ptr, b.len), 600000, &r);
        xo_result_free(r);
        if (st != XO_OK) return xo_ctx_error(ctx, st, "push to the next stage: %s", xo_last_error());
    }
    return xo_pack(out, "u", (uint64_t)b.len);
}

static xo_status_t stage_produce(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    stage_t *s = state;
    int64_t n, bytes;
    xo_status_t st = xo_unpack(args, "ll", &n, &bytes);
    if (st != XO_OK) return st;
    if (!s->next || n < 1 || bytes < 1 || bytes > (1ll << 30))
        return xo_ctx_error(ctx, XO_EBADARGS, "produce: needs a next stage, n >= 1 and 1..1 GiB");
    char *buf = malloc((size_t)bytes); /* ours: the payload, the same every time */
    if (!buf) return xo_ctx_error(ctx, XO_ENOMEM, "produce: no memory");
    memset(buf, 7, (size_t)bytes);
    double t0 = now_s();
    for (int64_t i = 0; i < n && st == XO_OK; i++) {
        xo_result_t *r = NULL;
        st = xo_call(s->next, "push", xo_args("b", buf, (size_t)bytes), 600000, &r);
        xo_result_free(r);
    }
    double secs = now_s() - t0;
    free(buf);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "produce: %s", xo_last_error());
    return xo_pack(out, "d", secs);
}

static void stage_fini(void *state)
{
    stage_t *s = state;
    xo_ref_free(s->next);
}

static const xo_method_t stage_methods[] = {
    {.name = "set_next", .fn = stage_set_next},
    {.name = "push", .fn = stage_push},
    {.name = "produce", .fn = stage_produce},
};

static const xo_actor_class_t stage_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "Stage",
    .state_size = sizeof(stage_t),
    .fini = stage_fini,
    .methods = stage_methods,
    .n_methods = sizeof stage_methods / sizeof stage_methods[0],
};

/* Lends size bytes at buf (of dev) to the next stage's push and waits for its answer. */
static xo_status_t dev_hand_on(xo_ctx_t *ctx, stage_t *s, xo_device_t *dev, void *buf, size_t size)
{
    xo_args_t *a = xo_args_new(1);
    xo_status_t st = xo_pack_device_buf(xo_args_packer(a), dev, buf, size);
    if (st != XO_OK) {
        xo_args_free(a);
        return xo_ctx_error(ctx, st, "lend: %s", xo_last_error());
    }
    xo_result_t *r = NULL;
    st = xo_call(s->next, "push", a, 600000, &r);
    xo_result_free(r);
    return st == XO_OK ? XO_OK : xo_ctx_error(ctx, st, "push to the next stage: %s", xo_last_error());
}

static xo_status_t devstage_push(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    stage_t *s = state;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "DevStage.push: pool %s owns no device", xo_ctx_address(ctx));
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1)
        return xo_ctx_error(ctx, XO_EBADARGS, "DevStage.push: want one device buffer");
    void *in = NULL;
    size_t size = 0;
    xo_status_t st = xo_unpack_device_buf(dev, &args->via.array.ptr[0], &in, &size, NULL);
    if (st != XO_OK) return st;
    if (s->next && size) {
        void *mine = NULL; /* ours until the next stage has answered */
        st = xo_device_alloc(dev, size, &mine);
        if (st == XO_OK) st = xo_device_memcpy(dev, mine, in, size, XO_MEMCPY_DEVICE_TO_DEVICE, NULL);
        if (st == XO_OK) st = dev_hand_on(ctx, s, dev, mine, size);
        else st = xo_ctx_error(ctx, st, "DevStage.push: %s", xo_last_error());
        if (mine) xo_device_free(dev, mine);
        if (st != XO_OK) return st;
    }
    return xo_pack(out, "u", (uint64_t)size);
}

static xo_status_t devstage_produce(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    stage_t *s = state;
    int64_t n, bytes;
    xo_status_t st = xo_unpack(args, "ll", &n, &bytes);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev || !s->next || n < 1 || bytes < 1 || bytes > (1ll << 30))
        return xo_ctx_error(ctx, XO_EBADARGS, "produce: needs a device, a next stage, n >= 1 and 1..1 GiB");
    void *buf = NULL;
    if ((st = xo_device_alloc(dev, (size_t)bytes, &buf)) != XO_OK) return st;
    st = xo_device_memset(dev, buf, 7, (size_t)bytes, NULL);
    double t0 = now_s();
    for (int64_t i = 0; i < n && st == XO_OK; i++) st = dev_hand_on(ctx, s, dev, buf, (size_t)bytes);
    double secs = now_s() - t0;
    xo_device_free(dev, buf);
    if (st != XO_OK) return st;
    return xo_pack(out, "d", secs);
}

static const xo_method_t devstage_methods[] = {
    {.name = "set_next", .fn = stage_set_next},
    {.name = "push", .fn = devstage_push},
    {.name = "produce", .fn = devstage_produce},
};

static const xo_actor_class_t devstage_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "DevStage",
    .state_size = sizeof(stage_t),
    .fini = stage_fini,
    .methods = devstage_methods,
    .n_methods = sizeof devstage_methods / sizeof devstage_methods[0],
};

XO_MODULE_DEFINE("xo_bench_stage", &stage_class, &devstage_class);
