/* Bulk data (issue #14): large arguments and results per path, each against the memcpy of the same size.
 *
 *   bulk_memcpy   the limits: bulk.memcpy.<size> (warm buffers, repeated) and bulk.memcpy_fresh.<size> (into a newly
 *                 mmapped region each time: page faults and zeroing included), GB/s = 1e9 B/s
 *   bulk_direct   the target in the caller's own pool (in process), then over shm, unix and TCP loopback: the same
 *   bulk_shm      targets as bench_remote.c (bench_remote_setup), one forked process per path
 *   bulk_unix
 *   bulk_tcp
 *
 * Per path and size (64 KiB, 1 MiB, 16 MiB, 64 MiB, 256 MiB; --quick: the first two), each call timed on its own
 * from a plain thread, building the argument included (a copy of the payload, as a user pays it):
 *   bulk.<p>.args.<size>    size / p50 of xo_call(echo, "len", bytes[size]): the payload goes one way
 *   bulk.<p>.lent.<size>    the same with the payload lent ('B': not copied into the arguments)
 *   bulk.<p>.result.<size>  size / p50 of xo_call(echo, "fill", size), the reply unpacked: it comes back
 *   bulk.<p>.result_lent.<size>  the same with "fill_lent": the method lends the bytes to its result ('B')
 *   bulk.<p>.rtt8           p50 of the 8-byte "len" call (us)
 *   bulk.<p>.call1MiB_vs_limit  p50 of the 1 MiB call / (one warm memcpy of 1 MiB + rtt8), both measured in the
 *                           same process: the target is <= 2; bulk.<p>.lent1MiB_vs_limit the same, lent
 * XO_BENCH_BULK_MAX=<bytes> leaves out the larger sizes. Before timing a size, one "sum" call checks that the bytes
 * arrived (the target folds what it got, we compare) and one "fill" call checks the bytes that come back. */
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "bench_fold.h"
#include "bench_remote.h"

#define N_BULK 5
#define CALL_TIMEOUT_MS 120000

static const size_t bulk_sizes[N_BULK] = {64u << 10, 1u << 20, 16u << 20, 64u << 20, 256u << 20};
static const size_t bulk_calls[N_BULK] = {2000, 400, 40, 12, 5};
static const size_t bulk_calls_quick[N_BULK] = {200, 30, 0, 0, 0};

/* ---- metric specs ---------------------------------------------------------------------------------------------- */

#define SIZES5(PRE, SUF, ...)                                                                                     \
    {                                                                                                           \
        {.name = PRE ".64KiB" SUF, .unit = "GB/s", .ref = "bulk.memcpy.64KiB"},                                 \
            {.name = PRE ".1MiB" SUF, .unit = "GB/s", .ref = "bulk.memcpy.1MiB" __VA_ARGS__},                   \
            {.name = PRE ".16MiB" SUF, .unit = "GB/s", .ref = "bulk.memcpy.16MiB" __VA_ARGS__},                 \
            {.name = PRE ".64MiB" SUF, .unit = "GB/s", .ref = "bulk.memcpy.64MiB" __VA_ARGS__},                 \
            {.name = PRE ".256MiB" SUF, .unit = "GB/s", .ref = "bulk.memcpy.256MiB" __VA_ARGS__},               \
    }

static const bench_metric_spec_t m_memcpy[N_BULK] = {
    {.name = "bulk.memcpy.64KiB", .unit = "GB/s"},  {.name = "bulk.memcpy.1MiB", .unit = "GB/s"},
    {.name = "bulk.memcpy.16MiB", .unit = "GB/s"},  {.name = "bulk.memcpy.64MiB", .unit = "GB/s"},
    {.name = "bulk.memcpy.256MiB", .unit = "GB/s"},
};
static const bench_metric_spec_t m_fresh[N_BULK] = SIZES5("bulk.memcpy_fresh", "");

typedef struct pspecs {
    bench_metric_spec_t args[N_BULK], lent[N_BULK], result[N_BULK], result_lent[N_BULK], rtt8, limit1m, limit1m_lent;
} pspecs_t;

/* The targets apply between processes of a host: shm, the default same-host path. */
#define PSPECS(P, GOAL, LIM)                                                                                     \
    {                                                                                                           \
        .args = SIZES5("bulk." P ".args", ""), .lent = SIZES5("bulk." P ".lent", "", GOAL),                   \
        .result = SIZES5("bulk." P ".result", ""), .result_lent = SIZES5("bulk." P ".result_lent", ""),         \
        .rtt8 = {.name = "bulk." P ".rtt8", .unit = "us"},         \
        .limit1m = {.name = "bulk." P ".call1MiB_vs_limit", .unit = "x"},                                       \
        .limit1m_lent = {.name = "bulk." P ".lent1MiB_vs_limit", .unit = "x" LIM},                              \
    }
#define SHM_GOAL , .goal = BENCH_GOAL_RATIO_MIN, .target = 0.8
#define SHM_LIM , .goal = BENCH_GOAL_VALUE_MAX, .target = 2.0
#define NO_

static const pspecs_t specs_direct = PSPECS("direct", NO_, NO_);
static const pspecs_t specs_shm = PSPECS("shm", SHM_GOAL, SHM_LIM);
static const pspecs_t specs_unix = PSPECS("unix", NO_, NO_);
static const pspecs_t specs_tcp = PSPECS("tcp", NO_, NO_);

/* The sizes run: --quick the first two; XO_BENCH_BULK_MAX=<bytes> stops earlier (for an A/B against a build whose
 * frame limit is below 256 MiB plus an envelope). */
static size_t n_sizes(const bench_opts_t *o)
{
    size_t n = o->quick ? 2 : N_BULK;
    const char *e = getenv("XO_BENCH_BULK_MAX");
    size_t max = e ? (size_t)strtoull(e, NULL, 10) : 0;
    while (max && n > 1 && bulk_sizes[n - 1] > max) n--;
    return n;
}

/* ---- the limits ------------------------------------------------------------------------------------------------ */

static double gbps(size_t bytes, uint64_t ns) { return ns ? (double)bytes / (double)ns : 0; }

int bench_bulk_memcpy(const bench_opts_t *opts)
{
    size_t total = opts->quick ? (64u << 20) : (1u << 30);
    for (size_t k = 0; k < n_sizes(opts); k++) {
        size_t size = bulk_sizes[k], reps = total / size < 3 ? 3 : total / size;
        char *src = malloc(size), *dst = malloc(size);
        if (!src || !dst) return -1;
        memset(src, 1, size);
        memset(dst, 2, size);
        memcpy(dst, src, size);
        uint64_t t0 = bench_now_ns();
        for (size_t r = 0; r < reps; r++) {
            memcpy(dst, src, size);
            __asm__ volatile("" ::"r"(dst) : "memory"); /* keep every copy */
        }
        bench_report(&m_memcpy[k], gbps(size * reps, bench_now_ns() - t0));
        free(dst);
        /* Fresh pages every time: mmap'd, copied into, unmapped (malloc would reuse small blocks). */
        size_t freps = (opts->quick ? (32u << 20) : (256u << 20)) / size;
        if (freps < 3) freps = 3;
        t0 = bench_now_ns();
        for (size_t r = 0; r < freps; r++) {
            void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) return -1;
            memcpy(m, src, size);
            __asm__ volatile("" ::"r"(m) : "memory");
            munmap(m, size);
        }
        bench_report(&m_fresh[k], gbps(size * freps, bench_now_ns() - t0));
        free(src);
    }
    return 0;
}

/* ---- one path ---------------------------------------------------------------------------------------------------- */

static char *g_payload;
static uint64_t *g_lat;

/* p50 (ns) of n timed calls of echo.len(payload[size]) after warm untimed ones; lent: the payload passed with 'B'. */
static int time_args(const setup_t *s, size_t size, size_t n, bool lent, uint64_t *p50)
{
    size_t warm = n / 10 ? n / 10 : 1;
    for (size_t i = 0; i < warm + n; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns();
        xo_status_t st = xo_call(s->echo, "len", xo_args(lent ? "B" : "b", g_payload, size), CALL_TIMEOUT_MS, &r);
        uint64_t t1 = bench_now_ns();
        uint64_t got = 0;
        if (st == XO_OK) st = xo_result_unpack(r, "u", &got);
        xo_result_free(r);
        if (st != XO_OK || got != size) {
            fprintf(stderr, "bulk: len(%zu bytes) call %zu: %s: %s (len %llu)\n", size, i, xo_status_name(st),
                    xo_last_error(), (unsigned long long)got);
            return -1;
        }
        if (i >= warm) g_lat[i - warm] = t1 - t0;
    }
    *p50 = (uint64_t)bench_percentile(g_lat, n, 50);
    return 0;
}

/* p50 (ns) of n timed echo.fill(size) calls (lent: echo.fill_lent), the reply unpacked as bytes of that length. */
static int time_result(const setup_t *s, size_t size, size_t n, bool lent, uint64_t *p50)
{
    const char *method = lent ? "fill_lent" : "fill";
    size_t warm = n / 10 ? n / 10 : 1;
    for (size_t i = 0; i < warm + n; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns();
        xo_status_t st = xo_call(s->echo, method, xo_args("u", (uint64_t)size), CALL_TIMEOUT_MS, &r);
        xo_bytes_t b = {0};
        if (st == XO_OK) st = xo_result_unpack(r, "b", &b);
        uint64_t t1 = bench_now_ns();
        if (st == XO_OK && b.len != size) st = XO_EPROTO;
        if (st == XO_OK && i == 0 && bench_fold(b.ptr, b.len) != bench_fold(g_payload, size)) {
            fprintf(stderr, "bulk: %s(%zu) returned other bytes\n", method, size);
            st = XO_EPROTO;
        }
        xo_result_free(r);
        if (st != XO_OK) {
            fprintf(stderr, "bulk: %s(%zu) call %zu: %s: %s\n", method, size, i, xo_status_name(st), xo_last_error());
            return -1;
        }
        if (i >= warm) g_lat[i - warm] = t1 - t0;
    }
    *p50 = (uint64_t)bench_percentile(g_lat, n, 50);
    return 0;
}

static int check_sum(const setup_t *s, size_t size, bool lent)
{
    xo_result_t *r = NULL;
    uint64_t got = 0;
    BENCH_CHECK(xo_call(s->echo, "sum", xo_args(lent ? "B" : "b", g_payload, size), CALL_TIMEOUT_MS, &r));
    xo_status_t st = xo_result_unpack(r, "u", &got);
    xo_result_free(r);
    BENCH_CHECK(st);
    if (got != bench_fold(g_payload, size)) {
        fprintf(stderr, "bulk: the target received other bytes (%zu)\n", size);
        return -1;
    }
    return 0;
}

/* Median ns of one warm memcpy of size bytes, in this process (the limit of call1MiB_vs_limit). */
static uint64_t memcpy_ns(size_t size)
{
    char *src = malloc(size), *dst = malloc(size);
    if (!src || !dst) {
        free(src);
        free(dst);
        return 0;
    }
    memset(src, 1, size);
    memset(dst, 2, size);
    uint64_t lat[101];
    for (int i = 0; i < 101; i++) {
        uint64_t t0 = bench_now_ns();
        memcpy(dst, src, size);
        __asm__ volatile("" ::"r"(dst) : "memory");
        lat[i] = bench_now_ns() - t0;
    }
    free(src);
    free(dst);
    return (uint64_t)bench_percentile(lat, 101, 50);
}

static int run_path(const bench_opts_t *opts, transport_t t, const pspecs_t *sp)
{
    size_t max = bulk_sizes[n_sizes(opts) - 1];
    if (!g_payload) {
        g_payload = malloc(max);
        g_lat = malloc(4000 * sizeof *g_lat);
        if (!g_payload || !g_lat) return -1;
        for (size_t i = 0; i < max; i++) g_payload[i] = (char)(i * 131u); /* the pattern of the module's "fill" */
    }
    setup_t s;
    if (bench_remote_setup(opts, t, &s) != 0) return -1;
    int rc = 0;
    uint64_t rtt8 = 0, call1m = 0, lent1m = 0;
    if (time_args(&s, 8, opts->quick ? 300 : 3000, false, &rtt8) != 0) rc = -1;
    if (rc == 0) bench_report(&sp->rtt8, (double)rtt8 / 1e3);
    for (size_t k = 0; rc == 0 && k < n_sizes(opts); k++) {
        size_t size = bulk_sizes[k], n = opts->quick ? bulk_calls_quick[k] : bulk_calls[k];
        uint64_t p50 = 0;
        if (check_sum(&s, size, false) != 0 || time_args(&s, size, n, false, &p50) != 0) {
            rc = -1;
            break;
        }
        bench_report(&sp->args[k], gbps(size, p50));
        if (k == 1) call1m = p50;
        if (check_sum(&s, size, true) != 0 || time_args(&s, size, n, true, &p50) != 0) {
            rc = -1;
            break;
        }
        bench_report(&sp->lent[k], gbps(size, p50));
        if (k == 1) lent1m = p50;
        if (time_result(&s, size, n, false, &p50) != 0) {
            rc = -1;
            break;
        }
        bench_report(&sp->result[k], gbps(size, p50));
        if (time_result(&s, size, n, true, &p50) != 0) {
            rc = -1;
            break;
        }
        bench_report(&sp->result_lent[k], gbps(size, p50));
    }
    bench_remote_teardown(&s);
    uint64_t lim = memcpy_ns(1u << 20) + rtt8;
    if (rc == 0 && lim) bench_report(&sp->limit1m, (double)call1m / (double)lim);
    if (rc == 0 && lim) bench_report(&sp->limit1m_lent, (double)lent1m / (double)lim);
    return rc;
}

int bench_bulk_direct(const bench_opts_t *opts) { return run_path(opts, T_DIRECT, &specs_direct); }
int bench_bulk_shm(const bench_opts_t *opts) { return run_path(opts, T_SHM, &specs_shm); }
int bench_bulk_unix(const bench_opts_t *opts) { return run_path(opts, T_UNIX, &specs_unix); }
int bench_bulk_tcp(const bench_opts_t *opts) { return run_path(opts, T_TCP, &specs_tcp); }
