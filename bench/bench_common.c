/* Helpers and the one actor class several benchmarks share. */
#include <string.h>
#include <unistd.h>

#include "bench.h"

const size_t bench_sizes[BENCH_N_SIZES] = {8, 1024, 64 * 1024, 1024 * 1024, 64 * 1024 * 1024};
const char *const bench_size_names[BENCH_N_SIZES] = {"8B", "1KiB", "64KiB", "1MiB", "64MiB"};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile(uint64_t *v, size_t n, double pct)
{
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    /* nearest rank: p99 of 20k samples is the 19800th, a real sample rather than an interpolation */
    size_t rank = (size_t)((pct / 100.0) * (double)n + 0.5);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return (double)v[rank - 1];
}

size_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return got == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

xo_pool_t *bench_pool_start(const bench_opts_t *opts)
{
    xo_pool_config_t cfg = {.n_threads = opts->threads};
    xo_pool_t *pool;
    xo_status_t st = xo_pool_start(&cfg, &pool);
    if (st != XO_OK) {
        fprintf(stderr, "xo_pool_start: %s: %s\n", xo_status_name(st), xo_last_error());
        exit(2);
    }
    return pool;
}

/* ---- BenchCounter: "inc" adds one (no arguments, so a tell allocates only the message), "get" reads ---------- */

static xo_status_t counter_inc(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    ++*(int64_t *)state;
    return XO_OK; /* packs nothing: the reply is nil */
}

static xo_status_t counter_inc_batch(xo_ctx_t *ctx, void *state, size_t n, const msgpack_object *const *args,
                                     xo_batch_out_t *out)
{
    *(int64_t *)state += (int64_t)n;
    return XO_OK; /* every call left untouched returns nil, as a single inc does */
}

static xo_status_t counter_get(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", *(int64_t *)state);
}

static const xo_method_t counter_methods[] = {
    {.name = "inc", .fn = counter_inc, .batch = counter_inc_batch, .flags = XO_METHOD_EXTENSIBLE},
    {.name = "get", .fn = counter_get},
};

const xo_actor_class_t bench_counter_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchCounter",
    .state_size = sizeof(int64_t),
    .methods = counter_methods,
    .n_methods = sizeof counter_methods / sizeof counter_methods[0],
};

int bench_counter_get(const xo_ref_t *ref, int64_t *value_p)
{
    xo_result_t *r = NULL;
    BENCH_CHECK(xo_call(ref, "get", NULL, XO_FOREVER, &r));
    xo_status_t st = xo_result_unpack(r, "l", value_p);
    xo_result_free(r);
    BENCH_CHECK(st);
    return 0;
}
