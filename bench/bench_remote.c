/* Cross-process calls and tells (issue #3): one benchmark per transport, so that each runs in its own forked process
 * (XO_TRANSPORT is read when a connection is made and connections are cached per address per process).
 *
 *   remote_direct  the target actor in the caller's own pool (the host's main pool): the in-process reference
 *   remote_shm     the target in sub pool 1 of a host (an xoscar-pool process), XO_TRANSPORT=shm
 *   remote_unix    the same over the unix socket, XO_TRANSPORT=unix
 *   remote_tcp     the target in a stand-alone xoscar-pool at 127.0.0.1:0 over TCP loopback, XO_TRANSPORT=tcp.
 *                  Only a main pool ("host:port") listens on TCP; a sub pool ("host:port/N") is reached over shm or
 *                  unix only (transport/router.c), so the TCP peer is an xoscar-pool started with a
 *                  main-pool address (the same binary and module as a sub pool).
 *
 * The target is BenchEcho from the bench module (bench_remote_module.c); the caller is the bench process, whose
 * main pool (xo_host_start, 1 scheduler thread by default) also loads the module. Per payload size (8 B, 1 KiB,
 * 64 KiB, 1 MiB, 64 MiB; --quick stops at 1 MiB), every call timed on its own, the time including building the
 * bytes argument (a copy of the payload) as a user pays it:
 *
 *   <t>.call.<size>.p50/p99  xo_call(echo, "len", bytes) from a plain thread (the benchmark's main thread)
 *   <t>.a2a.<size>.p50/p99   the same from a method of an actor in the main pool (xo_call suspends its fiber only);
 *                            timed inside the method
 *   <t>.bw.<size>            payload bytes / call.p50 for 1 MiB and 64 MiB: the one-way transfer rate of a call
 *                            (GB/s), against memcpy of the same size
 *   <t>.tell.<size>          N xo_tell(echo, "add", bytes), then one "get" that returns after all of them ran
 *                            (calls from one sender run in order); msg/s over the whole, count checked
 *   <t>.calls_seq            sequential xo_call(echo, "ping") from one thread, calls/s
 *   <t>.calls_conc64         xo_send with 64 futures outstanding (a sliding window), calls/s */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xoscar/host.h>
#include <xoscar/module.h>

#include "bench.h"
#include "bench_remote.h"

#ifndef XO_BENCH_MODULE
#error "XO_BENCH_MODULE (path of the xo_bench_actors module) must be defined by the build"
#endif
#ifndef XO_BENCH_POOL_BINARY
#define XO_BENCH_POOL_BINARY NULL
#endif

#define CALL_TIMEOUT_MS 60000
#define CONC_WINDOW 64

/* ---- metric specs: static, so that the parent can read what a forked child reports ------------------------- */

typedef struct tspecs {
    bench_metric_spec_t call_p50[BENCH_N_SIZES], call_p99[BENCH_N_SIZES];
    bench_metric_spec_t a2a_p50[BENCH_N_SIZES], a2a_p99[BENCH_N_SIZES];
    bench_metric_spec_t tell[BENCH_N_SIZES];
    bench_metric_spec_t bw_1m, bw_64m;
    bench_metric_spec_t seq, conc;
} tspecs_t;

/* Five specs, one per size; the variadic part goes into the 8-byte one (its ref and target). */
#define SPECS5(T, K, P, U, ...)                                                                                   \
    {                                                                                                           \
        {.name = T "." K ".8B" P, .unit = U, __VA_ARGS__}, {.name = T "." K ".1KiB" P, .unit = U},              \
            {.name = T "." K ".64KiB" P, .unit = U}, {.name = T "." K ".1MiB" P, .unit = U},                    \
            {.name = T "." K ".64MiB" P, .unit = U},                                                            \
    }

/* LAT0, TELL0, BW64, RATE: extra fields (each starting with a comma, or empty) for the 8-byte round trips, the
 * 8-byte tells, the 64 MiB bandwidth and the call rates. */
#define TSPECS(T, LAT0, TELL0, BW64, RATE)                                                                       \
    {                                                                                                           \
        .call_p50 = SPECS5(T, "call", ".p50", "us" LAT0), .call_p99 = SPECS5(T, "call", ".p99", "us"),          \
        .a2a_p50 = SPECS5(T, "a2a", ".p50", "us" LAT0), .a2a_p99 = SPECS5(T, "a2a", ".p99", "us"),              \
        .tell = SPECS5(T, "tell", "", "msg/s" TELL0),                                                           \
        .bw_1m = {.name = T ".bw.1MiB", .unit = "GB/s", .ref = "memcpy.1MiB"},                                  \
        .bw_64m = {.name = T ".bw.64MiB", .unit = "GB/s", .ref = "memcpy.64MiB" BW64},                          \
        .seq = {.name = T ".calls_seq", .unit = "call/s" RATE},                                                 \
        .conc = {.name = T ".calls_conc64", .unit = "call/s" RATE},                                             \
    }

/* The targets apply to the default same-host transport, shm. */
#define SHM_LAT0 , .ref = "shmraw.rtt_p50", .goal = BENCH_GOAL_RATIO_MAX, .target = 2.0
#define SHM_TELL0 , .goal = BENCH_GOAL_VALUE_MIN, .target = 5e6
#define SHM_BW64 , .goal = BENCH_GOAL_RATIO_MIN, .target = 0.8
#define SHM_RATE , .goal = BENCH_GOAL_VALUE_MIN, .target = 2e5
#define NONE_

static const tspecs_t specs_direct = TSPECS("direct", NONE_, NONE_, NONE_, NONE_);
static const tspecs_t specs_shm = TSPECS("shm", SHM_LAT0, SHM_TELL0, SHM_BW64, SHM_RATE);
static const tspecs_t specs_unix = TSPECS("unix", NONE_, NONE_, NONE_, NONE_);
static const tspecs_t specs_tcp = TSPECS("tcp", NONE_, NONE_, NONE_, NONE_);

/* ---- iteration counts --------------------------------------------------------------------------------------- */

static size_t n_calls(const bench_opts_t *o, int k)
{
    static const size_t full[BENCH_N_SIZES] = {5000, 5000, 1000, 200, 6};
    static const size_t quick[BENCH_N_SIZES] = {300, 300, 50, 10, 0};
    return o->quick ? quick[k] : full[k];
}

static size_t n_tells(const bench_opts_t *o, int k)
{
    static const size_t full[BENCH_N_SIZES] = {200000, 100000, 5000, 500, 8};
    static const size_t quick[BENCH_N_SIZES] = {10000, 5000, 200, 20, 0};
    return o->quick ? quick[k] : full[k];
}

static char *g_payload;  /* the largest payload, filled once; every call sends a prefix of it */
static uint64_t *g_lat;  /* samples: written by the driver's method or the main thread, one at a time */

/* ---- the caller actor in the main pool: actor-to-actor round trips -------------------------------------------- */

/* "rtt" (s address, s uid, u size, u n): n calls of peer.len(bytes[size]), each timed into g_lat[0..n). */
static xo_status_t driver_rtt(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t addr, uid;
    uint64_t size, n;
    xo_status_t st = xo_unpack(args, "ssuu", &addr, &uid, &size, &n);
    if (st != XO_OK) return st;
    char a[256], u[128];
    snprintf(a, sizeof a, "%.*s", (int)addr.len, addr.ptr);
    snprintf(u, sizeof u, "%.*s", (int)uid.len, uid.ptr);
    xo_ref_t *peer;
    st = xo_actor_ref(a, u, &peer);
    if (st != XO_OK) return xo_ctx_error(ctx, st, "ref %s/%s: %s", a, u, xo_last_error());
    for (uint64_t i = 0; i < n && st == XO_OK; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = bench_now_ns();
        st = xo_call(peer, "len", xo_args("b", g_payload, (size_t)size), CALL_TIMEOUT_MS, &r);
        uint64_t t1 = bench_now_ns();
        uint64_t got = 0;
        if (st == XO_OK && (xo_result_unpack(r, "u", &got) != XO_OK || got != size)) {
            st = xo_ctx_error(ctx, XO_EPROTO, "len replied %llu, sent %llu", (unsigned long long)got,
                              (unsigned long long)size);
        } else if (st != XO_OK) {
            st = xo_ctx_error(ctx, st, "call %llu: %s", (unsigned long long)i, xo_last_error());
        }
        xo_result_free(r);
        g_lat[i] = t1 - t0;
    }
    xo_ref_free(peer);
    return st;
}

static const xo_method_t driver_methods[] = {{.name = "rtt", .fn = driver_rtt}};
static const xo_actor_class_t driver_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "BenchRemoteDriver",
    .methods = driver_methods,
    .n_methods = 1,
};

/* ---- set-up: a host, the target pool, the two actors ---------------------------------------------------------- */


/* Starts `xoscar-pool --address 127.0.0.1:0` with the bench module; its final address comes back on a pipe. */
static int start_server(const bench_opts_t *opts, setup_t *s)
{
    const char *bin = getenv("XO_POOL_BINARY");
    if (!bin) bin = XO_BENCH_POOL_BINARY;
    if (!bin) {
        fprintf(stderr, "remote_tcp: no xoscar-pool binary (set XO_POOL_BINARY)\n");
        return -1;
    }
    int fds[2];
    if (pipe(fds) != 0) return -1;
    char fd_s[16], thr_s[16], ppid_s[24];
    snprintf(fd_s, sizeof fd_s, "%d", fds[1]);
    snprintf(thr_s, sizeof thr_s, "%u", opts->threads);
    snprintf(ppid_s, sizeof ppid_s, "%d", (int)getpid());
    char *argv[] = {(char *)bin, "--address", "127.0.0.1:0", "--threads", thr_s, "--module", XO_BENCH_MODULE,
                    "--ready-fd", fd_s, "--parent-pid", ppid_s, NULL};
    extern char **environ;
    int err = posix_spawn(&s->server, bin, NULL, NULL, argv, environ);
    close(fds[1]);
    if (err != 0) {
        fprintf(stderr, "remote_tcp: spawn %s: %s\n", bin, strerror(err));
        close(fds[0]);
        s->server = 0;
        return -1;
    }
    size_t have = 0;
    for (;;) {
        ssize_t k = read(fds[0], s->target + have, sizeof s->target - 1 - have);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        have += (size_t)k;
        if (memchr(s->target, '\n', have) || have == sizeof s->target - 1) break;
    }
    close(fds[0]);
    s->target[have] = '\0';
    s->target[strcspn(s->target, "\n")] = '\0';
    if (!s->target[0]) {
        fprintf(stderr, "remote_tcp: xoscar-pool did not report its address\n");
        return -1;
    }
    return 0;
}

void bench_remote_teardown(setup_t *s)
{
    xo_ref_free(s->echo);
    xo_ref_free(s->driver);
    if (s->server > 0) {
        kill(s->server, SIGTERM); /* our own child, by its pid */
        int status;
        while (waitpid(s->server, &status, 0) < 0 && errno == EINTR) {
        }
    }
    if (s->host) xo_host_stop(s->host);
    memset(s, 0, sizeof *s);
}

int bench_remote_setup(const bench_opts_t *opts, transport_t t, setup_t *s)
{
    memset(s, 0, sizeof *s);
    static const char *const names[] = {NULL, "shm", "unix", "tcp"};
    if (names[t]) setenv("XO_TRANSPORT", names[t], 1);
    else unsetenv("XO_TRANSPORT");
    const char *modules[] = {XO_BENCH_MODULE};
    xo_sub_pool_config_t sub = {.n_threads = opts->threads};
    xo_host_config_t cfg = {
        .n_sub_pools = (t == T_SHM || t == T_UNIX) ? 1 : 0,
        .sub_pools = &sub,
        .modules = modules,
        .n_modules = 1,
        .main_threads = opts->threads,
        .pool_binary = XO_BENCH_POOL_BINARY,
    };
    xo_status_t st = xo_host_start(&cfg, &s->host);
    if (st != XO_OK) {
        fprintf(stderr, "xo_host_start: %s: %s\n", xo_status_name(st), xo_last_error());
        s->host = NULL;
        return -1;
    }
    if (t == T_SHM || t == T_UNIX) snprintf(s->target, sizeof s->target, "%s", xo_host_sub_pool_address(s->host, 1));
    else if (t == T_DIRECT) snprintf(s->target, sizeof s->target, "%s", xo_host_address(s->host));
    else if (start_server(opts, s) != 0) goto fail;
    st = xo_create_actor_by_name("BenchEcho", NULL, s->target, NULL, &s->echo);
    if (st != XO_OK) {
        fprintf(stderr, "create BenchEcho at %s: %s: %s\n", s->target, xo_status_name(st), xo_last_error());
        goto fail;
    }
    st = xo_create_actor(&driver_class, NULL, xo_host_address(s->host), NULL, &s->driver);
    if (st != XO_OK) {
        fprintf(stderr, "create driver: %s: %s\n", xo_status_name(st), xo_last_error());
        goto fail;
    }
    /* the target lives where it should: another process, except for direct */
    xo_result_t *r = NULL;
    int64_t pid = 0;
    st = xo_call(s->echo, "pid", NULL, CALL_TIMEOUT_MS, &r);
    if (st == XO_OK) st = xo_result_unpack(r, "l", &pid);
    xo_result_free(r);
    if (st != XO_OK || (t == T_DIRECT) != (pid == getpid())) {
        fprintf(stderr, "target at %s: pid %lld (bench %d): %s\n", s->target, (long long)pid, (int)getpid(),
                st == XO_OK ? "wrong process" : xo_last_error());
        goto fail;
    }
    return 0;
fail:
    bench_remote_teardown(s);
    return -1;
}

/* ---- the measurements ----------------------------------------------------------------------------------------- */

static int round_trips(const bench_opts_t *opts, setup_t *s, const tspecs_t *sp)
{
    for (int k = 0; k < BENCH_N_SIZES; k++) {
        size_t size = bench_sizes[k], n = n_calls(opts, k), warm = n / 10 ? n / 10 : 1;
        if (n == 0) continue;
        /* from a plain thread */
        for (size_t i = 0; i < warm + n; i++) {
            xo_result_t *r = NULL;
            uint64_t t0 = bench_now_ns();
            xo_status_t st = xo_call(s->echo, "len", xo_args("b", g_payload, size), CALL_TIMEOUT_MS, &r);
            uint64_t t1 = bench_now_ns();
            uint64_t got = 0;
            if (st == XO_OK) st = xo_result_unpack(r, "u", &got);
            xo_result_free(r);
            if (st != XO_OK || got != size) {
                fprintf(stderr, "%s: call %zu: %s: %s (len %llu)\n", sp->call_p50[k].name, i, xo_status_name(st),
                        xo_last_error(), (unsigned long long)got);
                return -1;
            }
            if (i >= warm) g_lat[i - warm] = t1 - t0;
        }
        double p50 = bench_percentile(g_lat, n, 50);
        bench_report(&sp->call_p50[k], p50 / 1e3);
        bench_report(&sp->call_p99[k], bench_percentile(g_lat, n, 99) / 1e3);
        if (k == 3) bench_report(&sp->bw_1m, (double)size / p50);
        if (k == 4) bench_report(&sp->bw_64m, (double)size / p50);
        /* from an actor's method */
        BENCH_CHECK(xo_call(s->driver, "rtt",
                            xo_args("ssuu", s->target, xo_ref_uid(s->echo), (uint64_t)size, (uint64_t)warm),
                            XO_FOREVER, NULL));
        BENCH_CHECK(xo_call(s->driver, "rtt",
                            xo_args("ssuu", s->target, xo_ref_uid(s->echo), (uint64_t)size, (uint64_t)n),
                            XO_FOREVER, NULL));
        bench_report(&sp->a2a_p50[k], bench_percentile(g_lat, n, 50) / 1e3);
        bench_report(&sp->a2a_p99[k], bench_percentile(g_lat, n, 99) / 1e3);
    }
    return 0;
}

static int get_count(const xo_ref_t *echo, int64_t *n_p)
{
    xo_result_t *r = NULL;
    BENCH_CHECK(xo_call(echo, "get", NULL, CALL_TIMEOUT_MS, &r));
    xo_status_t st = xo_result_unpack(r, "l", n_p);
    xo_result_free(r);
    BENCH_CHECK(st);
    return 0;
}

static int tells(const bench_opts_t *opts, setup_t *s, const tspecs_t *sp)
{
    for (int k = 0; k < BENCH_N_SIZES; k++) {
        size_t size = bench_sizes[k], n = n_tells(opts, k);
        if (n == 0) continue;
        int64_t before, after;
        if (get_count(s->echo, &before) != 0) return -1;
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < n; i++) BENCH_CHECK(xo_tell(s->echo, "add", xo_args("b", g_payload, size)));
        if (get_count(s->echo, &after) != 0) return -1;
        uint64_t t1 = bench_now_ns();
        if ((size_t)(after - before) != n) {
            fprintf(stderr, "%s: %lld tells arrived of %zu\n", sp->tell[k].name, (long long)(after - before), n);
            return -1;
        }
        bench_report(&sp->tell[k], (double)n * 1e9 / (double)(t1 - t0));
    }
    return 0;
}

static int rates(const bench_opts_t *opts, setup_t *s, const tspecs_t *sp)
{
    size_t n = opts->quick ? 1000 : 20000;
    for (size_t i = 0; i < n / 10; i++) BENCH_CHECK(xo_call(s->echo, "ping", NULL, CALL_TIMEOUT_MS, NULL));
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) BENCH_CHECK(xo_call(s->echo, "ping", NULL, CALL_TIMEOUT_MS, NULL));
    uint64_t t1 = bench_now_ns();
    bench_report(&sp->seq, (double)n * 1e9 / (double)(t1 - t0));

    n = opts->quick ? 2000 : 50000;
    xo_future_t *win[CONC_WINDOW] = {0};
    int rc = 0;
    t0 = bench_now_ns();
    for (size_t i = 0; i < n + CONC_WINDOW && rc == 0; i++) {
        xo_future_t **slot = &win[i % CONC_WINDOW];
        if (*slot) {
            xo_status_t st = xo_future_wait(*slot, CALL_TIMEOUT_MS, NULL);
            xo_future_free(*slot);
            *slot = NULL;
            if (st != XO_OK) {
                fprintf(stderr, "%s: wait: %s: %s\n", sp->conc.name, xo_status_name(st), xo_last_error());
                rc = -1;
            }
        }
        if (i < n && rc == 0) {
            xo_status_t st = xo_send(s->echo, "ping", NULL, slot);
            if (st != XO_OK) {
                fprintf(stderr, "%s: send: %s: %s\n", sp->conc.name, xo_status_name(st), xo_last_error());
                rc = -1;
            }
        }
    }
    t1 = bench_now_ns();
    for (int i = 0; i < CONC_WINDOW; i++)
        if (win[i]) xo_future_free(win[i]);
    if (rc == 0) bench_report(&sp->conc, (double)n * 1e9 / (double)(t1 - t0));
    return rc;
}

static int run_transport(const bench_opts_t *opts, transport_t t, const tspecs_t *sp)
{
    size_t max = opts->quick ? bench_sizes[3] : bench_sizes[BENCH_N_SIZES - 1];
    if (!g_payload) {
        g_payload = malloc(max);
        g_lat = malloc(20000 * sizeof *g_lat);
        if (!g_payload || !g_lat) return -1;
        for (size_t i = 0; i < max; i++) g_payload[i] = (char)(i * 131u);
    }
    setup_t s;
    if (bench_remote_setup(opts, t, &s) != 0) return -1;
    int rc = round_trips(opts, &s, sp);
    if (rc == 0) rc = tells(opts, &s, sp);
    if (rc == 0) rc = rates(opts, &s, sp);
    bench_remote_teardown(&s);
    return rc;
}

int bench_remote_direct(const bench_opts_t *opts) { return run_transport(opts, T_DIRECT, &specs_direct); }
int bench_remote_shm(const bench_opts_t *opts) { return run_transport(opts, T_SHM, &specs_shm); }
int bench_remote_unix(const bench_opts_t *opts) { return run_transport(opts, T_UNIX, &specs_unix); }
int bench_remote_tcp(const bench_opts_t *opts) { return run_transport(opts, T_TCP, &specs_tcp); }
