/* xoscar-bench: runs the suite of benchmark-list.h and prints a table (median, min, max over the runs, the ratio to
 * the relevant limit, and whether the target is met); --json writes the same as JSON.
 *
 * Each benchmark runs in its own forked child, as libuv runs each test in its own process: a crash or a hang in the
 * runtime under one benchmark is reported as a skip with its reason and the others still run, and the RSS a
 * benchmark measures is not inflated by the ones before it. The child sends its metrics back through a pipe. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "benchmark-list.h"

#ifndef XO_BENCH_GIT
#define XO_BENCH_GIT "unknown"
#endif

#define MAX_METRICS 320
#define MAX_RUNS 64
#define MAX_SKIPS 16

typedef struct metric {
    const bench_metric_spec_t *spec;
    double v[MAX_RUNS];
    int n;
    double median, min, max, ratio;
    bool has_ratio;
} metric_t;

static metric_t metrics[MAX_METRICS];
static int n_metrics;
static char skips[MAX_SKIPS][256];
static int n_skips;

/* In the child: where reports go. In the parent (or with --no-fork): -1, record directly. */
static int report_fd = -1;

/* What travels over the pipe. The spec pointer is valid in the parent: the child is a fork of the same image. */
typedef struct wire {
    const bench_metric_spec_t *spec; /* NULL: a skip, text in why */
    double value;
    char why[240];
} wire_t;

static void record(const bench_metric_spec_t *spec, double value)
{
    metric_t *m = NULL;
    for (int i = 0; i < n_metrics; i++)
        if (strcmp(metrics[i].spec->name, spec->name) == 0) m = &metrics[i];
    if (!m) {
        if (n_metrics == MAX_METRICS) return;
        m = &metrics[n_metrics++];
        m->spec = spec;
    }
    if (m->n < MAX_RUNS) m->v[m->n++] = value;
}

static void record_skip(const char *why)
{
    if (n_skips < MAX_SKIPS) snprintf(skips[n_skips++], sizeof skips[0], "%s", why);
}

static void send_wire(const wire_t *w)
{
    const char *p = (const char *)w;
    size_t left = sizeof *w;
    while (left) {
        ssize_t k = write(report_fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        p += k;
        left -= (size_t)k;
    }
}

void bench_report(const bench_metric_spec_t *spec, double value)
{
    if (report_fd < 0) {
        record(spec, value);
        return;
    }
    wire_t w = {.spec = spec, .value = value};
    send_wire(&w);
}

void bench_skip(const char *bench, const char *why)
{
    char text[240];
    snprintf(text, sizeof text, "%s: skipped: %s", bench, why);
    if (report_fd < 0) {
        record_skip(text);
        return;
    }
    wire_t w = {.spec = NULL};
    snprintf(w.why, sizeof w.why, "%s", text);
    send_wire(&w);
}

/* ---- running ------------------------------------------------------------------------------------------------- */

static int run_all_reps(const bench_entry_t *b, const bench_opts_t *opts)
{
    for (int r = 0; r < opts->runs; r++) {
        if (b->fn(opts) != 0) {
            char why[200];
            snprintf(why, sizeof why, "run %d of %d failed (see stderr)", r + 1, opts->runs);
            bench_skip(b->name, why);
            return -1;
        }
    }
    return 0;
}

/* Runs b's repetitions in a child; reads its reports until it exits or the deadline passes. */
static void run_forked(const bench_entry_t *b, const bench_opts_t *opts, int timeout_s)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        _exit(run_all_reps(b, opts) == 0 ? 0 : 1);
    }
    close(fds[1]);
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_s * 1000000000ull;
    wire_t w;
    size_t have = 0;
    bool timed_out = false;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int ms = (int)((deadline - now) / 1000000ull) + 1;
        int k = poll(&p, 1, ms);
        if (k < 0 && errno == EINTR) continue;
        if (k == 0) continue;
        ssize_t got = read(fds[0], (char *)&w + have, sizeof w - have);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* EOF: the child is gone */
        have += (size_t)got;
        if (have == sizeof w) {
            if (w.spec) record(w.spec, w.value);
            else record_skip(w.why);
            have = 0;
        }
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL); /* our own child, by its pid */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char why[240];
    if (timed_out) {
        snprintf(why, sizeof why, "%s: skipped: hung (no exit within %d s), killed", b->name, timeout_s);
        record_skip(why);
    } else if (WIFSIGNALED(status)) {
        snprintf(why, sizeof why, "%s: skipped: crashed with signal %d (%s)", b->name, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        record_skip(why);
    }
}

/* ---- statistics and output ----------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const metric_t *find_metric(const char *name)
{
    for (int i = 0; i < n_metrics; i++)
        if (strcmp(metrics[i].spec->name, name) == 0) return &metrics[i];
    return NULL;
}

static void summarise(void)
{
    for (int i = 0; i < n_metrics; i++) {
        metric_t *m = &metrics[i];
        double s[MAX_RUNS];
        memcpy(s, m->v, (size_t)m->n * sizeof *s);
        qsort(s, (size_t)m->n, sizeof *s, cmp_double);
        m->min = s[0];
        m->max = s[m->n - 1];
        m->median = m->n % 2 ? s[m->n / 2] : (s[m->n / 2 - 1] + s[m->n / 2]) / 2;
    }
    for (int i = 0; i < n_metrics; i++) {
        metric_t *m = &metrics[i];
        const bench_metric_spec_t *sp = m->spec;
        if (sp->ref) {
            const metric_t *r = find_metric(sp->ref);
            if (r && r->median != 0) {
                m->ratio = m->median / r->median;
                m->has_ratio = true;
            }
        } else if ((sp->goal == BENCH_GOAL_VALUE_MAX || sp->goal == BENCH_GOAL_VALUE_MIN) && sp->target > 0) {
            m->ratio = m->median / sp->target;
            m->has_ratio = true;
        }
    }
}

/* "yes", "NO", or "" when the metric has no target (or its reference was not run). */
static const char *verdict(const metric_t *m)
{
    switch (m->spec->goal) {
    case BENCH_GOAL_RATIO_MIN: return !m->has_ratio ? "" : m->ratio >= m->spec->target ? "yes" : "NO";
    case BENCH_GOAL_RATIO_MAX: return !m->has_ratio ? "" : m->ratio <= m->spec->target ? "yes" : "NO";
    case BENCH_GOAL_VALUE_MAX: return m->median <= m->spec->target ? "yes" : "NO";
    case BENCH_GOAL_VALUE_MIN: return m->median >= m->spec->target ? "yes" : "NO";
    default: return "";
    }
}

static void target_text(const bench_metric_spec_t *sp, char *buf, size_t len)
{
    switch (sp->goal) {
    case BENCH_GOAL_RATIO_MIN: snprintf(buf, len, ">= %gx %s", sp->target, sp->ref); break;
    case BENCH_GOAL_RATIO_MAX: snprintf(buf, len, "<= %gx %s", sp->target, sp->ref); break;
    case BENCH_GOAL_VALUE_MAX: snprintf(buf, len, "<= %g %s", sp->target, sp->unit); break;
    case BENCH_GOAL_VALUE_MIN: snprintf(buf, len, ">= %g %s", sp->target, sp->unit); break;
    default: buf[0] = '\0'; break;
    }
}

static void fmt_value(double v, char *buf, size_t len)
{
    double a = v < 0 ? -v : v;
    if (a >= 1e6) snprintf(buf, len, "%.3gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, len, "%.1fk", v / 1e3);
    else if (a >= 100) snprintf(buf, len, "%.0f", v);
    else if (a >= 10) snprintf(buf, len, "%.1f", v);
    else snprintf(buf, len, "%.3f", v);
}

/* The 1-minute load average: other work on the machine (builds, tests) skews every number here. */
static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double load_before;

static void print_table(const bench_opts_t *opts)
{
    printf("\n%-28s %10s %10s %10s %-6s %9s  %-26s %s\n", "metric", "median", "min", "max", "unit", "ratio",
           "target", "met");
    for (int i = 0; i < n_metrics; i++) {
        const metric_t *m = &metrics[i];
        char med[32], mn[32], mx[32], ratio[32] = "-", tgt[96];
        fmt_value(m->median, med, sizeof med);
        fmt_value(m->min, mn, sizeof mn);
        fmt_value(m->max, mx, sizeof mx);
        if (m->has_ratio) snprintf(ratio, sizeof ratio, "%.3fx", m->ratio);
        target_text(m->spec, tgt, sizeof tgt);
        printf("%-28s %10s %10s %10s %-6s %9s  %-26s %s\n", m->spec->name, med, mn, mx, m->spec->unit, ratio, tgt,
               verdict(m));
    }
    printf("\nratio: median / the ref's median when a ref is named, else median / target. %d run(s) each. "
           "load average now %.2f.\n", opts->runs, loadavg1());
    for (int i = 0; i < n_metrics; i++)
        if (metrics[i].spec->note) printf("note: %s\n", metrics[i].spec->note);
    for (int i = 0; i < n_skips; i++) printf("SKIP %s\n", skips[i]);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, len, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}


static int write_json(const char *path, const bench_opts_t *opts, const char *cmdline)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    char cpu[128];
    cpu_model(cpu, sizeof cpu);
    struct utsname u;
    uname(&u);
    fprintf(f, "{\n  \"tool\": \"xoscar-bench\",\n  \"git\": ");
    json_string(f, XO_BENCH_GIT);
    fprintf(f, ",\n  \"command\": ");
    json_string(f, cmdline);
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    json_string(f, cpu);
    fprintf(f, ", \"nproc\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
    json_string(f, u.release);
    fprintf(f, ", \"loadavg1_before\": %.2f, \"loadavg1_after\": %.2f", load_before, loadavg1());
    fprintf(f, "},\n  \"quick\": %s, \"runs\": %d, \"pool_threads\": %u, \"device\": ",
            opts->quick ? "true" : "false", opts->runs, opts->threads);
    json_string(f, opts->device);
    fprintf(f, ", \"hog\": %d", opts->hog);
    fprintf(f, ",\n  \"results\": [\n");
    for (int i = 0; i < n_metrics; i++) {
        const metric_t *m = &metrics[i];
        char tgt[96];
        target_text(m->spec, tgt, sizeof tgt);
        fprintf(f, "    {\"name\": ");
        json_string(f, m->spec->name);
        fprintf(f, ", \"value\": %.6g, \"unit\": ", m->median);
        json_string(f, m->spec->unit);
        if (m->has_ratio) fprintf(f, ", \"ratio\": %.6g", m->ratio);
        else fprintf(f, ", \"ratio\": null");
        fprintf(f, ", \"ratio_to\": ");
        json_string(f, m->spec->ref ? m->spec->ref : (m->has_ratio ? "target" : ""));
        fprintf(f, ", \"target\": ");
        json_string(f, tgt);
        fprintf(f, ", \"met\": ");
        json_string(f, verdict(m));
        fprintf(f, ", \"min\": %.6g, \"max\": %.6g, \"runs\": [", m->min, m->max);
        for (int k = 0; k < m->n; k++) fprintf(f, "%s%.6g", k ? ", " : "", m->v[k]);
        fprintf(f, "]}%s\n", i + 1 < n_metrics ? "," : "");
    }
    fprintf(f, "  ],\n  \"skipped\": [");
    for (int i = 0; i < n_skips; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_string(f, skips[i]);
    }
    fprintf(f, "]\n}\n");
    fclose(f);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------------------------------- */

static const bench_entry_t benchmarks[] = {
#define BENCH_ENTRY_(name, doc) {#name, doc, bench_##name},
    BENCHMARK_LIST(BENCH_ENTRY_)
#undef BENCH_ENTRY_
};

/* --hog N: N processes that only spin, beside the benchmarks, for as long as the run lasts: the busy machine of a
 * shared node (or of pools and application threads outnumbering cores), under which waits that sleep pay the
 * kernel's scheduling latency. Processes, not threads, because each benchmark runs in a forked child and threads do
 * not survive a fork. They die with this process (PR_SET_PDEATHSIG) if it is killed. */
static pid_t hogs[256];
static int n_hogs;

static void hogs_start(int n)
{
    for (int i = 0; i < n && n_hogs < (int)(sizeof hogs / sizeof hogs[0]); i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            volatile uint64_t spin = 0;
            for (;;) spin++;
        }
        if (pid > 0) hogs[n_hogs++] = pid;
    }
}

static void hogs_stop(void)
{
    for (int i = 0; i < n_hogs; i++) kill(hogs[i], SIGKILL);
    for (int i = 0; i < n_hogs; i++) waitpid(hogs[i], NULL, 0);
    n_hogs = 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xoscar-bench [--quick] [--json FILE] [--filter NAME] [--runs N] [--threads N] [--no-fork] "
            "[--device D] [--hog N] [--list]\n"
            "  --quick      small sizes, 3 runs: a smoke test for CI (a few seconds)\n"
            "  --json FILE  also write the results as JSON\n"
            "  --filter S   run only the benchmarks whose name contains S (ratios need their ref run too)\n"
            "  --runs N     repetitions per benchmark (default 5; --quick: 3)\n"
            "  --threads N  scheduler threads per pool (default 1: a sender thread and one scheduler on 2 CPUs;\n"
            "               0: the runtime's default, one per CPU)\n"
            "  --no-fork    run benchmarks in this process (for perf record / gdb)\n"
            "  --device D   the device of devbuf/devlaunch: host (default), cuda, cuda:N; a missing backend or\n"
            "               device makes them skip with its error text\n"
            "  --hog N      run N busy-looping processes beside the benchmarks (a loaded machine; N up to 256)\n");
}

int main(int argc, char **argv)
{
    bench_opts_t opts = {.runs = 0, .threads = 1, .device = "host"};
    const char *json = NULL, *filter = NULL;
    bool no_fork = false, list = false;
    static const struct option longopts[] = {
        {"quick", no_argument, NULL, 'q'},   {"json", required_argument, NULL, 'j'},
        {"filter", required_argument, NULL, 'f'}, {"runs", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {"no-fork", no_argument, NULL, 'n'},
        {"list", no_argument, NULL, 'l'},    {"help", no_argument, NULL, 'h'},
        {"device", required_argument, NULL, 'd'}, {"hog", required_argument, NULL, 'g'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "qj:f:r:t:nlhd:g:", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': opts.quick = true; break;
        case 'j': json = optarg; break;
        case 'f': filter = optarg; break;
        case 'r': opts.runs = atoi(optarg); break;
        case 't': opts.threads = (unsigned)atoi(optarg); break;
        case 'n': no_fork = true; break;
        case 'd': opts.device = optarg; break;
        case 'g': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || n < 0 || n > 256) {
                fprintf(stderr, "xoscar-bench: --hog %s: expected a number of processes from 0 to 256\n", optarg);
                return 2;
            }
            opts.hog = (int)n;
            break;
        }
        case 'l': list = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    size_t dlen = strcspn(opts.device, ":");
    if (!((dlen == 4 && (strncmp(opts.device, "host", 4) == 0 || strncmp(opts.device, "cuda", 4) == 0)) &&
          (opts.device[dlen] == '\0' || (opts.device[dlen] == ':' && opts.device[dlen + 1] >= '0' &&
                                          opts.device[dlen + 1] <= '9')))) {
        fprintf(stderr, "xoscar-bench: --device %s: expected host, cuda, host:N or cuda:N\n", opts.device);
        return 2;
    }
    if (opts.runs <= 0) opts.runs = opts.quick ? 3 : 5;
    if (opts.runs > MAX_RUNS) opts.runs = MAX_RUNS;
    size_t n_bench = sizeof benchmarks / sizeof benchmarks[0];
    if (list) {
        for (size_t i = 0; i < n_bench; i++) printf("%-10s %s\n", benchmarks[i].name, benchmarks[i].doc);
        return 0;
    }

    char cmdline[512] = "";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(cmdline);
        snprintf(cmdline + l, sizeof cmdline - l, "%s%s", i ? " " : "", argv[i]);
    }
    char cpu[128];
    cpu_model(cpu, sizeof cpu);
    load_before = loadavg1();
    printf("xoscar-bench  git %s  cpu \"%s\" x %ld  %s, %d run(s), pool threads %u%s, device %s, load %.2f, "
           "hog %d\n",
           XO_BENCH_GIT, cpu, sysconf(_SC_NPROCESSORS_ONLN), opts.quick ? "quick" : "full", opts.runs, opts.threads,
           opts.threads ? "" : " (runtime default)", opts.device, load_before, opts.hog);
    hogs_start(opts.hog);

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < n_bench; i++) {
        const bench_entry_t *b = &benchmarks[i];
        if (filter && !strstr(b->name, filter)) continue;
        uint64_t t0 = bench_now_ns();
        printf("running %-10s %s ...", b->name, b->doc);
        fflush(stdout);
        if (no_fork) run_all_reps(b, &opts);
        else run_forked(b, &opts, opts.quick ? 30 : 300);
        printf(" %.2f s\n", (double)(bench_now_ns() - t0) / 1e9);
    }
    hogs_stop();
    if (n_metrics == 0) {
        fprintf(stderr, "no benchmark produced a result\n");
        for (int i = 0; i < n_skips; i++) fprintf(stderr, "SKIP %s\n", skips[i]);
        return 1;
    }
    summarise();
    print_table(&opts);
    if (json && write_json(json, &opts, cmdline) != 0) return 1;
    return n_skips ? 1 : 0;
}
