/* xoscar-pool: one pool in its own process, as a host's main pool starts its sub pools (and as tests start peers).
 *
 *   xoscar-pool --address HOST:PORT[/N] [--threads N] [--cpus LIST] [--module PATH|python:NAME]... [--ready-fd FD]
 *               [--parent-pid PID] [--device host:N|cuda:N] [--device-capacity BYTES]
 *
 * It loads its modules, binds itself to its CPUs before any thread starts, starts the pool, writes the pool's final
 * address and a newline to the ready fd (or stdout) ("error STATUS TEXT" and a newline when the pool cannot start),
 * and serves until SIGTERM/SIGINT, or until its parent dies
 * (fate sharing: PR_SET_PDEATHSIG, checked against the parent pid given, so a parent that died before the prctl is
 * noticed too). Exit codes: 0 stopped cleanly, 2 bad arguments, 3 a module failed to load, 4 binding failed,
 * 5 the pool failed to start. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/log.h"
#include "cluster/topology.h"
#include "xoscar/module.h"
#include "xoscar/xoscar.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = sig; }

static void usage(void)
{
    fprintf(stderr, "usage: xoscar-pool --address HOST:PORT[/N] [--threads N] [--cpus LIST] [--module PATH]...\n"
                    "                   [--ready-fd FD] [--parent-pid PID]\n");
}

int main(int argc, char **argv)
{
    const char *address = NULL, *cpus = NULL, *device = NULL;
    unsigned long long device_capacity = 0;
    const char *modules[64];
    int n_modules = 0, ready_fd = STDOUT_FILENO;
    unsigned threads = 0;
    long parent = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--address") == 0) address = v;
        else if (strcmp(a, "--threads") == 0) threads = (unsigned)atoi(v);
        else if (strcmp(a, "--cpus") == 0) cpus = v;
        else if (strcmp(a, "--module") == 0 && n_modules < 64) modules[n_modules++] = v;
        else if (strcmp(a, "--ready-fd") == 0) ready_fd = atoi(v);
        else if (strcmp(a, "--parent-pid") == 0) parent = atol(v);
        else if (strcmp(a, "--device") == 0) device = v;
        else if (strcmp(a, "--device-capacity") == 0) device_capacity = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "xoscar-pool: unknown option %s\n", a);
            usage();
            return 2;
        }
        i++;
    }
    if (!address) {
        usage();
        return 2;
    }
    xo__log_set_name(address); /* every line of this process says which pool wrote it */
    if (parent > 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != (pid_t)parent) return 0; /* the parent died before we could ask to follow it */
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < n_modules; i++) {
        const xo_module_v1_t *mod;
        if (xo_module_load(modules[i], &mod) != XO_OK) {
            xo_log_error("cannot load module %s: %s", modules[i], xo_last_error());
            return 3;
        }
    }
    if (cpus) {
        xo_cpuset_t set;
        char err[256];
        if (xo__cpuset_parse(cpus, &set, err, sizeof err) != XO_OK || xo__bind_self_to(&set) != XO_OK) {
            xo_log_error("cannot bind to cpus %s: %s", cpus, err[0] ? err : xo_last_error());
            return 4;
        }
    }
    xo_pool_config_t cfg = {.address = address, .n_threads = threads, .device = device,
                            .device_capacity = device_capacity};
    /* Python methods run on the fibers' stacks, and CPython's C recursion (calls through C: __init__, properties,
     * repr, pickle) goes deeper than C methods do: 1 MiB stacks instead of 256 KiB (untouched pages cost nothing). */
    for (int i = 0; i < n_modules; i++)
        if (strncmp(modules[i], XO_PYTHON_PREFIX, strlen(XO_PYTHON_PREFIX)) == 0) cfg.fiber_stack_size = 1u << 20;
    xo_pool_t *pool;
    xo_status_t st = xo_pool_start(&cfg, &pool);
    if (st != XO_OK) {
        xo_log_error("cannot start pool %s: %s", address, xo_last_error());
        /* the starter (a host) reports why, not only that it exited */
        dprintf(ready_fd, "error %d %s\n", (int)st, xo_last_error());
        return 5;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", xo_pool_address(pool));
    if (write(ready_fd, line, (size_t)n) != n) xo_log_warn("could not report readiness: %s", strerror(errno));
    if (ready_fd != STDOUT_FILENO) close(ready_fd);
    xo_log_info("serving at %s%s%s", xo_pool_address(pool), cpus ? " on CPUs " : "", cpus ? cpus : "");

    while (!stop_requested) pause();
    xo_log_debug("pool %s stopping on signal %d", xo_pool_address(pool), (int)stop_requested);
    xo_pool_stop(pool);
    return 0;
}
