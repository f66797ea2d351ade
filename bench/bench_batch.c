/* 100 calls as one batch message (xo_delay x100 + xo_batch) against 100 separate xo_calls, from a plain thread,
 * to the counter's extensible "inc". Per item: the whole round (building the calls included) divided by 100. */
#include "bench.h"

#define ITEMS 100

static int batch_round(const xo_ref_t *ref)
{
    xo_delayed_t *calls[ITEMS];
    xo_status_t sts[ITEMS];
    xo_result_t *res[ITEMS];
    for (int i = 0; i < ITEMS; i++) calls[i] = xo_delay("inc", NULL);
    BENCH_CHECK(xo_batch(ref, calls, ITEMS, XO_FOREVER, sts, res, NULL));
    for (int i = 0; i < ITEMS; i++) {
        BENCH_CHECK(sts[i]);
        xo_result_free(res[i]);
    }
    return 0;
}

static int single_round(const xo_ref_t *ref)
{
    for (int i = 0; i < ITEMS; i++) {
        xo_result_t *r = NULL;
        BENCH_CHECK(xo_call(ref, "inc", NULL, XO_FOREVER, &r));
        xo_result_free(r);
    }
    return 0;
}

static const bench_metric_spec_t m_single = {.name = "batch.single_per_item", .unit = "us"};
static const bench_metric_spec_t m_batch = {
    .name = "batch.batch_per_item", .unit = "us", .ref = "batch.single_per_item", .goal = BENCH_GOAL_RATIO_MAX,
    .target = 1.0};

int bench_batch(const bench_opts_t *opts)
{
    int rounds = opts->quick ? 50 : 500;
    xo_pool_t *pool = bench_pool_start(opts);
    xo_ref_t *ref;
    BENCH_CHECK(xo_create_actor(&bench_counter_class, NULL, xo_pool_address(pool), NULL, &ref));
    int rc = 0;
    for (int i = 0; i < rounds / 10 && rc == 0; i++) rc = batch_round(ref) | single_round(ref);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < rounds && rc == 0; i++) rc = single_round(ref);
    uint64_t t1 = bench_now_ns();
    for (int i = 0; i < rounds && rc == 0; i++) rc = batch_round(ref);
    uint64_t t2 = bench_now_ns();
    int64_t count = 0;
    if (rc == 0) rc = bench_counter_get(ref, &count);
    if (rc == 0 && count != (int64_t)(rounds / 10 + rounds) * 2 * ITEMS) {
        fprintf(stderr, "batch: counter is %lld\n", (long long)count);
        rc = -1;
    }
    if (rc == 0) {
        bench_report(&m_single, (double)(t1 - t0) / 1e3 / ((double)rounds * ITEMS));
        bench_report(&m_batch, (double)(t2 - t1) / 1e3 / ((double)rounds * ITEMS));
    }
    xo_ref_free(ref);
    xo_pool_stop(pool);
    return rc;
}
