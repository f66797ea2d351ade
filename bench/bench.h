/* xoscar-bench: what every benchmark file shares.
 *
 * A benchmark is one function that performs ONE repetition and reports one or more metrics through bench_report().
 * The runner (main.c) calls it opts.runs times and prints, per metric, the median and the min/max over the runs.
 * Benchmarks use only the public API <xoscar/xoscar.h>: they measure what a user of the library gets. */
#ifndef XO_BENCH_H
#define XO_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <xoscar/xoscar.h>

typedef struct bench_opts {
    bool quick;          /* smoke sizes: the whole suite in a few seconds */
    int runs;            /* repetitions per benchmark */
    unsigned threads;    /* scheduler threads per pool (0: the runtime's default, one per CPU) */
    const char *device;  /* the device benchmarks' device: "host" (default), "cuda", "cuda:1" (bench_device.c) */
    int hog;             /* busy-looping processes beside the benchmarks (--hog N) */
} bench_opts_t;

/* How a metric is judged. The ratio column is value / ref's value when ref is set (throughput against the bare
 * queue, batch against single calls...), else value / target. */
typedef enum {
    BENCH_GOAL_NONE = 0,
    BENCH_GOAL_RATIO_MIN,   /* the ratio to ref must be >= target */
    BENCH_GOAL_RATIO_MAX,   /* the ratio to ref must be <= target */
    BENCH_GOAL_VALUE_MAX,   /* the value itself must be <= target (latencies, bytes) */
    BENCH_GOAL_VALUE_MIN,   /* the value itself must be >= target (rates); ratio = value / target, >= 1 is met */
} bench_goal_t;

typedef struct bench_metric_spec {
    const char *name;       /* unique across the suite, "group.what" */
    const char *unit;       /* "msg/s", "us", "ns", "B" */
    const char *ref;        /* metric whose median is the denominator of the ratio, or NULL */
    bench_goal_t goal;
    double target;
    const char *note;       /* one line printed under the table when set */
} bench_metric_spec_t;

/* Records one repetition's value of a metric. */
void bench_report(const bench_metric_spec_t *spec, double value);

/* Marks a benchmark as skipped for this run with a printed reason (a runtime crash or hang we reduced). */
void bench_skip(const char *bench, const char *why);

typedef struct bench_entry {
    const char *name;
    const char *doc;
    int (*fn)(const bench_opts_t *opts); /* 0 on success; non-zero aborts this benchmark's remaining runs */
} bench_entry_t;

/* ---- small helpers -------------------------------------------------------------------------------------------- */

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Percentile (0..100) of n samples; sorts v in place. */
double bench_percentile(uint64_t *v, size_t n, double pct);

/* Resident set size of this process in bytes, from /proc/self/statm. */
size_t bench_rss_bytes(void);

/* A pool configured the same way for every benchmark. Exits on failure: nothing can be measured without it. */
xo_pool_t *bench_pool_start(const bench_opts_t *opts);

/* Fails the repetition with a message naming the call when st is not XO_OK. */
#define BENCH_CHECK(expr)                                                                                   \
    do {                                                                                                    \
        xo_status_t st_ = (expr);                                                                           \
        if (st_ != XO_OK) {                                                                                 \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, xo_status_name(st_),        \
                    xo_last_error());                                                                       \
            return -1;                                                                                      \
        }                                                                                                   \
    } while (0)

/* The payload sizes of the cross-process suite (and of the memcpy limit): 8 B, 1 KiB, 64 KiB, 1 MiB, 64 MiB. */
#define BENCH_N_SIZES 5
extern const size_t bench_sizes[BENCH_N_SIZES];
extern const char *const bench_size_names[BENCH_N_SIZES];

/* A stateful counter: "inc" (no arguments, extensible, replies nil) and "get" (replies the count). */
extern const xo_actor_class_t bench_counter_class;
/* Calls "get" and waits: since calls from one sender run in order, it also waits for that sender's tells. */
int bench_counter_get(const xo_ref_t *ref, int64_t *value_p);

#endif
