/* Collectives (issue #5): allreduce, reduce, gather, scatter and alltoall among three members (XO_BENCH_COLL_MEMBERS)
 * in as many processes of one host (the main pool and sub pools, each owning a host device), host backend.
 *
 *   coll.allreduce.8B.p50/p99     latency of an allreduce of two floats, as rank 0 sees it (us)
 *   coll.allreduce.8B.inpool.p50  the same with the three members in one pool (the main pool): the runtime's own
 *                                 cost, without a transport (us)
 *   coll.allreduce.16MiB.busbw    bus bandwidth of a 16 MiB float sum (nccl-tests' definition: 2(n-1)/n * bytes /
 *                                 time, what each member moves in and out), GB/s, against a memcpy of 16 MiB in the
 *                                 same run
 *   coll.memcpy.16MiB             that memcpy (the host's copy limit), GB/s
 *   coll.allreduce.16MiB.busbw_msg the same allreduce over messages (XO_COLL_SHM=0: the ring), GB/s, against the
 *                                 shared-memory path above in the same run
 *   coll.barrier.p50              a barrier (us): the rooted operations below are each timed with one after them
 *                                 (members off root would otherwise run ahead of root over messages)
 *   coll.OP.8B.p50                OP = reduce, gather, scatter (root 0), alltoall: 8 B per member (per block), rank
 *                                 0's latency (us): the tree or single messages
 *   coll.OP.16MiB.busbw(_msg)     16 MiB: reduce's buffer, gather's gathered (scatter's scattered) buffer, each
 *                                 member's alltoall buffer; nccl-tests' bus bandwidth (reduce: bytes / time; the
 *                                 others: (n-1)/n * bytes / time), shared memory and over messages, GB/s
 *
 * The member actor is in bench_coll_module.c (module xo_bench_coll). */
#include <stdbool.h>
#include <string.h>

#include <xoscar/host.h>

#include "bench.h"

#ifndef XO_BENCH_COLL_MODULE
#error "XO_BENCH_COLL_MODULE (path of the xo_bench_coll module) must be defined by the build"
#endif
#ifndef XO_BENCH_POOL_BINARY
#define XO_BENCH_POOL_BINARY NULL
#endif

#define MEMBERS_MAX 8

/* The group size: 3 by default, XO_BENCH_COLL_MEMBERS=2..8 to change it (on 2 CPUs, 3 processes of threads that
 * spin and sleep already oversubscribe the machine; 2 shows the transport without that). */
static int members(void)
{
    const char *e = getenv("XO_BENCH_COLL_MEMBERS");
    int n = e ? atoi(e) : 3;
    return n < 2 ? 2 : n > MEMBERS_MAX ? MEMBERS_MAX : n;
}

static const bench_metric_spec_t lat_p50 = {.name = "coll.allreduce.8B.p50", .unit = "us"};
static const bench_metric_spec_t lat_p99 = {.name = "coll.allreduce.8B.p99", .unit = "us"};
static const bench_metric_spec_t busbw = {.name = "coll.allreduce.16MiB.busbw", .unit = "GB/s",
                                          .ref = "coll.memcpy.16MiB"};
static const bench_metric_spec_t lat_inpool = {.name = "coll.allreduce.8B.inpool.p50", .unit = "us"};
static const bench_metric_spec_t memcpy_bw = {.name = "coll.memcpy.16MiB", .unit = "GB/s"};
static const bench_metric_spec_t busbw_msg = {.name = "coll.allreduce.16MiB.busbw_msg", .unit = "GB/s",
                                              .ref = "coll.allreduce.16MiB.busbw"};

/* The rooted operations and all-to-all: their latency and bandwidth metrics (names are static storage). */
#define OPS_N 4
static const char *const ops[OPS_N] = {"reduce", "gather", "scatter", "alltoall"};
static const bench_metric_spec_t op_lat[OPS_N] = {
    {.name = "coll.reduce.8B.p50", .unit = "us"},  {.name = "coll.gather.8B.p50", .unit = "us"},
    {.name = "coll.scatter.8B.p50", .unit = "us"}, {.name = "coll.alltoall.8B.p50", .unit = "us"}};
static const bench_metric_spec_t op_bw[OPS_N] = {
    {.name = "coll.reduce.16MiB.busbw", .unit = "GB/s", .ref = "coll.memcpy.16MiB"},
    {.name = "coll.gather.16MiB.busbw", .unit = "GB/s", .ref = "coll.memcpy.16MiB"},
    {.name = "coll.scatter.16MiB.busbw", .unit = "GB/s", .ref = "coll.memcpy.16MiB"},
    {.name = "coll.alltoall.16MiB.busbw", .unit = "GB/s", .ref = "coll.memcpy.16MiB"}};
static const bench_metric_spec_t op_bw_msg[OPS_N] = {
    {.name = "coll.reduce.16MiB.busbw_msg", .unit = "GB/s", .ref = "coll.reduce.16MiB.busbw"},
    {.name = "coll.gather.16MiB.busbw_msg", .unit = "GB/s", .ref = "coll.gather.16MiB.busbw"},
    {.name = "coll.scatter.16MiB.busbw_msg", .unit = "GB/s", .ref = "coll.scatter.16MiB.busbw"},
    {.name = "coll.alltoall.16MiB.busbw_msg", .unit = "GB/s", .ref = "coll.alltoall.16MiB.busbw"}};

/* Runs one loop of op (NULL: the allreduce method) on every member at once, count floats per member or block;
 * *p50_p and *p99_p are rank 0's. */
static int run_op(xo_host_t *host, xo_ref_t **m, const char *name, const char *op, int64_t count, int iters,
                  double *p50_p, double *p99_p)
{
    const int n = members();
    xo_future_t *f[MEMBERS_MAX] = {0};
    int rc = 0;
    for (int r = 0; r < n; r++) {
        const char *rdv = xo_host_address(host);
        xo_status_t st = op ? xo_send(m[r], "op", xo_args("siissli", name, r, n, rdv, op, count, iters), &f[r])
                            : xo_send(m[r], "allreduce", xo_args("siisli", name, r, n, rdv, count, iters), &f[r]);
        if (st != XO_OK) rc = -1;
    }
    for (int r = 0; r < n; r++) {
        xo_result_t *res = NULL;
        if (!f[r]) continue;
        if (xo_future_wait(f[r], 120000, &res) != XO_OK) {
            fprintf(stderr, "coll: rank %d: %s\n", r, xo_last_error());
            rc = -1;
        } else if (r == 0) {
            xo_result_unpack(res, "[dd]", p50_p, p99_p);
        }
        xo_result_free(res);
        xo_future_free(f[r]);
    }
    return rc;
}

static int run_group(xo_host_t *host, xo_ref_t **m, const char *name, int64_t count, int iters, double *p50_p,
                     double *p99_p)
{
    return run_op(host, m, name, NULL, count, iters, p50_p, p99_p);
}

/* The rooted operations and all-to-all: 8 B latency (shm run only: small ones take messages either way) and 16 MiB
 * bus bandwidth. */
static const bench_metric_spec_t barrier_lat = {.name = "coll.barrier.p50", .unit = "us"};

static int run_ops(const bench_opts_t *opts, xo_host_t *host, xo_ref_t **m, bool shm)
{
    const int n = members();
    const double big = (double)(16u << 20);
    double p50 = 0, p99 = 0;
    if (shm && run_op(host, m, "bench.barrier", "barrier", 1, opts->quick ? 20 : 300, &p50, &p99) != 0) return -1;
    if (shm) bench_report(&barrier_lat, p50);
    for (int i = 0; i < OPS_N; i++) {
        char name[64];
        snprintf(name, sizeof name, "bench.%s.lat", ops[i]);
        if (shm && run_op(host, m, name, ops[i], 2, opts->quick ? 20 : 300, &p50, &p99) != 0) return -1;
        if (shm) bench_report(&op_lat[i], p50);
        if (opts->quick) continue;
        bool reduce = i == 0;
        int64_t count = (int64_t)(big / sizeof(float)) / (reduce ? 1 : n);
        snprintf(name, sizeof name, "bench.%s.bw", ops[i]);
        if (run_op(host, m, name, ops[i], count, 10, &p50, &p99) != 0) return -1;
        double bytes = (double)count * sizeof(float) * (reduce ? 1 : n);
        bench_report(shm ? &op_bw[i] : &op_bw_msg[i], (reduce ? 1.0 : (double)(n - 1) / n) * bytes / (p50 * 1e3));
    }
    return 0;
}

/* One host of members() pools; shm false starts it with XO_COLL_SHM=0 (the pools inherit it). */
static int run_host(const bench_opts_t *opts, bool shm)
{
    const int n = members();
    const char *modules[] = {XO_BENCH_COLL_MODULE};
    xo_sub_pool_config_t subs[MEMBERS_MAX - 1];
    for (int i = 0; i < n - 1; i++)
        subs[i] = (xo_sub_pool_config_t){.n_threads = 1, .device = "host:0", .device_capacity = 256u << 20};
    xo_host_config_t cfg = {.n_sub_pools = (unsigned)n - 1, .sub_pools = subs, .modules = modules, .n_modules = 1,
                            .main_device = "host:0", .main_device_capacity = 256u << 20,
                            .pool_binary = XO_BENCH_POOL_BINARY};
    xo_host_t *host = NULL;
    if (!shm) setenv("XO_COLL_SHM", "0", 1);
    xo_status_t hst = xo_host_start(&cfg, &host);
    if (hst != XO_OK) unsetenv("XO_COLL_SHM");
    if (hst != XO_OK) {
        fprintf(stderr, "coll: starting the host: %s\n", xo_last_error());
        return -1;
    }
    xo_ref_t *m[MEMBERS_MAX] = {0};
    int rc = 0;
    for (int r = 0; r < n && rc == 0; r++) {
        xo_placement_t p = {.strategy = "process_index", .process_index = (size_t)r};
        if (xo_host_create_actor(host, "BenchCollMember", NULL, NULL, &p, &m[r]) != XO_OK) {
            fprintf(stderr, "coll: creating member %d: %s\n", r, xo_last_error());
            rc = -1;
        }
    }
    double p50 = 0, p99 = 0;
    if (rc == 0 && shm && (rc = run_group(host, m, "bench.lat", 2, opts->quick ? 50 : 1000, &p50, &p99)) == 0) {
        bench_report(&lat_p50, p50);
        bench_report(&lat_p99, p99);
    }
    xo_ref_t *local[MEMBERS_MAX] = {0};
    for (int r = 0; r < n && rc == 0 && shm; r++) {
        xo_placement_t p = {.strategy = "process_index", .process_index = 0};
        if (xo_host_create_actor(host, "BenchCollMember", NULL, NULL, &p, &local[r]) != XO_OK) rc = -1;
    }
    if (rc == 0 && shm && (rc = run_group(host, local, "bench.local", 2, opts->quick ? 50 : 1000, &p50, &p99)) == 0)
        bench_report(&lat_inpool, p50);
    for (int r = 0; r < n; r++) xo_ref_free(local[r]);
    const int64_t big = (int64_t)(16u << 20) / (int64_t)sizeof(float);
    if (rc == 0 && !opts->quick && (rc = run_group(host, m, "bench.bw", big, 10, &p50, &p99)) == 0) {
        double bytes = (double)big * sizeof(float);
        bench_report(shm ? &busbw : &busbw_msg, 2.0 * (n - 1) / n * bytes / (p50 * 1e3));
        size_t n = (size_t)bytes;
        char *a = shm ? malloc(n) : NULL, *b = shm ? malloc(n) : NULL;
        if (a && b) {
            memset(a, 1, n), memset(b, 2, n); /* touched first: a copy into fresh pages measures page faults */
            uint64_t best = UINT64_MAX;
            for (int i = 0; i < 5; i++) {
                uint64_t t0 = bench_now_ns();
                memcpy(b, a, n);
                uint64_t t = bench_now_ns() - t0;
                if (t < best) best = t;
            }
            bench_report(&memcpy_bw, bytes / (double)best);
        }
        free(a), free(b);
    }
    if (rc == 0) rc = run_ops(opts, host, m, shm);
    for (int r = 0; r < n; r++) xo_ref_free(m[r]);
    xo_host_stop(host);
    unsetenv("XO_COLL_SHM");
    return rc;
}

int bench_coll(const bench_opts_t *opts)
{
    int rc = run_host(opts, true);
    return rc == 0 && !opts->quick ? run_host(opts, false) : rc;
}
