/* Actor creation. xo_create_actor waits for the new actor's init, so each create is a round trip through a
 * scheduler: from a plain thread it blocks the thread, from a method it suspends the method's fiber.
 *
 * Memory: RSS (/proc/self/statm) before and after creating many idle BenchCounters (8 bytes of state, a generated
 * uid) in a pool that has already created and run actors (workers and fiber stacks exist), divided by the count.
 * Refs are freed as soon as they are returned (ref_p NULL), so the figure is what the pool holds per actor: the
 * actor, its uid, its table slot and allocator overhead. Pages malloc keeps for freed refs are reused by the next
 * create, so they do not add up. */
#include "bench.h"

static xo_status_t spawner_spawn(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t n;
    xo_status_t st = xo_unpack(args, "l", &n);
    if (st != XO_OK) return st;
    uint64_t t0 = bench_now_ns();
    for (int64_t i = 0; i < n; i++) {
        st = xo_create_actor(&bench_counter_class, NULL, xo_ctx_address(ctx), NULL, NULL);
        if (st != XO_OK) return xo_ctx_error(ctx, st, "create %lld: %s", (long long)i, xo_last_error());
    }
    uint64_t t1 = bench_now_ns();
    return xo_pack(out, "u", t1 - t0); /* timed inside the method: the caller's round trip is not in it */
}

static const xo_method_t spawner_methods[] = {{.name = "spawn", .fn = spawner_spawn}};
static const xo_actor_class_t spawner_class = {
    .abi_version = XO_CLASS_ABI_V1, .name = "BenchSpawner", .methods = spawner_methods, .n_methods = 1};

static const bench_metric_spec_t m_plain = {
    .name = "create.plain_thread", .unit = "us", .goal = BENCH_GOAL_VALUE_MAX, .target = 0.5};
static const bench_metric_spec_t m_method = {
    .name = "create.in_method", .unit = "us", .goal = BENCH_GOAL_VALUE_MAX, .target = 0.5};
static const bench_metric_spec_t m_bytes = {
    .name = "create.bytes_per_actor", .unit = "B", .goal = BENCH_GOAL_VALUE_MAX, .target = 512};
static const bench_metric_spec_t m_stop = {
    .name = "create.pool_stop_per_actor", .unit = "us",
    .note = "create.pool_stop_per_actor: xo_pool_stop of the pool holding the RSS test's actors, divided by their count"};

static int create_from_thread(const char *addr, size_t n, double *us_p)
{
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) BENCH_CHECK(xo_create_actor(&bench_counter_class, NULL, addr, NULL, NULL));
    *us_p = (double)(bench_now_ns() - t0) / 1e3 / (double)n;
    return 0;
}

static int create_from_method(const char *addr, size_t n, double *us_p)
{
    xo_ref_t *sp;
    BENCH_CHECK(xo_create_actor(&spawner_class, NULL, addr, NULL, &sp));
    xo_result_t *r = NULL;
    xo_status_t st = xo_call(sp, "spawn", xo_args("l", (int64_t)n), XO_FOREVER, &r);
    xo_ref_free(sp);
    BENCH_CHECK(st);
    uint64_t ns = 0;
    st = xo_result_unpack(r, "u", &ns);
    xo_result_free(r);
    BENCH_CHECK(st);
    *us_p = (double)ns / 1e3 / (double)n;
    return 0;
}

int bench_create(const bench_opts_t *opts)
{
    size_t n_time = opts->quick ? 5000 : 20000;
    size_t n_mem = opts->quick ? 10000 : 100000;
    double us;

    xo_pool_t *pool = bench_pool_start(opts);
    const char *addr = xo_pool_address(pool);
    if (create_from_thread(addr, n_time / 10, &us)) return -1; /* warm-up: workers, stacks, table */
    if (create_from_thread(addr, n_time, &us)) return -1;
    bench_report(&m_plain, us);
    if (create_from_method(addr, n_time, &us)) return -1;
    bench_report(&m_method, us);
    xo_pool_stop(pool);

    pool = bench_pool_start(opts);
    addr = xo_pool_address(pool);
    if (create_from_method(addr, 1000, &us)) return -1; /* warm-up, not counted */
    size_t rss0 = bench_rss_bytes();
    if (create_from_method(addr, n_mem, &us)) return -1;
    size_t rss1 = bench_rss_bytes();
    bench_report(&m_bytes, rss1 > rss0 ? (double)(rss1 - rss0) / (double)n_mem : 0);
    uint64_t t0 = bench_now_ns();
    xo_pool_stop(pool);
    bench_report(&m_stop, (double)(bench_now_ns() - t0) / 1e3 / (double)(n_mem + 1001));
    return 0;
}
