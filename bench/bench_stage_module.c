/* xo_bench_stage: the pipeline stage of bench/placement_bench.sh, where placement decides how far each 16 MiB
 * buffer travels. A module like xo_bench_actors (headers only; the loading process's runtime).
 *
 * Stage (stateful):
 *   "set_next" (address, uid)  the stage it hands each buffer to; none: it is the sink
 *   "push"     (bytes b)       hands b to the next stage and answers when it has (the sink answers at once), so one
 *                              push of the source's crosses every hop of the pipeline: its length
 *   "produce"  (n, bytes)      the source: pushes n buffers of that size down the pipeline one after the other;
 *                              -> the seconds it took, end to end */
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

XO_MODULE_DEFINE("xo_bench_stage", &stage_class);
