/* A soak of a host under churn and kills: the reliability suite's long-running piece (issue 10).
 *
 *   xo_soak [--seconds S] [--kill-every-ms K] [--callers C] [--quiet]
 *
 * A host with two sub pools (restart: actors). Callers call a Counter in each sub pool without pause; a churn thread
 * creates and destroys actors through the host in sub pool 2; a killer SIGKILLs sub pool 1 every K ms. Every second
 * one line: calls/s, latency p50/p99/max, errors, and the fds and private heap (RssAnon) of this process (the main
 * pool) and of sub pool 2 (never killed). Exit status 0 only when:
 *   - no call timed out (a hang) and none failed with a status other than those of a dying or recovering pool,
 *   - the Counter in sub pool 2 never failed at all, and the one in sub pool 1 answered again after each kill,
 *   - fds did not grow (the median over the last third of the run against the median over the first third after
 *     warm-up: medians, because a restart in progress moves the count by a few for a moment), and RssAnon grew by at most
 *     RSS_SLACK_KIB (not checked under AddressSanitizer, whose quarantine grows the heap by design).
 * ctest runs it for 20 s (label reliability); bench/soak.sh runs it for minutes and keeps its figures. */
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xoscar/host.h"
#include "xoscar/xoscar.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifndef SOAK_ASAN
#define SOAK_ASAN 0
#endif

#define MAX_SECONDS 86400
#define MAX_CALLERS 16
#define LAT_CAP (1u << 20)    /* latencies kept per caller per second: enough for 1 M calls/s each */
#define CALL_TIMEOUT_MS 5000  /* a call that takes this long is a hang */
#define FD_SLACK 2
#define RSS_SLACK_KIB 8192

static const char *const k_modules[] = {XO_TEST_MODULE_PATH};

typedef struct {
    pthread_mutex_t lock;
    uint32_t *lat_ns;         /* this second's latencies (ns; a timeout is counted apart) */
    size_t n;
} lat_buf_t;

typedef struct {
    long fds_main, rss_main, fds_sub2, rss_sub2;
} sample_t;

static struct {
    xo_host_t *host;
    _Atomic bool stop;
    _Atomic long by_status[128]; /* index -status */
    _Atomic long calls, call_errors, sub2_failures, churn_rounds, kills, recovered;
    _Atomic long unexpected;
    lat_buf_t lat[MAX_CALLERS];
    int n_callers;
    int kill_every_ms;
} g;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool transient(xo_status_t st)
{
    return st == XO_EPOOLDIED || st == XO_ECLOSED || st == XO_EUNREACHABLE || st == XO_EREFUSED ||
           st == XO_ERECOVERING;
}

static void count(xo_status_t st, const char *what)
{
    if (st > 0 || st <= -128) st = XO_EINVAL;
    atomic_fetch_add(&g.by_status[-st], 1);
    if (st != XO_OK && !transient(st)) {
        if (atomic_fetch_add(&g.unexpected, 1) < 5)
            fprintf(stderr, "soak: %s failed with %s: %s\n", what, xo_status_name(st), xo_last_error());
    }
}

static void on_event(const char *address, xo_pool_event_t ev, void *arg)
{
    if (ev == XO_POOL_RECOVERED) atomic_fetch_add(&g.recovered, 1);
    if (ev == XO_POOL_FAILED) {
        atomic_fetch_add(&g.unexpected, 1);
        fprintf(stderr, "soak: pool %s failed for good\n", address);
    }
}

static xo_ref_t *place(const char *uid, size_t pool)
{
    xo_placement_t p = {.strategy = "process_index", .process_index = pool};
    xo_ref_t *ref = NULL;
    xo_status_t st = xo_host_create_actor(g.host, "Counter", xo_args("l", (int64_t)0), uid, &p, &ref);
    if (st != XO_OK) fprintf(stderr, "soak: cannot create %s: %s\n", uid ? uid : "?", xo_last_error());
    return st == XO_OK ? ref : NULL;
}

typedef struct {
    int index;
    xo_ref_t *ref;
    bool on_sub2;
} caller_arg_t;

static void *caller(void *arg)
{
    caller_arg_t *c = arg;
    lat_buf_t *lb = &g.lat[c->index];
    while (!atomic_load(&g.stop)) {
        double t0 = now_ms();
        xo_status_t st = xo_call(c->ref, "add", xo_args("l", (int64_t)1), CALL_TIMEOUT_MS, NULL);
        double ns = (now_ms() - t0) * 1e6;
        count(st, "a call");
        atomic_fetch_add(&g.calls, 1);
        if (st != XO_OK) atomic_fetch_add(&g.call_errors, 1);
        if (st != XO_OK && c->on_sub2) atomic_fetch_add(&g.sub2_failures, 1);
        if (st != XO_OK) usleep(1000); /* a dead pool answers at once: do not spin on it */
        pthread_mutex_lock(&lb->lock);
        if (lb->n < LAT_CAP) lb->lat_ns[lb->n++] = ns > 4e9 ? 4000000000u : (uint32_t)ns;
        pthread_mutex_unlock(&lb->lock);
    }
    return NULL;
}

/* Create, call, destroy through the host, in the pool that is never killed: what must not leak. */
static void *churn(void *arg)
{
    while (!atomic_load(&g.stop)) {
        xo_ref_t *ref = place(NULL, 2);
        if (!ref) {
            atomic_fetch_add(&g.unexpected, 1);
            usleep(10000);
            continue;
        }
        count(xo_call(ref, "add", xo_args("l", (int64_t)1), CALL_TIMEOUT_MS, NULL), "a churned actor's call");
        count(xo_destroy_actor(ref), "a destroy");
        xo_ref_free(ref);
        atomic_fetch_add(&g.churn_rounds, 1);
    }
    return NULL;
}

static void *killer(void *arg)
{
    double next = now_ms() + g.kill_every_ms;
    while (!atomic_load(&g.stop)) {
        usleep(10000);
        if (now_ms() < next) continue;
        int pid = xo_host_sub_pool_pid(g.host, 1);
        if (pid > 0 && kill(pid, SIGKILL) == 0) atomic_fetch_add(&g.kills, 1);
        next = now_ms() + g.kill_every_ms;
    }
    return NULL;
}

static long count_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd, when pid is us */
}

static long rss_anon_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "RssAnon:", 8) == 0) kib = atol(line + 8);
    if (f) fclose(f);
    return kib;
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int by_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* The median of a field over samples [from, to): a restart in progress moves fds by a few for a moment, either way,
 * and a median ignores such instants where a leak moves it for good. -1 when no sample has the field. */
static long median_over(const sample_t *s, int from, int to, size_t field)
{
    long *v = malloc((size_t)(to > from ? to - from : 1) * sizeof *v); /* ours, freed below */
    int n = 0;
    for (int i = from; i < to; i++) {
        long x = *(const long *)((const char *)&s[i] + field);
        if (x >= 0 && v) v[n++] = x;
    }
    if (!n) {
        free(v);
        return -1;
    }
    qsort(v, (size_t)n, sizeof *v, by_long);
    long median = v[n / 2];
    free(v);
    return median;
}

int main(int argc, char **argv)
{
    int seconds = 20, quiet = 0;
    g.kill_every_ms = 2000;
    g.n_callers = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--kill-every-ms") == 0 && i + 1 < argc) g.kill_every_ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--callers") == 0 && i + 1 < argc) g.n_callers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quiet") == 0) quiet = 1;
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--kill-every-ms K] [--callers C] [--quiet]\n", argv[0]);
            return 2;
        }
    }
    if (seconds < 6 || seconds > MAX_SECONDS || g.n_callers < 2 || g.n_callers > MAX_CALLERS ||
        g.kill_every_ms < 100) {
        fprintf(stderr, "soak: seconds in [6, %d], callers in [2, %d], kill-every-ms >= 100\n", MAX_SECONDS,
                MAX_CALLERS);
        return 2;
    }
    /* Kills every K ms are the point: the restart intensity must allow them, with a short back-off. */
    xo_host_config_t cfg = {.n_sub_pools = 2, .modules = k_modules, .n_modules = 1, .restart = XO_RESTART_ACTORS,
                            .pool_binary = XO_POOL_BINARY, .on_event = on_event, .max_restarts = 10000,
                            .restart_period_ms = 1000, .restart_backoff_ms = 1, .restart_backoff_max_ms = 20};
    if (xo_host_start(&cfg, &g.host) != XO_OK) {
        fprintf(stderr, "soak: cannot start the host: %s\n", xo_last_error());
        return 1;
    }
    xo_ref_t *c1 = place("soak-1", 1), *c2 = place("soak-2", 2);
    if (!c1 || !c2) return 1;
    pthread_t callers[MAX_CALLERS], churner, killer_thread;
    caller_arg_t args[MAX_CALLERS];
    for (int i = 0; i < g.n_callers; i++) {
        pthread_mutex_init(&g.lat[i].lock, NULL);
        g.lat[i].lat_ns = malloc(LAT_CAP * sizeof(uint32_t));
        args[i] = (caller_arg_t){.index = i, .ref = i % 2 ? c2 : c1, .on_sub2 = i % 2 == 1};
        pthread_create(&callers[i], NULL, caller, &args[i]);
    }
    pthread_create(&churner, NULL, churn, NULL);
    pthread_create(&killer_thread, NULL, killer, NULL);

    sample_t *samples = calloc((size_t)seconds, sizeof *samples);
    uint32_t *all = malloc((size_t)g.n_callers * LAT_CAP * sizeof *all);
    if (!quiet) printf("%4s %9s %8s %8s %8s %6s %5s %9s %5s %9s %5s %6s\n", "s", "calls/s", "p50_us", "p99_us",
                       "max_ms", "errors", "fds", "rss_kib", "fds2", "rss2_kib", "kills", "churn");
    long last_calls = 0, last_errors = 0;
    double t_start = now_ms();
    for (int s = 0; s < seconds; s++) {
        double wake = t_start + (s + 1) * 1000.0;
        while (now_ms() < wake) usleep((useconds_t)((wake - now_ms()) * 1000) + 1);
        size_t n = 0;
        for (int i = 0; i < g.n_callers; i++) {
            pthread_mutex_lock(&g.lat[i].lock);
            memcpy(all + n, g.lat[i].lat_ns, g.lat[i].n * sizeof *all);
            n += g.lat[i].n;
            g.lat[i].n = 0;
            pthread_mutex_unlock(&g.lat[i].lock);
        }
        qsort(all, n, sizeof *all, by_value);
        long calls = atomic_load(&g.calls), errors = atomic_load(&g.call_errors);
        int sub2 = xo_host_sub_pool_pid(g.host, 2);
        samples[s] = (sample_t){.fds_main = count_fds(getpid()), .rss_main = rss_anon_kib(getpid()),
                                .fds_sub2 = sub2 > 0 ? count_fds(sub2) : -1, .rss_sub2 = sub2 > 0 ? rss_anon_kib(sub2) : -1};
        if (!quiet)
            printf("%4d %9ld %8.1f %8.1f %8.1f %6ld %5ld %9ld %5ld %9ld %5ld %6ld\n", s + 1, calls - last_calls,
                   n ? all[n / 2] / 1e3 : 0.0, n ? all[n * 99 / 100] / 1e3 : 0.0,
                   n ? all[n - 1] / 1e6 : 0.0, errors - last_errors,
                   samples[s].fds_main, samples[s].rss_main, samples[s].fds_sub2, samples[s].rss_sub2,
                   atomic_load(&g.kills), atomic_load(&g.churn_rounds));
        fflush(stdout);
        last_calls = calls;
        last_errors = errors;
    }
    atomic_store(&g.stop, true);
    for (int i = 0; i < g.n_callers; i++) pthread_join(callers[i], NULL);
    pthread_join(churner, NULL);
    pthread_join(killer_thread, NULL);

    /* After the last kill, sub pool 1's actor answers again. */
    xo_status_t back = XO_ETIMEDOUT;
    for (double t0 = now_ms(); now_ms() - t0 < 10000 && back != XO_OK; usleep(10000))
        back = xo_call(c1, "add", xo_args("l", (int64_t)1), 1000, NULL);

    int warm = seconds / 3 > 2 ? seconds / 3 : 2; /* the first third: warm-up (rings, caches, arenas) */
    int third = (seconds - warm) / 2;
    long fd0 = median_over(samples, warm, warm + third, offsetof(sample_t, fds_main));
    long fd1 = median_over(samples, seconds - third, seconds, offsetof(sample_t, fds_main));
    long fd20 = median_over(samples, warm, warm + third, offsetof(sample_t, fds_sub2));
    long fd21 = median_over(samples, seconds - third, seconds, offsetof(sample_t, fds_sub2));
    long rss0 = median_over(samples, warm, warm + third, offsetof(sample_t, rss_main));
    long rss1 = median_over(samples, seconds - third, seconds, offsetof(sample_t, rss_main));
    long rss20 = median_over(samples, warm, warm + third, offsetof(sample_t, rss_sub2));
    long rss21 = median_over(samples, seconds - third, seconds, offsetof(sample_t, rss_sub2));
    long timeouts = atomic_load(&g.by_status[-XO_ETIMEDOUT]);
    long ok = atomic_load(&g.by_status[0]), unexpected = atomic_load(&g.unexpected);
    long kills = atomic_load(&g.kills), recovered = atomic_load(&g.recovered);
    printf("soak: %d s, %ld calls and actor operations answered OK, %ld kills of sub pool 1 (%ld recoveries), %ld "
           "create+destroy rounds; timeouts %ld, recovering %ld, pool died/closed/unreachable/refused %ld, unexpected "
           "%ld; sub pool 2's actor failed %ld times\n", seconds, ok, kills, recovered, atomic_load(&g.churn_rounds),
           timeouts, atomic_load(&g.by_status[-XO_ERECOVERING]),
           atomic_load(&g.by_status[-XO_EPOOLDIED]) + atomic_load(&g.by_status[-XO_ECLOSED]) +
               atomic_load(&g.by_status[-XO_EUNREACHABLE]) + atomic_load(&g.by_status[-XO_EREFUSED]),
           unexpected, atomic_load(&g.sub2_failures));
    printf("soak: fds main %ld -> %ld, sub pool 2 %ld -> %ld; RssAnon main %ld -> %ld KiB, sub pool 2 %ld -> %ld KiB "
           "(medians of the first and last thirds after warm-up)%s\n", fd0, fd1, fd20, fd21, rss0, rss1, rss20, rss21,
           SOAK_ASAN ? "; RssAnon not checked under ASan" : "");
    int failed = 0;
#define CHECK(cond, ...)                                                                                            \
    do {                                                                                                            \
        if (!(cond)) {                                                                                              \
            fprintf(stderr, "soak: FAIL: " __VA_ARGS__);                                                            \
            fputc('\n', stderr);                                                                                    \
            failed = 1;                                                                                             \
        }                                                                                                           \
    } while (0)
    CHECK(timeouts == 0, "%ld calls took %d ms or more (a hang)", timeouts, CALL_TIMEOUT_MS);
    CHECK(unexpected == 0, "%ld unexpected failures", unexpected);
    CHECK(atomic_load(&g.sub2_failures) == 0, "the actor in the pool that was never killed failed");
    CHECK(back == XO_OK, "sub pool 1's actor did not answer after the last kill: %s", xo_status_name(back));
    CHECK(kills >= 1, "no kill happened");
    CHECK(fd1 <= fd0 + FD_SLACK, "this process's fds grew from %ld to %ld", fd0, fd1);
    CHECK(fd21 <= fd20 + FD_SLACK, "sub pool 2's fds grew from %ld to %ld", fd20, fd21);
    if (!SOAK_ASAN) {
        CHECK(rss1 <= rss0 + RSS_SLACK_KIB, "this process's RssAnon grew from %ld to %ld KiB", rss0, rss1);
        CHECK(rss21 <= rss20 + RSS_SLACK_KIB, "sub pool 2's RssAnon grew from %ld to %ld KiB", rss20, rss21);
    }
    xo_ref_free(c1);
    xo_ref_free(c2);
    xo_host_stop(g.host);
    for (int i = 0; i < g.n_callers; i++) free(g.lat[i].lat_ns);
    free(samples);
    free(all);
    printf("soak: %s\n", failed ? "FAILED" : "passed");
    return failed;
}
