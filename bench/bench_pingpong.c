/* Actor-to-actor round trip: actor A's method xo_calls actor B's "inc" n times in a loop. Each xo_call suspends
 * only A's fiber; B runs (on the same scheduler thread when the pool keeps the pair local), replies, and A is
 * resumed. Every call is timed inside the method with clock_gettime; samples go to a buffer the main thread owns
 * (A runs one "run" at a time, so one writer).
 *
 * pingpong.timed_* repeats it with a 1000 ms timeout on each call: from a method, a timeout arms a timer on the
 * pool's timer thread, and that cost belongs in the report too. */
#include <string.h>

#include "bench.h"

typedef struct pinger {
    xo_ref_t *peer;
} pinger_t;

static uint64_t *g_lat;   /* written by A's method during one "run" call, read by main after it returns */

static xo_status_t pinger_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    pinger_t *p = state;
    xo_str_t uid;
    xo_status_t st = xo_unpack(args, "s", &uid);
    if (st != XO_OK) return st;
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)uid.len, uid.ptr);
    return xo_actor_ref(xo_ctx_address(ctx), buf, &p->peer);
}

static void pinger_fini(void *state) { xo_ref_free(((pinger_t *)state)->peer); }

static xo_status_t pinger_run(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    pinger_t *p = state;
    int64_t n, timeout;
    xo_status_t st = xo_unpack(args, "ll", &n, &timeout);
    if (st != XO_OK) return st;
    for (int64_t i = 0; i < n; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns();
        st = xo_call(p->peer, "inc", NULL, timeout, &r);
        uint64_t t1 = bench_now_ns();
        xo_result_free(r);
        if (st != XO_OK) return xo_ctx_error(ctx, st, "call %lld: %s", (long long)i, xo_last_error());
        g_lat[i] = t1 - t0;
    }
    return XO_OK;
}

static const xo_method_t pinger_methods[] = {{.name = "run", .fn = pinger_run}};
static const xo_actor_class_t pinger_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchPinger",
    .state_size = sizeof(pinger_t),
    .init = pinger_init,
    .fini = pinger_fini,
    .methods = pinger_methods,
    .n_methods = 1,
};

static const bench_metric_spec_t m_p50 = {
    .name = "pingpong.p50", .unit = "us", .goal = BENCH_GOAL_VALUE_MAX, .target = 0.5};
static const bench_metric_spec_t m_p99 = {.name = "pingpong.p99", .unit = "us"};
static const bench_metric_spec_t m_tp50 = {
    .name = "pingpong.timed_p50", .unit = "us", .ref = "pingpong.p50",
    .note = "pingpong.timed_*: the same loop with a 1000 ms timeout on each xo_call (arms a timer per call)"};
static const bench_metric_spec_t m_tp99 = {.name = "pingpong.timed_p99", .unit = "us"};

static int run_loop(const xo_ref_t *a, size_t n, int64_t timeout, const bench_metric_spec_t *p50,
                    const bench_metric_spec_t *p99)
{
    /* a short warm-up run grows the worker cache and faults in the fiber stacks */
    BENCH_CHECK(xo_call(a, "run", xo_args("ll", (int64_t)(n / 10), timeout), XO_FOREVER, NULL));
    BENCH_CHECK(xo_call(a, "run", xo_args("ll", (int64_t)n, timeout), XO_FOREVER, NULL));
    bench_report(p50, bench_percentile(g_lat, n, 50) / 1e3);
    bench_report(p99, bench_percentile(g_lat, n, 99) / 1e3);
    return 0;
}

int bench_pingpong(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 20000 : 200000;
    g_lat = malloc(n * sizeof *g_lat);
    if (!g_lat) return -1;
    xo_pool_t *pool = bench_pool_start(opts);
    const char *addr = xo_pool_address(pool);
    xo_ref_t *b = NULL, *a = NULL;
    int rc = -1;
    if (xo_create_actor(&bench_counter_class, NULL, addr, NULL, &b) != XO_OK ||
        xo_create_actor(&pinger_class, xo_args("s", xo_ref_uid(b)), addr, NULL, &a) != XO_OK) {
        fprintf(stderr, "pingpong: create: %s\n", xo_last_error());
        goto out;
    }
    rc = run_loop(a, n, XO_FOREVER, &m_p50, &m_p99);
    if (rc == 0) rc = run_loop(a, opts->quick ? n / 4 : n / 4, 1000, &m_tp50, &m_tp99);
out:
    xo_ref_free(a);
    xo_ref_free(b);
    xo_pool_stop(pool);
    free(g_lat);
    g_lat = NULL;
    return rc;
}
