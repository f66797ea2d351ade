/* xo_call round trip from a plain (non-actor) thread to a stateful actor: post to a scheduler's inbox, run on a
 * fiber, reply through a future the caller spins (then sleeps) on. Each call is timed on its own. */
#include "bench.h"

static const bench_metric_spec_t m_p50 = {
    .name = "call.p50", .unit = "us", .goal = BENCH_GOAL_VALUE_MAX, .target = 5.0};
static const bench_metric_spec_t m_p99 = {.name = "call.p99", .unit = "us"};

int bench_call(const bench_opts_t *opts)
{
    size_t n = opts->quick ? 5000 : 20000, warm = n / 10;
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!lat) return -1;
    xo_pool_t *pool = bench_pool_start(opts);
    xo_ref_t *ref;
    BENCH_CHECK(xo_create_actor(&bench_counter_class, NULL, xo_pool_address(pool), NULL, &ref));
    int rc = 0;
    for (size_t i = 0; i < warm + n && rc == 0; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns();
        xo_status_t st = xo_call(ref, "get", NULL, XO_FOREVER, &r);
        uint64_t t1 = bench_now_ns();
        xo_result_free(r);
        if (st != XO_OK) {
            fprintf(stderr, "call: %s: %s\n", xo_status_name(st), xo_last_error());
            rc = -1;
        }
        if (i >= warm) lat[i - warm] = t1 - t0;
    }
    if (rc == 0) {
        bench_report(&m_p50, bench_percentile(lat, n, 50) / 1e3);
        bench_report(&m_p99, bench_percentile(lat, n, 99) / 1e3);
    }
    free(lat);
    xo_ref_free(ref);
    xo_pool_stop(pool);
    return rc;
}
