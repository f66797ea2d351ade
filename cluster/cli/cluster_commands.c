/* Cluster-file commands of the xoscar CLI.
 *
 *   xoscar up FILE [--host NAME] [--foreground]   start the hosts of FILE that are this machine (or NAME)
 *   xoscar down FILE [--host NAME]                stop them; nothing is left running
 *   xoscar status FILE [--json]                   every pool of every host: pid, actors, up or not
 *   xoscar config FILE                            the effective configuration, defaults filled in
 *   xoscar logs FILE [--pool P] [-f]              the pools' log lines (logs.c)
 *
 * `up` starts each local host as a daemon process (the host's main pool; its sub pools are its children) and
 * returns once every pool is ready. Hosts that are another machine are started there by their launcher: ssh runs
 * `xoscar up FILE --host NAME` on it (the same command Slurm or systemd can run per host); launcher "none" leaves
 * it to the operator. The daemon's pid and address go to a state file, $XO_RUN_DIR (default /tmp/xoscar-<uid>)
 * /<cluster>/<host>.pid, which `down` uses. The daemon holds an exclusive lock (flock) on that file for as long as
 * it runs: a pid read from a file nobody holds locked is stale, whatever process has that pid now (pids are reused),
 * and is never signalled. Beside it, <host>.log and <host>@N.log: the log files of its main pool (also the daemon's
 * stdout and stderr) and of its sub pools (docs/cluster-file.md, "Daemons, logs and status"). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cluster/cli/commands.h"
#include "cluster/cluster_file.h"
#include "cluster/profile.h"
#include "runtime/core.h"
#include "base/log.h"
#include "xoscar/host.h"

#define DOWN_GRACE_MS 5000

const char *xo_cli_cluster_usage(void)
{
    return "  up FILE [--host NAME] [--foreground]     start the hosts of a cluster file that are this machine\n"
           "  down FILE [--host NAME]                   stop them (nothing is left running)\n"
           "  status FILE [--json]                      pools of every host: pid, actors, up or down (--json: as\n"
           "                                            JSON, docs/cluster-file.md)\n"
           "  config FILE                               the effective configuration, defaults filled in\n"
           "  tune FILE [--quick] [--out P] [--apply]   measure every ordered pair of pools of the running cluster\n"
           "                                            and write the tune profile (placement.profile, or P);\n"
           "                                            --apply: its hosts load it now\n"
           "  run FILE -- CMD [ARGS...]                 run CMD with XO_SECRET and XO_CLUSTER_MAIN (the first\n"
           "                                            host's main pool address) set from FILE\n"
           "  logs FILE [--pool P] [-f]                 the log lines of the pools running here, merged by time, or\n"
           "                                            of pool P (a host's name, NAME/N or an address); -f: follow\n";
}

/* The file's transport preferences, as the environment the runtime reads (inherited by the pools this process
 * starts): UCX between hosts when the file prefers it to TCP, its UCX_TLS when set. */
xo_cluster_t *xo_cli_cluster_load(const char *path)
{
    xo_cluster_t *c = NULL;
    xo_cluster_error_t err = {0};
    if (xo__cluster_load(path, &c, &err) != XO_OK) {
        fprintf(stderr, "xoscar: %s\n", err.text);
        return NULL;
    }
    xo__cluster_apply_environment(c); /* its secret and transports */
    return c;
}

static xo_cluster_t *load(const char *path) { return xo_cli_cluster_load(path); }

void xo__cli_run_dir(const xo_cluster_t *c, char *buf, size_t len)
{
    const char *dir = getenv("XO_RUN_DIR");
    char def[64];
    if (!dir || !dir[0]) {
        snprintf(def, sizeof def, "/tmp/xoscar-%d", (int)getuid());
        dir = def;
    }
    snprintf(buf, len, "%s/%s", dir, c->name);
}

static void state_path(const xo_cluster_t *c, const char *host, char *buf, size_t len)
{
    char dir[900];
    xo__cli_run_dir(c, dir, sizeof dir);
    snprintf(buf, len, "%s/%s.pid", dir, host);
}

/* A host's main pool logs to <run dir>/<host>.log, its sub pool n to <host>@n.log (cluster/host.c names those). */
static void log_path(const xo_cluster_t *c, const char *host, char *buf, size_t len)
{
    char dir[900];
    xo__cli_run_dir(c, dir, sizeof dir);
    snprintf(buf, len, "%s/%s.log", dir, host);
}

static int mkdirs(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", file);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

/* A zombie is not alive: a daemon that has exited stays one until its parent (init, or a container's PID 1 that
 * reaps late, or never) collects it, and `down` must not wait for that. */
static bool alive(pid_t pid)
{
    if (pid <= 0 || kill(pid, 0) != 0) return false;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

/* The pid of the live daemon that holds the state file's lock; 0 when the file is missing or nobody holds it (a
 * daemon that died: its pid, if some other process has it now, is not ours to signal). */
static pid_t daemon_pid(const char *state)
{
    int fd = open(state, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    pid_t pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        char buf[64] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) pid = (pid_t)atoi(buf);
    }
    close(fd); /* drops our shared lock, if we got it */
    return pid > 0 ? pid : 0;
}

/* Takes the state file's lock for this daemon's life and writes "pid address" into it; the fd stays open (it holds
 * the lock) until the process exits. -1 with errno EWOULDBLOCK when a live daemon holds it already. */
static int claim_state(const char *state)
{
    int fd = open(state, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void write_state(int fd, const char *address)
{
    char line[300];
    int n = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), address);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
        xo_log_warn("cannot write the state file: %s", strerror(errno));
}

void xo__cli_host_state_address(const xo_cluster_t *c, const char *host, char *buf, size_t len)
{
    char state[1024], line[400] = "";
    state_path(c, host, state, sizeof state);
    buf[0] = '\0';
    FILE *f = fopen(state, "re");
    if (!f) return;
    if (fgets(line, sizeof line, f)) {
        char address[300];
        if (sscanf(line, "%*d %299s", address) == 1) snprintf(buf, len, "%s", address);
    }
    fclose(f);
}

/* ---- up ------------------------------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

/* Runs one host in this process until SIGTERM/SIGINT, its pools logging to log (as well as to stderr). ready_fd (or
 * -1) gets "ok ADDRESS N\n" or "error: text\n"; a daemon (ready_fd given) also stops echoing its lines to its
 * caller's stderr once ready (xo__log_set_echo). */
static int run_host(const xo_cluster_t *c, size_t i, int ready_fd, const char *state, const char *log)
{
    const xo_cluster_host_t *h = &c->hosts[i];
    if (!xo__log_set_file(log))
        xo_log_warn("host %s: cannot open the log file %s: %s (logging to stderr only)", h->name, log,
                    strerror(errno));
    xo_cluster_error_t err = {0};
    xo_host_t *host = NULL;
    /* Before starting anything: two daemons of one host would fight over its ports. */
    int state_fd = claim_state(state);
    if (state_fd < 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            snprintf(err.text, sizeof err.text, "host %s is already up (pid %d holds %s)", h->name,
                     (int)daemon_pid(state), state);
        else
            snprintf(err.text, sizeof err.text, "host %s: cannot open %s: %s", h->name, state, strerror(e));
        if (ready_fd >= 0) dprintf(ready_fd, "error: %s\n", err.text);
        else fprintf(stderr, "xoscar: %s\n", err.text);
        return 1;
    }
    xo_status_t st = xo__cluster_start_host(c, i, log, &host, &err);
    if (st != XO_OK) {
        if (ready_fd >= 0) dprintf(ready_fd, "error: %s\n", err.text);
        else fprintf(stderr, "xoscar: %s\n", err.text);
        unlink(state);
        close(state_fd);
        return 1;
    }
    write_state(state_fd, xo_host_address(host));
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (ready_fd >= 0) {
        xo__log_set_echo(-1); /* before "ok": the caller may be gone the moment it reads it */
        dprintf(ready_fd, "ok %s %zu\n", xo_host_address(host), xo_host_sub_pool_count(host));
        close(ready_fd);
    } else {
        printf("host %s up at %s with %zu sub pools (pid %d); Ctrl-C stops it\n", h->name, xo_host_address(host),
               xo_host_sub_pool_count(host), (int)getpid());
        fflush(stdout);
    }
    xo_log_info("host %s up at %s with %zu sub pools, logging to %s", h->name, xo_host_address(host),
                xo_host_sub_pool_count(host), log);
    while (!stop_signal) pause();
    xo_host_stop(host);
    unlink(state); /* while still holding the lock: a new daemon's file is never the one removed */
    close(state_fd);
    return 0;
}

/* Closes the descriptors this process was given by whoever ran it (a pipe of `xoscar up f | cat`, a test harness's),
 * except keep: they are the ones without FD_CLOEXEC, since everything this process opened itself is O_CLOEXEC (and
 * stays open: the library may hold some). A daemon holding its caller's pipe would keep the caller's reader
 * waiting until `down`. */
static void close_inherited(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    int fds[256], n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 256;) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= STDERR_FILENO || fd == keep || fd == dirfd(d)) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) fds[n++] = fd;
    }
    closedir(d);
    for (int k = 0; k < n; k++) close(fds[k]);
}

/* Starts host i as a daemon and waits until it is ready. The daemon has its own session, no terminal, and none of
 * our descriptors but a pipe to say it is ready: its stdin is /dev/null, its stdout and stderr its log file; its
 * log lines also go to our stderr until it is ready (a device fallback, a profile that does not match), so `up`
 * shows them and still returns, whatever its output is connected to. */
static int daemonize_host(const xo_cluster_t *c, size_t i)
{
    const xo_cluster_host_t *h = &c->hosts[i];
    char state[1024], log[1024];
    state_path(c, h->name, state, sizeof state);
    log_path(c, h->name, log, sizeof log);
    pid_t running = daemon_pid(state);
    if (running) {
        fprintf(stderr, "xoscar: host %s is already up (pid %d, %s)\n", h->name, (int)running, state);
        return 1;
    }
    if (mkdirs(state) != 0) {
        fprintf(stderr, "xoscar: cannot create %s: %s\n", state, strerror(errno));
        return 1;
    }
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (out < 0) {
        fprintf(stderr, "xoscar: host %s: cannot open its log file %s: %s\n", h->name, log, strerror(errno));
        return 1;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { /* the sub pools it starts must not hold our end open */
        close(out);
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "xoscar: fork: %s\n", strerror(errno));
        close(out);
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        setsid();
        int echo_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0) dup2(devnull, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        if (devnull >= 0) close(devnull);
        close(out);
        close_inherited(fds[1]);
        xo__log_set_echo(echo_fd);
        _exit(run_host(c, i, fds[1], state, log));
    }
    close(out);
    close(fds[1]);
    char line[512] = "";
    FILE *r = fdopen(fds[0], "r");
    bool got = r && fgets(line, sizeof line, r);
    if (r) fclose(r);
    if (!got || strncmp(line, "ok ", 3) != 0) {
        fprintf(stderr, "xoscar: host %s did not start: %s", h->name, got ? line + 7 : "it exited\n");
        waitpid(pid, NULL, 0);
        return 1;
    }
    char address[256];
    size_t subs = 0;
    sscanf(line + 3, "%255s %zu", address, &subs);
    printf("host %s up at %s: main pool pid %d, %zu sub pools; log %s\n", h->name, address, (int)pid, subs, log);
    return 0;
}

/* The log level `up` was asked for, by XO_LOG_LEVEL or --log-level (which sets it), or NULL: the file's. */
static const char *asked_level;

/* One log level for every pool of the hosts `up` starts: the file's log_level, unless XO_LOG_LEVEL (or
 * --log-level, which main.c turns into XO_LOG_LEVEL and so wins over it) says otherwise. This process's threshold
 * and XO_LOG_LEVEL get it: a daemon forked from here inherits both, and cluster/host.c hands the threshold to every
 * sub pool it starts; hosts started over ssh get it as --log-level when it was asked for here. false after saying
 * why: XO_LOG_LEVEL names no level. */
static bool apply_log_level(const xo_cluster_t *c)
{
    xo_log_level_t level = c->log_level;
    const char *env = getenv("XO_LOG_LEVEL");
    if (env && env[0] && !xo__log_parse_level(env, &level)) {
        fprintf(stderr, "xoscar: XO_LOG_LEVEL=%s: expected error, warn, info, debug or trace\n", env);
        return false;
    }
    asked_level = env && env[0] ? xo__log_level_name(level) : NULL;
    xo__log_set_threshold(level);
    setenv("XO_LOG_LEVEL", xo__log_level_name(level), 1);
    return true;
}

static int launch_remote(const xo_cluster_t *c, size_t i, const char *self, const char *verb)
{
    const xo_cluster_host_t *h = &c->hosts[i];
    if (h->launcher == XO_LAUNCHER_NONE) {
        printf("host %s: launcher none, start it there with: xoscar %s %s --host %s\n", h->name, verb, c->path,
               h->name);
        return 0;
    }
    /* ssh: the same command on the other machine (the file must be at the same path there). */
    char cmd[2048], level[64] = "";
    if (asked_level && strcmp(verb, "up") == 0) snprintf(level, sizeof level, " --log-level %s", asked_level);
    snprintf(cmd, sizeof cmd, "ssh -o BatchMode=yes %s %s%s %s %s --host %s", h->address, self, level, verb, c->path,
             h->name);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "xoscar: host %s: `%s` failed (%d)\n", h->name, cmd, rc);
    return rc == 0 ? 0 : 1;
}

/* Which hosts a command acts on: --host NAME, else those that are this machine or launched locally. */
static bool selected(const xo_cluster_t *c, size_t i, const char *only)
{
    if (only) return strcmp(c->hosts[i].name, only) == 0;
    return c->hosts[i].launcher == XO_LAUNCHER_LOCAL || xo__cluster_host_is_local(c, i);
}

static int parse_opts(int argc, char **argv, const char **only, bool *foreground)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) *only = argv[++i];
        else if (foreground && strcmp(argv[i], "--foreground") == 0) *foreground = true;
        else {
            fprintf(stderr, "xoscar: unexpected argument %s\n", argv[i]);
            return xo__cli_usage_error(argv[0]);
        }
    }
    return 0;
}

static int cmd_up(int argc, char **argv)
{
    const char *only = NULL;
    bool foreground = false;
    if (argc < 2) return xo__cli_usage_error(argv[0]);
    int rc = parse_opts(argc, argv, &only, &foreground);
    if (rc) return rc;
    xo_cluster_t *c = load(argv[1]);
    if (!c) return 2;
    if (only && xo__cluster_find_host(c, only) < 0) {
        fprintf(stderr, "xoscar: %s has no host named %s\n", argv[1], only);
        xo__cluster_free(c);
        return 2;
    }
    if (!apply_log_level(c)) {
        xo__cluster_free(c);
        return 2;
    }
    xo_topology_t *topo = NULL;
    xo__topology_load(&topo);
    for (size_t i = 0; i < c->n_hosts && rc == 0; i++) {
        if (!selected(c, i, only)) continue;
        xo_cluster_error_t err = {0};
        if (topo && xo__cluster_check_host(c, i, topo, &err) != XO_OK) {
            fprintf(stderr, "xoscar: %s\n", err.text);
            rc = 2;
        }
    }
    if (topo) xo__topology_free(topo);
    if (foreground) {
        long i = only ? xo__cluster_find_host(c, only) : -1;
        for (size_t k = 0; i < 0 && k < c->n_hosts; k++)
            if (selected(c, k, NULL)) i = (long)k;
        if (rc == 0 && i < 0) {
            fprintf(stderr, "xoscar: no host of %s is this machine (use --host NAME)\n", argv[1]);
            rc = 2;
        }
        if (rc == 0) {
            char state[1024];
            state_path(c, c->hosts[i].name, state, sizeof state);
            mkdirs(state);
            char log[1024];
            log_path(c, c->hosts[i].name, log, sizeof log);
            rc = run_host(c, (size_t)i, -1, state, log);
        }
        xo__cluster_free(c);
        return rc;
    }
    for (size_t i = 0; i < c->n_hosts && rc == 0; i++) {
        if (selected(c, i, only)) rc = daemonize_host(c, i);
        else if (!only) rc = launch_remote(c, i, "xoscar", "up");
    }
    xo__cluster_free(c);
    return rc;
}

/* ---- down ----------------------------------------------------------------------------------------------------- */

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static int pidfd_kill(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }

/* Until the process behind pidfd exits (a zombie counts: it has), at most ms. */
static bool wait_exit(int pidfd, int ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static int stop_host(const xo_cluster_t *c, size_t i)
{
    const xo_cluster_host_t *h = &c->hosts[i];
    char state[1024];
    state_path(c, h->name, state, sizeof state);
    if (access(state, F_OK) != 0) {
        printf("host %s: not up (no %s)\n", h->name, state);
        return 0;
    }
    pid_t pid = daemon_pid(state);
    /* The pidfd pins the process: once it is open, and the lock says that pid is still our daemon's, a signal
     * through it cannot reach another process that reused the pid. */
    int pidfd = pid ? pidfd_open_(pid) : -1;
    if (pid && pidfd < 0 && errno != ENOSYS) pid = 0; /* ESRCH: it exited meanwhile */
    if (pid && pidfd >= 0 && daemon_pid(state) != pid) pid = 0;
    if (!pid) {
        if (pidfd >= 0) close(pidfd);
        unlink(state);
        printf("host %s: was not running (stale %s removed)\n", h->name, state);
        return 0;
    }
    if (pidfd >= 0) {
        pidfd_kill(pidfd, SIGTERM);
        if (!wait_exit(pidfd, DOWN_GRACE_MS)) {
            pidfd_kill(pidfd, SIGKILL); /* its sub pools follow it (PR_SET_PDEATHSIG) */
            fprintf(stderr, "xoscar: host %s did not stop in %d ms: killed\n", h->name, DOWN_GRACE_MS);
            wait_exit(pidfd, DOWN_GRACE_MS);
        }
        close(pidfd);
    } else { /* no pidfd (kernel before 5.3): the lock check above is all we have */
        kill(pid, SIGTERM);
        for (int waited = 0; alive(pid) && waited < DOWN_GRACE_MS; waited += 10) usleep(10000);
        if (alive(pid)) {
            kill(pid, SIGKILL);
            fprintf(stderr, "xoscar: host %s did not stop in %d ms: killed\n", h->name, DOWN_GRACE_MS);
        }
    }
    if (!daemon_pid(state)) unlink(state); /* a daemon that exited cleanly removed it already */
    printf("host %s down\n", h->name);
    return 0;
}

static int cmd_down(int argc, char **argv)
{
    const char *only = NULL;
    if (argc < 2) return xo__cli_usage_error(argv[0]);
    int rc = parse_opts(argc, argv, &only, NULL);
    if (rc) return rc;
    xo_cluster_t *c = load(argv[1]);
    if (!c) return 2;
    for (size_t i = 0; i < c->n_hosts; i++) {
        if (selected(c, i, only)) rc |= stop_host(c, i);
        else if (!only) rc |= launch_remote(c, i, "xoscar", "down");
    }
    xo__cluster_free(c);
    return rc;
}

/* ---- status --------------------------------------------------------------------------------------------------- */

/* Every pool address of c, main pools first per host, into *pools_p (the caller frees the array and each string). */
size_t xo_cli_cluster_pools(const xo_cluster_t *c, char ***pools_p, char ***hosts_p)
{
    size_t n = 0, cap = 16;
    char **pools = malloc(cap * sizeof *pools), **hosts = malloc(cap * sizeof *hosts);
    for (size_t i = 0; pools && hosts && i < c->n_hosts; i++) {
        xo_cluster_host_config_t *hc = NULL;
        xo_cluster_error_t err = {0};
        if (xo__cluster_host_config(c, i, NULL, &hc, &err) != XO_OK) continue;
        for (unsigned k = 0; k <= hc->cfg.n_sub_pools; k++) {
            if (n == cap) {
                cap *= 2;
                char **np = realloc(pools, cap * sizeof *np), **nh = np ? realloc(hosts, cap * sizeof *nh) : NULL;
                if (np) pools = np;
                if (!nh) break;
                hosts = nh;
            }
            char address[300];
            if (k == 0) snprintf(address, sizeof address, "%s", hc->cfg.address);
            else snprintf(address, sizeof address, "%s/%u", hc->cfg.address, k);
            pools[n] = strdup(address);
            hosts[n++] = strdup(c->hosts[i].name);
        }
        xo__cluster_host_config_free(hc);
    }
    *pools_p = pools;
    *hosts_p = hosts;
    return n;
}

void xo_cli_free_list(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* The file's tune profile: its age, what measured it, what of the cluster it covers. */
typedef struct profile_facts {
    xo_profile_t *p;        /* NULL: not usable, err says why */
    xo_cluster_error_t err;
    long age_s;
    size_t covered, n_pools;
    char *differences;      /* the differences from the cluster, a line each; NULL: none */
} profile_facts_t;

/* Fills *f (released with profile_facts_free). */
static void profile_facts(const xo_cluster_t *c, profile_facts_t *f)
{
    *f = (profile_facts_t){0};
    if (xo__profile_load(c->placement.profile, &f->p, &f->err) != XO_OK) {
        f->p = NULL;
        return;
    }
    f->age_s = (long)(time(NULL) - f->p->measured_unix);
    char **pools, **hosts;
    size_t n = xo_cli_cluster_pools(c, &pools, &hosts);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < f->p->n_pools; k++)
            if (strcmp(f->p->pools[k].address, pools[i]) == 0) {
                f->covered++;
                break;
            }
    f->n_pools = n;
    if (xo__profile_compare(f->p, (const char *const *)pools, n, c->name, NULL)) {
        size_t len = 0;
        FILE *mem = open_memstream(&f->differences, &len);
        if (mem) {
            xo__profile_compare(f->p, (const char *const *)pools, n, c->name, mem);
            fclose(mem);
        }
        if (!f->differences) f->differences = strdup("");
    }
    xo_cli_free_list(pools, n);
    xo_cli_free_list(hosts, n);
}

static void profile_facts_free(profile_facts_t *f)
{
    xo__profile_free(f->p);
    free(f->differences);
}

static void print_profile_status(const xo_cluster_t *c)
{
    profile_facts_t f;
    profile_facts(c, &f);
    if (!f.p) {
        printf("profile: not usable: %s\n", f.err.text);
        return;
    }
    long age = f.age_s;
    char when[64];
    if (age < 0) snprintf(when, sizeof when, "in the future (clock skew?)");
    else if (age < 120) snprintf(when, sizeof when, "%ld s ago", age);
    else if (age < 2 * 3600) snprintf(when, sizeof when, "%ld min ago", age / 60);
    else if (age < 2 * 86400) snprintf(when, sizeof when, "%ld h ago", age / 3600);
    else snprintf(when, sizeof when, "%ld days ago", age / 86400);
    printf("profile: %s, measured %s (%s) on commit %s by `%s`: %zu pairs, covers %zu of the cluster's %zu pools\n",
           c->placement.profile, when, f.p->measured_at, f.p->commit, f.p->tool, f.p->n_pairs, f.covered, f.n_pools);
    if (f.differences) {
        printf("profile: differs from the cluster (those pools' pairs are unknown to placement):\n");
        for (char *l = f.differences, *e; (e = strchr(l, '\n')); l = e + 1) printf("  %.*s\n", (int)(e - l), l);
    }
    profile_facts_free(&f);
}

static json_t *profile_json(const xo_cluster_t *c)
{
    profile_facts_t f;
    profile_facts(c, &f);
    json_t *o = json_object();
    json_object_set_new(o, "path", json_string(c->placement.profile));
    if (!f.p) {
        json_object_set_new(o, "error", json_string(f.err.text));
        return o;
    }
    json_object_set_new(o, "age_s", json_integer(f.age_s));
    json_object_set_new(o, "measured_at", json_string(f.p->measured_at));
    json_object_set_new(o, "commit", json_string(f.p->commit));
    json_object_set_new(o, "tool", json_string(f.p->tool));
    json_object_set_new(o, "pairs", json_integer((json_int_t)f.p->n_pairs));
    json_object_set_new(o, "covers", json_integer((json_int_t)f.covered));
    json_object_set_new(o, "cluster_pools", json_integer((json_int_t)f.n_pools));
    json_t *diffs = json_array();
    for (char *l = f.differences, *e; l && (e = strchr(l, '\n')); l = e + 1)
        json_array_append_new(diffs, json_stringn(l, (size_t)(e - l)));
    json_object_set_new(o, "differences", diffs);
    profile_facts_free(&f);
    return o;
}

/* status FILE [--json]: asks every pool of every host for its pid and actor count. The table and the JSON hold the
 * same facts (docs/cluster-file.md, "xoscar status --json"); exit 3 when a pool is not up. */
static int cmd_status(int argc, char **argv)
{
    bool as_json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (argc != 2 && !as_json) return xo__cli_usage_error(argv[0]);
    xo_cluster_t *c = load(argv[1]);
    if (!c) return 2;
    int down = 0;
    json_t *doc = as_json ? json_object() : NULL, *jhosts = as_json ? json_array() : NULL;
    if (!as_json) printf("%-10s %-26s %8s %8s  %s\n", "host", "pool", "pid", "actors", "state");
    for (size_t i = 0; i < c->n_hosts; i++) {
        xo_cluster_host_config_t *hc = NULL;
        xo_cluster_error_t err = {0};
        json_t *jh = as_json ? json_object() : NULL, *jpools = as_json ? json_array() : NULL;
        if (jh) {
            json_object_set_new(jh, "name", json_string(c->hosts[i].name));
            json_array_append_new(jhosts, jh);
            json_object_set_new(jh, "pools", jpools);
        }
        if (xo__cluster_host_config(c, i, NULL, &hc, &err) != XO_OK) {
            if (jh) json_object_set_new(jh, "error", json_string(err.text));
            else printf("%-10s %s\n", c->hosts[i].name, err.text);
            down++;
            continue;
        }
        if (jh) json_object_set_new(jh, "address", json_string(hc->cfg.address));
        char log[1024];
        log_path(c, c->hosts[i].name, log, sizeof log);
        size_t stem = strlen(log) - 4; /* before ".log" */
        for (unsigned k = 0; k <= hc->cfg.n_sub_pools; k++) {
            char address[300], pool_log[1100];
            if (k == 0) snprintf(address, sizeof address, "%s", hc->cfg.address);
            else snprintf(address, sizeof address, "%s/%u", hc->cfg.address, k);
            if (k == 0) snprintf(pool_log, sizeof pool_log, "%s", log);
            else snprintf(pool_log, sizeof pool_log, "%.*s@%u.log", (int)stem, log, k);
            int pid = 0;
            uint64_t actors = 0;
            xo_status_t st = xo_cli_pool_info(address, 2000, &pid, &actors);
            if (st != XO_OK) down++;
            if (jpools) {
                json_t *jp = json_object();
                json_object_set_new(jp, "address", json_string(address));
                json_object_set_new(jp, "index", json_integer(k));
                json_object_set_new(jp, "main", json_boolean(k == 0));
                json_object_set_new(jp, "pid", st == XO_OK ? json_integer(pid) : json_null());
                json_object_set_new(jp, "actors", st == XO_OK ? json_integer((json_int_t)actors) : json_null());
                json_object_set_new(jp, "state", json_string(st == XO_OK ? "up" : xo_status_name(st)));
                json_object_set_new(jp, "log", access(pool_log, F_OK) == 0 ? json_string(pool_log) : json_null());
                json_array_append_new(jpools, jp);
            } else if (st == XO_OK) {
                printf("%-10s %-26s %8d %8llu  up%s\n", c->hosts[i].name, address, pid, (unsigned long long)actors,
                       k == 0 ? " (main)" : "");
            } else {
                printf("%-10s %-26s %8s %8s  %s\n", c->hosts[i].name, address, "-", "-", xo_status_name(st));
            }
        }
        xo__cluster_host_config_free(hc);
    }
    if (doc) {
        json_object_set_new(doc, "cluster", json_string(c->name));
        json_object_set_new(doc, "file", json_string(c->path));
        json_object_set_new(doc, "hosts", jhosts);
        json_object_set_new(doc, "down", json_integer(down));
        json_object_set_new(doc, "profile", c->placement.profile ? profile_json(c) : json_null());
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else if (c->placement.profile) {
        print_profile_status(c);
    }
    xo__cluster_free(c);
    return down ? 3 : 0;
}

static int cmd_config(int argc, char **argv)
{
    if (argc != 2 && !(argc == 3 && strcmp(argv[2], "--dump") == 0)) return xo__cli_usage_error(argv[0]);
    xo_cluster_t *c = load(argv[1]);
    if (!c) return 2;
    xo__cluster_dump(c, stdout);
    xo__cluster_free(c);
    return 0;
}

/* Runs a client program of the cluster: the secret travels in its environment, not on a command line. */
static int cmd_run(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) return xo__cli_usage_error(argv[0]);
    xo_cluster_t *c = load(argv[1]);
    if (!c) return 2;
    xo_cluster_host_config_t *hc = NULL;
    xo_cluster_error_t err = {0};
    if (c->n_hosts == 0 || xo__cluster_host_config(c, 0, NULL, &hc, &err) != XO_OK) {
        fprintf(stderr, "xoscar: %s\n", err.text[0] ? err.text : "the cluster has no host");
        xo__cluster_free(c);
        return 2;
    }
    setenv("XO_SECRET", c->secret, 1);
    setenv("XO_CLUSTER_MAIN", hc->cfg.address, 1);
    xo__cluster_host_config_free(hc);
    xo__cluster_free(c);
    execvp(argv[3], argv + 3);
    fprintf(stderr, "xoscar: cannot run %s: %s\n", argv[3], strerror(errno));
    return 2;
}

int xo_cli_cluster_command(const char *cmd, int argc, char **argv)
{
    int rc = -1;
    if (strcmp(cmd, "run") == 0) rc = cmd_run(argc, argv);
    if (strcmp(cmd, "up") == 0) rc = cmd_up(argc, argv);
    else if (strcmp(cmd, "down") == 0) rc = cmd_down(argc, argv);
    else if (strcmp(cmd, "status") == 0) rc = cmd_status(argc, argv);
    else if (strcmp(cmd, "config") == 0) rc = cmd_config(argc, argv);
    else if (strcmp(cmd, "tune") == 0) rc = xo_cli_tune(argc, argv);
    else if (strcmp(cmd, "logs") == 0) rc = xo__cli_logs(argc, argv);
    return rc;
}

int xo__cli_use_cluster(const char *path, const char *name, char *buf, size_t len)
{
    xo_cluster_t *c = load(path);
    if (!c) return 2;
    snprintf(buf, len, "%s", name);
    /* "host:port[/N]" and "[v6]:port" are addresses; a host's name has no colon. */
    if (!strchr(name, ':')) {
        const char *slash = strchr(name, '/');
        char host[256];
        snprintf(host, sizeof host, "%.*s", slash ? (int)(slash - name) : (int)strlen(name), name);
        long i = xo__cluster_find_host(c, host);
        xo_cluster_host_config_t *hc = NULL;
        xo_cluster_error_t err = {0};
        if (i < 0) {
            fprintf(stderr, "xoscar: %s has no host named '%s' (give a host's name or an address host:port[/N])\n",
                    path, host);
            xo__cluster_free(c);
            return 2;
        }
        if (xo__cluster_host_config(c, (size_t)i, NULL, &hc, &err) != XO_OK) {
            fprintf(stderr, "xoscar: %s\n", err.text);
            xo__cluster_free(c);
            return 2;
        }
        snprintf(buf, len, "%s%s", hc->cfg.address, slash ? slash : "");
        xo__cluster_host_config_free(hc);
    }
    xo__cluster_free(c);
    return 0;
}
