/* A host: the main pool in this process, sub pools as xoscar-pool processes, their supervision and placement.
 *
 * Supervision is split so that no pool's recovery delays another's death being seen. One watcher thread polls
 * every child's pidfd (and the restarts waiting for their back-off) and does only what is quick: reap, fail the
 * calls in flight, report DOWN, count the restart against the intensity. The slow work of a pool (starting its
 * process and waiting for it to be ready, re-creating its actors one at a time, stopping it) runs on that pool's
 * own keeper thread. Keepers start their children: PR_SET_PDEATHSIG (which the sub pool sets) fires when the
 * *thread* that started it exits, so a keeper lives as long as its pool (until it is removed or the host stops).
 *
 * Ownership between them: pid and pidfd are published by the keeper and cleared by the watcher, both under the
 * lock; only the watcher reaps and closes pidfds, so a signal sent under the lock never reaches a reused pid. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policies/policy.h"
#include "runtime/core.h"
#include "runtime/auth.h"
#include "base/log.h"
#include "runtime/remote.h"
#include "cluster/pool_load.h"
#include "cluster/port_pick.h"
#include "cluster/profile.h"
#include "cluster/topology.h"
#include "xoscar/gpu.h"
#include "xoscar/host.h"
#include "xoscar/module.h"

extern char **environ;

#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 2000
#define MAX_SUBS 256
#define MAX_LABELS 16
#define MAX_NEAR 64 /* near actors of one placement (the weighted policy's bound) */
#define INFO_TIMEOUT_MS 2000 /* placement's wait for the pools' live load; a pool slower than that is left to tally */

typedef struct placed {
    char *uid;
    char *class_name;
    char *label, *mark;   /* the IdleLabel pair it was created with, or NULL */
    void *args;           /* the encoded create arguments, for XO_RESTART_ACTORS */
    size_t args_len;
    unsigned crashes;     /* times its pool died while it was being re-created */
} placed_t;

/* A record whose re-creation took its pool down this many times is given up (the pool goes on without it). */
#define REPLAY_CRASHES_MAX 2

typedef struct sub_pool {
    xo_host_t *host;
    char address[160];
    char cpus[256];
    char *labels_buf;
    const char *labels[MAX_LABELS];
    size_t n_labels;
    unsigned n_threads;
    char device[32];           /* "" for none */
    uint64_t device_capacity;
    pid_t pid;
    int pidfd;
    bool removed;
    placed_t *placed;
    size_t n_placed, cap_placed;
    xo_idle_mark_t *marks; /* built for the policy views */
    size_t n_creating;     /* placed creates still in flight there (placement's live load) */
    char **env;            /* "NAME=value" entries added to its process's environment (ours) */
    size_t n_env;
    /* Restart intensity (lock) */
    uint64_t *restarts;    /* when it was restarted within the current period (ns), oldest first */
    size_t n_restarts;
    uint64_t restart_at;   /* a restart waits for its back-off until then (ns); 0: none pending */
    bool failed;           /* restarted too often: left down for good */
    char why[XO_ERROR_TEXT_MAX];
    /* Its keeper thread and the jobs handed to it (lock) */
    pthread_t keeper;
    bool keeper_live;      /* started and not joined yet */
    pthread_cond_t cond;   /* jobs for the keeper; reaps, for whoever waits for a death (CLOCK_MONOTONIC) */
    unsigned jobs;         /* JOB_* bits */
    bool stopping;         /* we are stopping its process: that death is no failure */
    bool spawn_done;       /* JOB_SPAWN's answer: */
    xo_status_t spawn_st;
    char spawn_err[XO_ERROR_TEXT_MAX];
    uint64_t deaths;       /* processes of it reaped so far */
} sub_pool_t;

enum { JOB_SPAWN = 1u, JOB_RESTART = 2u, JOB_STOP = 4u };

struct xo_host {
    xo_pool_t *main;
    char *binary;
    char *log_file;              /* the host's log file (cfg.log_file), or NULL */
    char **modules;
    size_t n_modules;
    xo_restart_t restart;
    unsigned max_restarts;
    uint64_t period_ns, backoff_ns, backoff_max_ns;
    char default_policy[64];
    double weights[3];
    void (*on_event)(const char *, xo_pool_event_t, void *);
    void *event_arg;
    pthread_mutex_t lock;        /* subs, placement state, commands */
    pthread_cond_t cond;
    sub_pool_t *subs[MAX_SUBS];
    size_t n_subs;
    uint64_t rng, cursor;
    xo_topology_t *topo;
    xo_profile_t *profile;       /* the tune profile placement reads (xo_host_load_profile), or NULL; lock */
    char **peers;                /* the other hosts' main pool addresses (xo_host_set_cluster); lock */
    size_t n_peers;
    /* actors created directly in a sub pool (not through placement), as the sub pools report them */
    char **ext_uid, **ext_addr;
    size_t n_ext, cap_ext;
    pthread_t supervisor;        /* the watcher */
    bool watcher_live;
    bool quit;                   /* the watcher returns (lock) */
    int wakefd;                  /* wakes the watcher: a new pidfd, a restart scheduled, quit */
};

static void ext_forget_pool(xo_host_t *h, const char *address);
static void unrecord(struct sub_pool *sp, const char *uid);

static int pidfd_open_(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

/* ---- finding the pool binary ---------------------------------------------------------------------------------- */

static char *find_binary(const char *configured)
{
    if (configured) return strdup(configured);
    const char *env = getenv("XO_POOL_BINARY");
    if (env && *env) return strdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* beside the executable, or in the build tree's runtime/ seen from tests/<dir>/, bench/, examples/ */
            const char *tries[] = {"%s/xoscar-pool", "%s/../cluster/xoscar-pool", "%s/../../cluster/xoscar-pool"};
            for (size_t i = 0; i < 3; i++) {
                char path[PATH_MAX + 64];
                snprintf(path, sizeof path, tries[i], self);
                if (access(path, X_OK) == 0) return realpath(path, NULL);
            }
        }
    }
    return strdup("xoscar-pool"); /* from PATH */
}

/* ---- spawning (supervisor thread) ----------------------------------------------------------------------------- */

/* Sub pool n's log file beside the host's: "dir/solo.log" gives "dir/solo@n.log" (a host's name may hold '-' and
 * '.', never '@', so no other host's file can have that name); NULL without a host log file. The caller frees it. */
static char *sub_log_path(const xo_host_t *h, const sub_pool_t *sp)
{
    if (!h->log_file) return NULL;
    const char *slash = strrchr(sp->address, '/');
    const char *n = slash ? slash + 1 : "0";
    size_t len = strlen(h->log_file);
    size_t stem = len > 4 && !strcmp(h->log_file + len - 4, ".log") ? len - 4 : len;
    char *path = NULL;
    if (asprintf(&path, "%.*s@%s%s", (int)stem, h->log_file, n, h->log_file + stem) < 0) return NULL;
    return path;
}

/* Whether fd is the file at path. */
static bool writes_to(int fd, const char *path)
{
    struct stat a, b;
    return path && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* recovering: a restart whose actors replay() re-creates: the new process answers their callers XO_ERECOVERING
 * from its first connection on (runtime/recovery.c), until replay() says which ones come back and when it is done. */
static xo_status_t spawn_sub(xo_host_t *h, sub_pool_t *sp, bool recovering, char *err, size_t err_len)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        return XO_ESYS;
    }
    char parent[32], threads[32], capacity[32];
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    snprintf(threads, sizeof threads, "%u", sp->n_threads);
    const char *argv[24 + 2 * 64];
    size_t k = 0;
    argv[k++] = h->binary;
    argv[k++] = "--address";
    argv[k++] = sp->address;
    argv[k++] = "--ready-fd";
    argv[k++] = "3";
    argv[k++] = "--parent-pid";
    argv[k++] = parent;
    if (sp->n_threads) {
        argv[k++] = "--threads";
        argv[k++] = threads;
    }
    if (sp->cpus[0]) {
        argv[k++] = "--cpus";
        argv[k++] = sp->cpus;
    }
    if (sp->device[0]) {
        snprintf(capacity, sizeof capacity, "%llu", (unsigned long long)sp->device_capacity);
        argv[k++] = "--device";
        argv[k++] = sp->device;
        argv[k++] = "--device-capacity";
        argv[k++] = capacity;
    }
    for (size_t i = 0; i < h->n_modules && i < 64; i++) {
        argv[k++] = "--module";
        argv[k++] = h->modules[i];
    }
    argv[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 3); /* dup2 clears CLOEXEC on the child's fd 3 */
    /* The child's environment: ours, then the sub pool's own entries (replacing ours of the same name), with
     * XO_SECRET set to this process's secret (it authenticates with it; the config cannot name it), our log
     * threshold (one level for every pool of the host, however this process got it; a sub pool's own XO_LOG_LEVEL
     * entry wins) and its log file. */
    char *log_path = sub_log_path(h, sp);
    char *secret = xo__auth_secret_dup();
    char *vars[4] = {NULL, NULL, NULL, NULL};
    bool own_level = false;
    for (size_t i = 0; i < sp->n_env; i++) own_level |= strncmp(sp->env[i], "XO_LOG_LEVEL=", 13) == 0;
    bool made = secret && asprintf(&vars[0], "XO_SECRET=%s", secret) >= 0 &&
                (own_level || asprintf(&vars[1], "XO_LOG_LEVEL=%s", xo__log_level_name(xo__log_threshold())) >= 0) &&
                (!log_path || asprintf(&vars[2], "XO_LOG_FILE=%s", log_path) >= 0) &&
                (!recovering || (vars[3] = strdup("XO_RECOVERING=1")) != NULL);
    free(secret);
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    char **envp = made ? calloc(n_env + sp->n_env + 5, sizeof *envp) : NULL;
    if (envp) {
        size_t k2 = 0;
        for (size_t e = 0; e < n_env; e++) {
            bool replaced = strncmp(environ[e], "XO_SECRET=", 10) == 0 ||
                            strncmp(environ[e], "XO_LOG_LEVEL=", 13) == 0 ||
                            strncmp(environ[e], "XO_RECOVERING=", 14) == 0 ||
                            (log_path && strncmp(environ[e], "XO_LOG_FILE=", 12) == 0);
            for (size_t i = 0; !replaced && i < sp->n_env; i++) {
                size_t name = (size_t)(strchr(sp->env[i], '=') - sp->env[i]);
                replaced = strncmp(environ[e], sp->env[i], name + 1) == 0;
            }
            if (!replaced) envp[k2++] = environ[e];
        }
        for (size_t i = 0; i < sp->n_env; i++)
            if (!(log_path && strncmp(sp->env[i], "XO_LOG_FILE=", 12) == 0)) envp[k2++] = sp->env[i];
        for (size_t v = 0; v < 4; v++)
            if (vars[v]) envp[k2++] = vars[v];
        envp[k2] = NULL;
    }
    /* A daemon's stdout and stderr are the host's log file: the sub pool's are its own file then, so that each file
     * holds one pool's lines (its log lines once: stderr is its XO_LOG_FILE). Otherwise (a host in the foreground,
     * a test) it writes where we do, as well as to its file. */
    if (log_path && writes_to(STDERR_FILENO, h->log_file)) {
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);
        posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    }
    pid_t pid;
    int rc = envp ? posix_spawnp(&pid, h->binary, &fa, NULL, (char *const *)argv, envp) : ENOMEM;
    free(envp);
    for (size_t v = 0; v < 4; v++) free(vars[v]);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        free(log_path);
        close(fds[0]);
        snprintf(err, err_len, "cannot start %s: %s", h->binary, strerror(rc));
        return XO_ESYS;
    }
    /* Wait for its "ready" line: the address it serves. EOF means it died first. */
    char line[XO_ERROR_TEXT_MAX + 64];
    size_t got = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    uint64_t deadline = xo__now_ns() + (uint64_t)READY_TIMEOUT_MS * 1000000ull;
    xo_status_t st = XO_OK;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        uint64_t now = xo__now_ns();
        if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000ull) + 1) <= 0) {
            snprintf(err, err_len, "sub pool %s was not ready within %d ms", sp->address, READY_TIMEOUT_MS);
            st = XO_ETIMEDOUT;
            break;
        }
        ssize_t n = read(fds[0], line + got, sizeof line - 1 - got);
        if (n <= 0) {
            int status = 0;
            waitpid(pid, &status, 0);
            pid = 0;
            snprintf(err, err_len, "sub pool %s exited before it was ready (%s %d; see its log %s)", sp->address,
                     WIFSIGNALED(status) ? "signal" : "exit code",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), log_path ? log_path : "above");
            st = XO_EPOOLDIED;
            break;
        }
        got += (size_t)n;
    }
    close(fds[0]);
    free(log_path);
    line[got] = '\0';
    int code = 0, at = 0;
    if (st == XO_OK && sscanf(line, "error %d %n", &code, &at) == 1 && at > 0) { /* it could not start its pool */
        char *nl = memchr(line, '\n', got);
        if (nl) *nl = '\0';
        snprintf(err, err_len, "%s", line + at);
        st = code < 0 ? (xo_status_t)code : XO_ESYS;
    }
    if (st != XO_OK) {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        return st;
    }
    int pidfd = pidfd_open_(pid);
    pthread_mutex_lock(&h->lock); /* pid and pidfd are read by other threads (xo_host_sub_pool_pid, placement) */
    sp->pid = pid;
    sp->pidfd = pidfd;
    pthread_mutex_unlock(&h->lock);
    return XO_OK;
}

static void wake_watcher(xo_host_t *h)
{
    uint64_t one = 1;
    ssize_t w = write(h->wakefd, &one, sizeof one);
    (void)w;
}

/* Waits (lock held) until sp has had more than deaths reaped processes, or ms passed; true when it has. */
static bool wait_reaped(xo_host_t *h, sub_pool_t *sp, uint64_t deaths, int ms)
{
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    at.tv_sec += ms / 1000;
    at.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    while (sp->deaths <= deaths)
        if (pthread_cond_timedwait(&sp->cond, &h->lock, &at) == ETIMEDOUT) return sp->deaths > deaths;
    return true;
}

/* sp's keeper: SIGTERM, SIGKILL after STOP_GRACE_MS, and the watcher's reap waited for (it fails the calls in
 * flight to it, and reports no DOWN: the death is ours). */
static void stop_sub(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    sp->stopping = true;
    if (sp->pid > 0) {
        uint64_t deaths = sp->deaths;
        kill(sp->pid, SIGTERM);
        if (!wait_reaped(h, sp, deaths, STOP_GRACE_MS) && sp->pid > 0) {
            kill(sp->pid, SIGKILL);
            if (!wait_reaped(h, sp, deaths, READY_TIMEOUT_MS))
                xo_log_error("sub pool %s: process %d not reaped %d ms after SIGKILL", sp->address, (int)sp->pid,
                             READY_TIMEOUT_MS);
        }
    }
    pthread_mutex_unlock(&h->lock);
}

/* Event callbacks run on the watcher (DOWN, FAILED) and on the pool's keeper (RECOVERED, FAILED after a restart
 * that could not start): different pools' events may come at the same time. */
static void emit(xo_host_t *h, const char *address, xo_pool_event_t ev)
{
    if (h->on_event) h->on_event(address, ev, h->event_arg);
}

static void placed_free(placed_t *p)
{
    free(p->uid);
    free(p->class_name);
    free(p->label);
    free(p->mark);
    free(p->args);
}

/* Drops sp's record of uid because its re-creation keeps failing (the pool goes on without it). */
static void give_up_actor(xo_host_t *h, sub_pool_t *sp, const char *uid, const char *why)
{
    xo_log_error("sub pool %s: gave up re-creating actor %s: %s", sp->address, uid, why);
    pthread_mutex_lock(&h->lock);
    unrecord(sp, uid);
    pthread_mutex_unlock(&h->lock);
}

/* Tells sp's new process which uids replay() is about to re-create (their callers get XO_ERECOVERING meanwhile), or,
 * with list NULL, that it is done. Best effort: a pool that cannot be told falls back to XO_ENOACTOR for missing
 * actors once it is told it is done, or answers XO_ERECOVERING for every missing actor until then. */
static void tell_recovering(sub_pool_t *sp, const placed_t *list, size_t n)
{
    xo_args_t *args = NULL;
    if (list) { /* one argument: the list of uids, packed straight into the arguments */
        if (!(args = xo_args_new(1))) return;
        msgpack_packer *pk = xo_args_packer(args);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
            const char *uid = list[i].uid ? list[i].uid : "";
            msgpack_pack_str_with_body(pk, uid, strlen(uid));
        }
    }
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(sp->address, XO_WIRE_RECOVERING, xo__chain_new(), NULL, NULL, args, true, &f);
    if (st == XO_OK) {
        st = xo_future_wait(f, READY_TIMEOUT_MS, NULL);
        xo__future_unref(f);
    }
    if (st != XO_OK) xo_log_warn("cannot tell sub pool %s what it is recovering: %s", sp->address, xo_last_error());
}

/* sp's keeper: re-creates the actors placed on sp (XO_RESTART_ACTORS), from their recorded create messages, one at
 * a time: when the pool dies meanwhile, the one being created is the suspect. An actor whose init fails (XO_EHOOK:
 * its create cannot succeed), or whose re-creation took the pool down REPLAY_CRASHES_MAX times, is given up. A stop
 * ends it between two creates. */
static void replay(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    size_t n = sp->n_placed;
    placed_t *copy = malloc((n ? n : 1) * sizeof *copy);
    for (size_t i = 0; copy && i < n; i++) { /* the records may change meanwhile (destroys): our own copies */
        placed_t *p = &sp->placed[i];
        copy[i] = (placed_t){.uid = strdup(p->uid), .class_name = strdup(p->class_name), .args_len = p->args_len};
        copy[i].args = p->args_len ? malloc(p->args_len) : NULL;
        if (copy[i].args) memcpy(copy[i].args, p->args, p->args_len);
    }
    pthread_mutex_unlock(&h->lock);
    tell_recovering(sp, copy, copy ? n : 0);
    for (size_t i = 0; copy && i < n; i++) {
        pthread_mutex_lock(&h->lock);
        bool stop = sp->stopping || sp->jobs & JOB_STOP;
        pthread_mutex_unlock(&h->lock);
        if (stop) break;
        if (!copy[i].uid || !copy[i].class_name) continue;
        xo_args_t *args = copy[i].args ? xo__args_from_bytes(copy[i].args, copy[i].args_len) : NULL;
        xo_future_t *f = NULL;
        xo_status_t st = xo__remote_send(sp->address, XO_WIRE_CREATE, xo__chain_new(), copy[i].uid,
                                        copy[i].class_name, args, true, &f);
        if (st == XO_OK) {
            st = xo_future_wait(f, READY_TIMEOUT_MS, NULL);
            xo__future_unref(f);
        }
        if (st == XO_OK || st == XO_EEXIST) continue;
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s: %s", xo_status_name(st), xo_last_error());
        xo_log_error("recovering actor %s on %s: %s", copy[i].uid, sp->address, why);
        if (st == XO_EHOOK || st == XO_ENOCLASS) {
            give_up_actor(h, sp, copy[i].uid, why);
        } else if (st == XO_EPOOLDIED || st == XO_ECLOSED || st == XO_EUNREACHABLE) {
            pthread_mutex_lock(&h->lock);
            unsigned crashes = 0;
            for (size_t k = 0; k < sp->n_placed; k++)
                if (strcmp(sp->placed[k].uid, copy[i].uid) == 0) crashes = ++sp->placed[k].crashes;
            pthread_mutex_unlock(&h->lock);
            if (crashes >= REPLAY_CRASHES_MAX) {
                snprintf(why, sizeof why, "its pool died during its re-creation %u times", crashes);
                give_up_actor(h, sp, copy[i].uid, why);
            }
            break; /* the pool is gone: the rest waits for the next restart */
        }
    }
    tell_recovering(sp, NULL, 0); /* the given-up ones, too, are no longer coming */
    for (size_t i = 0; copy && i < n; i++) placed_free(&copy[i]);
    free(copy);
}

/* Its actors are gone for good (no restart, or it was given up). */
static void forget_placed(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < sp->n_placed; i++) placed_free(&sp->placed[i]);
    sp->n_placed = 0;
    pthread_mutex_unlock(&h->lock);
}

/* Restart intensity, as Erlang/OTP supervisors have it: at most max_restarts restarts within period; one more
 * death leaves the pool down. Within the period each restart waits twice as long as the one before (the first is
 * immediate), so a pool that dies at once is not restarted hundreds of times a second. Sets restart_at, which the
 * watcher waits for before it hands the restart to the pool's keeper. */
static void schedule_restart(xo_host_t *h, sub_pool_t *sp, const char *death)
{
    uint64_t now = xo__now_ns();
    pthread_mutex_lock(&h->lock);
    size_t keep = 0;
    for (size_t i = 0; i < sp->n_restarts; i++)
        if (now - sp->restarts[i] < h->period_ns) sp->restarts[keep++] = sp->restarts[i];
    sp->n_restarts = keep;
    if (keep >= h->max_restarts) {
        snprintf(sp->why, sizeof sp->why, "sub pool %s was restarted %zu times in %llu ms (the most its restart "
                 "intensity allows: max_restarts %u in restart_period_ms %llu) and died again (%s); it stays down",
                 sp->address, keep, (unsigned long long)(h->period_ns / 1000000), h->max_restarts,
                 (unsigned long long)(h->period_ns / 1000000), death);
        sp->failed = true;
        pthread_mutex_unlock(&h->lock);
        xo_log_error("%s", sp->why);
        forget_placed(h, sp);
        emit(h, sp->address, XO_POOL_FAILED);
        return;
    }
    uint64_t delay = 0;
    if (keep > 0) {
        delay = h->backoff_ns;
        for (size_t i = 1; i < keep && delay < h->backoff_max_ns; i++) delay *= 2;
        if (delay > h->backoff_max_ns) delay = h->backoff_max_ns;
        xo_log_warn("sub pool %s: restart %zu within %llu ms, in %llu ms", sp->address, keep + 1,
                    (unsigned long long)(h->period_ns / 1000000), (unsigned long long)(delay / 1000000));
    }
    sp->restart_at = now + delay + 1; /* + 1: 0 means none pending */
    pthread_mutex_unlock(&h->lock);
}

/* sp's keeper, once the back-off is over: a new process, its actors re-created (XO_RESTART_ACTORS). */
static void restart_now(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    sp->restarts[sp->n_restarts++] = xo__now_ns();
    pthread_mutex_unlock(&h->lock);
    char err[XO_ERROR_TEXT_MAX];
    pthread_mutex_lock(&h->lock);
    bool recovering = h->restart == XO_RESTART_ACTORS && sp->n_placed > 0;
    pthread_mutex_unlock(&h->lock);
    if (spawn_sub(h, sp, recovering, err, sizeof err) != XO_OK) {
        xo_log_error("cannot restart sub pool %s: %s", sp->address, err);
        schedule_restart(h, sp, err); /* a failed start counts as a restart */
        wake_watcher(h);
        return;
    }
    wake_watcher(h); /* to watch the new pidfd */
    if (h->restart == XO_RESTART_ACTORS) replay(h, sp);
    emit(h, sp->address, XO_POOL_RECOVERED);
}

/* The watcher: sp's pidfd is readable, its process is gone. Quick work only: another pool's death must not wait. */
static void on_death(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    pid_t pid = sp->pid;
    bool stopping = sp->stopping, removed = sp->removed;
    pthread_mutex_unlock(&h->lock);
    if (pid <= 0) return;
    /* Its status without reaping it yet: the pid stays ours until the calls are failed and it is unpublished. */
    siginfo_t info = {0};
    waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
    char why[128];
    snprintf(why, sizeof why, "its process %d %s %d", (int)pid, info.si_code == CLD_EXITED ? "exited with code" :
             "was killed by signal", info.si_status);
    if (!stopping) xo_log_warn("sub pool %s died: %s", sp->address, why);
    xo__remote_peer_died(sp->address, stopping ? "the sub pool was stopped" : why);
    pthread_mutex_lock(&h->lock);
    waitpid(pid, NULL, 0);
    close(sp->pidfd);
    sp->pidfd = -1;
    sp->pid = 0;
    ext_forget_pool(h, sp->address); /* actors created there directly died with it (only placed ones are replayed) */
    if (stopping) {
        sp->deaths++;
        pthread_cond_broadcast(&sp->cond);
    }
    pthread_mutex_unlock(&h->lock);
    if (stopping) return;
    emit(h, sp->address, XO_POOL_DOWN);
    pthread_mutex_lock(&h->lock); /* seen: its calls failed, DOWN reported (xo_host_kill_actor waits for this) */
    sp->deaths++;
    pthread_cond_broadcast(&sp->cond);
    pthread_mutex_unlock(&h->lock);
    if (h->restart == XO_RESTART_NONE || removed) {
        if (h->restart == XO_RESTART_NONE) forget_placed(h, sp);
        return;
    }
    schedule_restart(h, sp, why);
}

static void *watch(void *arg)
{
    xo_host_t *h = arg;
    pthread_setname_np(pthread_self(), "xo-supervisor");
    for (;;) {
        struct pollfd pfds[MAX_SUBS + 1];
        sub_pool_t *who[MAX_SUBS + 1];
        size_t n = 0;
        pfds[n].fd = h->wakefd;
        pfds[n].events = POLLIN;
        who[n++] = NULL;
        pthread_mutex_lock(&h->lock);
        if (h->quit) {
            pthread_mutex_unlock(&h->lock);
            return NULL;
        }
        for (size_t i = 0; i < h->n_subs; i++)
            if (h->subs[i]->pid > 0 && h->subs[i]->pidfd >= 0) {
                pfds[n].fd = h->subs[i]->pidfd;
                pfds[n].events = POLLIN;
                who[n++] = h->subs[i];
            }
        /* The next restart waiting for its back-off bounds the wait. */
        uint64_t next = 0;
        for (size_t i = 0; i < h->n_subs; i++)
            if (h->subs[i]->restart_at && !h->subs[i]->removed && (!next || h->subs[i]->restart_at < next))
                next = h->subs[i]->restart_at;
        pthread_mutex_unlock(&h->lock);
        uint64_t now = xo__now_ns();
        int timeout = !next ? -1 : next <= now ? 0 : (int)((next - now + 999999) / 1000000);
        if (poll(pfds, n, timeout) < 0) continue;
        for (size_t i = 1; i < n; i++)
            if (pfds[i].revents) on_death(h, who[i]);
        if (pfds[0].revents) {
            uint64_t v;
            ssize_t r = read(h->wakefd, &v, sizeof v);
            (void)r;
        }
        /* Restarts whose back-off is over go to their pools' keepers. */
        now = xo__now_ns();
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_subs; i++) {
            sub_pool_t *sp = h->subs[i];
            if (sp->removed || sp->stopping) sp->restart_at = 0;
            if (sp->restart_at && sp->restart_at <= now) {
                sp->restart_at = 0;
                sp->jobs |= JOB_RESTART;
                pthread_cond_broadcast(&sp->cond);
            }
        }
        pthread_mutex_unlock(&h->lock);
    }
}

/* A sub pool's keeper: every slow job of its pool, in order; returns after JOB_STOP. */
static void *keep(void *arg)
{
    sub_pool_t *sp = arg;
    xo_host_t *h = sp->host;
    char name[16];
    snprintf(name, sizeof name, "xo-keep-%s", strrchr(sp->address, '/') + 1);
    pthread_setname_np(pthread_self(), name);
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!sp->jobs) pthread_cond_wait(&sp->cond, &h->lock);
        unsigned job = sp->jobs & JOB_STOP ? JOB_STOP : sp->jobs & JOB_SPAWN ? JOB_SPAWN : JOB_RESTART;
        sp->jobs &= ~job;
        if (job == JOB_STOP && sp->jobs & JOB_SPAWN) { /* its first start never happened: say so to its waiter */
            sp->spawn_st = XO_ECLOSED;
            snprintf(sp->spawn_err, sizeof sp->spawn_err, "sub pool %s stopped before it started", sp->address);
            sp->spawn_done = true;
            pthread_cond_broadcast(&sp->cond);
        }
        if (job == JOB_STOP) sp->jobs = 0;
        bool skip = job == JOB_RESTART && (sp->removed || sp->stopping);
        pthread_mutex_unlock(&h->lock);
        if (job == JOB_STOP) {
            stop_sub(h, sp);
            return NULL;
        }
        if (job == JOB_SPAWN) {
            char err[XO_ERROR_TEXT_MAX] = "";
            xo_status_t st = spawn_sub(h, sp, false, err, sizeof err);
            if (st == XO_OK) wake_watcher(h);
            pthread_mutex_lock(&h->lock);
            sp->spawn_st = st;
            snprintf(sp->spawn_err, sizeof sp->spawn_err, "%s", err);
            sp->spawn_done = true;
            pthread_cond_broadcast(&sp->cond);
            pthread_mutex_unlock(&h->lock);
        } else if (!skip) {
            restart_now(h, sp);
        }
        pthread_mutex_lock(&h->lock);
    }
}

static xo_status_t start_keeper(xo_host_t *h, sub_pool_t *sp)
{
    int rc = pthread_create(&sp->keeper, NULL, keep, sp);
    if (rc != 0) return xo__error_set(XO_ESYS, "cannot start the keeper of sub pool %s: %s", sp->address, strerror(rc));
    sp->keeper_live = true;
    return XO_OK;
}

/* Starts sp's first process on its keeper and waits until it is ready (or could not start). */
static xo_status_t spawn_on_keeper(xo_host_t *h, sub_pool_t *sp)
{
    pthread_mutex_lock(&h->lock);
    sp->spawn_done = false;
    sp->jobs |= JOB_SPAWN;
    pthread_cond_broadcast(&sp->cond);
    while (!sp->spawn_done) pthread_cond_wait(&sp->cond, &h->lock);
    xo_status_t st = sp->spawn_st;
    if (st != XO_OK) xo__error_set(st, "%s", sp->spawn_err);
    pthread_mutex_unlock(&h->lock);
    return st;
}

/* Stops sp's process on its keeper and ends the keeper. */
static void stop_keeper(xo_host_t *h, sub_pool_t *sp)
{
    if (!sp->keeper_live) return;
    pthread_mutex_lock(&h->lock);
    sp->jobs |= JOB_STOP;
    pthread_cond_broadcast(&sp->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(sp->keeper, NULL);
    sp->keeper_live = false;
}

/* ---- sub pools ------------------------------------------------------------------------------------------------ */

static void free_sub(sub_pool_t *sp)
{
    for (size_t i = 0; i < sp->n_placed; i++) placed_free(&sp->placed[i]);
    free(sp->placed);
    free(sp->restarts);
    free(sp->marks);
    free(sp->labels_buf);
    for (size_t i = 0; i < sp->n_env; i++) free(sp->env[i]);
    free(sp->env);
    pthread_cond_destroy(&sp->cond);
    free(sp);
}

static xo_status_t new_sub(xo_host_t *h, const xo_sub_pool_config_t *cfg, const xo_cpuset_t *default_cpus,
                           sub_pool_t **sp_p)
{
    if (h->n_subs + 1 >= MAX_SUBS) return xo__error_set(XO_EINVAL, "at most %d sub pools", MAX_SUBS - 1);
    sub_pool_t *sp = calloc(1, sizeof *sp);
    if (sp) sp->restarts = calloc(h->max_restarts + 1, sizeof *sp->restarts);
    if (!sp || !sp->restarts) {
        free(sp);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    sp->pidfd = -1;
    sp->host = h;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_reaped's deadlines */
    pthread_cond_init(&sp->cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(sp->address, sizeof sp->address, "%s/%zu", h->main->address, h->n_subs + 1);
    if (cfg && cfg->n_env) {
        sp->env = calloc(cfg->n_env, sizeof *sp->env);
        if (!sp->env || !cfg->env) {
            free_sub(sp);
            return !cfg->env ? xo__error_set(XO_ECONFIG, "sub pool: n_env %zu but no env", cfg->n_env)
                             : xo__error_set(XO_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < cfg->n_env; i++) {
            const char *e = cfg->env[i], *eq = e ? strchr(e, '=') : NULL;
            if (!eq || eq == e || memchr(e, '\n', (size_t)(eq - e))) {
                free_sub(sp);
                return xo__error_set(XO_ECONFIG, "sub pool env[%zu] \"%s\" is not NAME=value", i, e ? e : "(null)");
            }
            if ((size_t)(eq - e) == 9 && strncmp(e, "XO_SECRET", 9) == 0) {
                free_sub(sp);
                return xo__error_set(XO_ECONFIG, "sub pool env[%zu]: XO_SECRET is the host's (xo_set_secret), not "
                                                 "a sub pool's", i);
            }
            if (!(sp->env[sp->n_env] = strdup(e))) {
                free_sub(sp);
                return xo__error_set(XO_ENOMEM, "out of memory");
            }
            sp->n_env++;
        }
    }
    if (cfg && cfg->cpus) {
        xo_cpuset_t set;
        char err[256];
        if (xo__cpuset_parse(cfg->cpus, &set, err, sizeof err) != XO_OK ||
            (h->topo && xo__topology_check_cpuset(h->topo, &set, err, sizeof err) != XO_OK)) {
            free_sub(sp);
            return xo__error_set(XO_ECONFIG, "sub pool %s: cpus \"%s\": %s", sp->address, cfg->cpus, err);
        }
        snprintf(sp->cpus, sizeof sp->cpus, "%s", cfg->cpus);
    } else if (default_cpus) {
        xo__cpuset_format(default_cpus, sp->cpus, sizeof sp->cpus);
    }
    sp->n_threads = cfg ? cfg->n_threads : 0;
    if (cfg && cfg->device) snprintf(sp->device, sizeof sp->device, "%s", cfg->device);
    sp->device_capacity = cfg ? cfg->device_capacity : 0;
    if (cfg && cfg->labels) {
        sp->labels_buf = strdup(cfg->labels);
        for (char *save = NULL, *tok = strtok_r(sp->labels_buf, ",", &save); tok && sp->n_labels < MAX_LABELS;
             tok = strtok_r(NULL, ",", &save))
            sp->labels[sp->n_labels++] = tok;
    }
    *sp_p = sp;
    return XO_OK;
}

/* ---- lookup through the main pool ----------------------------------------------------------------------------- */

static void ext_remove_at(xo_host_t *h, size_t i)
{
    free(h->ext_uid[i]);
    free(h->ext_addr[i]);
    h->n_ext--;
    h->ext_uid[i] = h->ext_uid[h->n_ext];
    h->ext_addr[i] = h->ext_addr[h->n_ext];
}

/* Called with h->lock held. */
static void ext_set(xo_host_t *h, const char *uid, const char *address, bool add)
{
    for (size_t i = 0; i < h->n_ext; i++)
        if (strcmp(h->ext_uid[i], uid) == 0) {
            ext_remove_at(h, i);
            break;
        }
    if (!add) return;
    if (h->n_ext == h->cap_ext) {
        size_t ncap = h->cap_ext ? h->cap_ext * 2 : 16;
        char **nu = realloc(h->ext_uid, ncap * sizeof *nu);
        if (nu) h->ext_uid = nu;
        char **na = nu ? realloc(h->ext_addr, ncap * sizeof *na) : NULL;
        if (!na) return;
        h->ext_addr = na;
        h->cap_ext = ncap;
    }
    h->ext_uid[h->n_ext] = strdup(uid);
    h->ext_addr[h->n_ext] = strdup(address);
    h->n_ext++;
}

/* A sub pool died for good: forget what it reported. Called with h->lock held. */
static void ext_forget_pool(xo_host_t *h, const char *address)
{
    for (size_t i = 0; i < h->n_ext;)
        if (strcmp(h->ext_addr[i], address) == 0) ext_remove_at(h, i);
        else i++;
}

/* Called with h->lock held. */
static bool locate_locked(xo_host_t *h, const char *uid, char *addr, size_t len)
{
    bool found = false;
    for (size_t i = 0; i < h->n_ext && !found; i++)
        if (strcmp(h->ext_uid[i], uid) == 0) {
            snprintf(addr, len, "%s", h->ext_addr[i]);
            found = true;
        }
    for (size_t i = 0; i < h->n_subs && !found; i++) {
        sub_pool_t *sp = h->subs[i];
        if (sp->removed) continue;
        for (size_t k = 0; k < sp->n_placed; k++)
            if (strcmp(sp->placed[k].uid, uid) == 0) {
                snprintf(addr, len, "%s", sp->address);
                found = true;
                break;
            }
    }
    return found;
}

static bool host_locate(void *arg, const char *uid, char *addr, size_t len)
{
    xo_host_t *h = arg;
    pthread_mutex_lock(&h->lock);
    bool found = locate_locked(h, uid, addr, len);
    pthread_mutex_unlock(&h->lock);
    return found;
}

/* ---- the host's service actor ---------------------------------------------------------------------------------
 *
 * "xo.host" lives in the main pool. Sub pools tell it about actors created in them directly (register,
 * unregister), and any process places actors through it (create): its methods run on fibers, so a create that
 * waits on a sub pool does not block the main pool's I/O thread. */

typedef struct {
    xo_host_t *host;
} service_t;

static xo_host_t *service_host(void *state) { return ((service_t *)state)->host; }

static void copy_opt(xo_str_t s, char *buf, size_t len, const char **out)
{
    if (!s.ptr || s.len >= len) {
        *out = NULL;
        return;
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    *out = buf;
}

/* register(uid, address, add = true, stopping = false): a sub pool created (add) or destroyed an actor. A destroy,
 * whoever asked for it (the host, another process, the actor itself), drops its placement record too, so it is not
 * re-created on restart and its idle_label slot is free again; unless the pool was stopping (stopping): then the
 * actor goes with its process and the restart policy decides. */
static xo_status_t service_register(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t uid = {0}, address = {0};
    bool add = true, stopping = false;
    xo_status_t st = xo_unpack(args, "ss|tt", &uid, &address, &add, &stopping);
    if (st != XO_OK) return st;
    char u[512], a[256];
    const char *up, *ap;
    copy_opt(uid, u, sizeof u, &up);
    copy_opt(address, a, sizeof a, &ap);
    if (!up || !ap) return xo_ctx_error(ctx, XO_EINVAL, "register: bad uid or address");
    xo_host_t *h = service_host(state);
    pthread_mutex_lock(&h->lock);
    ext_set(h, up, ap, add);
    for (size_t i = 0; !add && !stopping && i < h->n_subs; i++)
        if (strcmp(h->subs[i]->address, ap) == 0) unrecord(h->subs[i], up);
    pthread_mutex_unlock(&h->lock);
    return XO_OK;
}

/* The near list of a create request, [[actor, bytes, device buffers, inbound], ...] (all but the actor optional), into near (the caller's MAX_NEAR) with the names
 * copied into *names_p (the caller frees it). */
static xo_status_t unpack_near(xo_ctx_t *ctx, const msgpack_object *o, xo_near_t *near, size_t *n_p, char **names_p)
{
    *n_p = 0;
    *names_p = NULL;
    if (!o || o->type == MSGPACK_OBJECT_NIL) return XO_OK;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > MAX_NEAR)
        return xo_ctx_error(ctx, XO_EBADARGS, "create: near must be a list of at most %d [actor, bytes] pairs",
                            MAX_NEAR);
    size_t n = o->via.array.size, total = 0;
    for (size_t k = 0; k < n; k++) {
        const msgpack_object *e = &o->via.array.ptr[k];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 1 || e->via.array.size > 4 ||
            e->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            (e->via.array.size >= 2 && e->via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) ||
            (e->via.array.size >= 3 && e->via.array.ptr[2].type != MSGPACK_OBJECT_BOOLEAN) ||
            (e->via.array.size == 4 && e->via.array.ptr[3].type != MSGPACK_OBJECT_BOOLEAN))
            return xo_ctx_error(ctx, XO_EBADARGS, "create: near[%zu] must be [actor, bytes, device buffers, inbound] "
                                "(a string, a count of bytes >= 0 and two optional booleans)", k);
        total += e->via.array.ptr[0].via.str.size + 1;
    }
    char *names = malloc(total ? total : 1);
    if (!names) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    char *at = names;
    for (size_t k = 0; k < n; k++) {
        const msgpack_object *e = o->via.array.ptr[k].via.array.ptr;
        memcpy(at, e[0].via.str.ptr, e[0].via.str.size);
        at[e[0].via.str.size] = '\0';
        uint32_t len = o->via.array.ptr[k].via.array.size;
        near[k] = (xo_near_t){.actor = at, .bytes = len >= 2 ? e[1].via.u64 : 0,
                              .device_buf = len >= 3 && e[2].via.boolean, .inbound = len == 4 && e[3].via.boolean};
        at += e[0].via.str.size + 1;
    }
    *n_p = n;
    *names_p = names;
    return XO_OK;
}

/* create(class, args (bin, encoded list) | nil, uid | nil, strategy | nil, label | nil, mark | nil, index,
 *        near ([[actor, bytes, device buffers, inbound (the last two optional bools)], ...]) | nil, cluster scope (bool), address | nil)
 *        → [address, uid] */
static xo_status_t service_create(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t cls = {0}, uid = {0}, strategy = {0}, label = {0}, mark = {0};
    xo_bytes_t cargs = {0};
    int64_t index = 0;
    const msgpack_object *near_o = NULL;
    bool cluster = false;
    xo_str_t address = {0};
    xo_status_t st = xo_unpack(args, "s|bssssl ots", &cls, &cargs, &uid, &strategy, &label, &mark, &index, &near_o,
                               &cluster, &address);
    if (st != XO_OK) return st;
    xo_near_t near[MAX_NEAR];
    size_t n_near = 0;
    char *near_names = NULL; /* ours: the near actors' names */
    if ((st = unpack_near(ctx, near_o, near, &n_near, &near_names)) != XO_OK) return st;
    char cb[256], ub[512], sb[64], lb[128], mb[128];
    const char *c, *u, *sname, *l, *m;
    copy_opt(cls, cb, sizeof cb, &c);
    copy_opt(uid, ub, sizeof ub, &u);
    copy_opt(strategy, sb, sizeof sb, &sname);
    copy_opt(label, lb, sizeof lb, &l);
    copy_opt(mark, mb, sizeof mb, &m);
    char ab[160];
    const char *addr;
    copy_opt(address, ab, sizeof ab, &addr);
    if (!c) {
        free(near_names);
        return xo_ctx_error(ctx, XO_EINVAL, "create: a class name is required");
    }
    xo_placement_t p = {.strategy = sname, .process_index = (size_t)(index < 0 ? 0 : index), .label = l, .mark = m,
                        .near = near, .n_near = n_near, .cluster = cluster, .address = addr};
    xo_args_t *a = cargs.ptr ? xo__args_from_bytes(cargs.ptr, cargs.len) : NULL;
    xo_ref_t *ref = NULL;
    st = xo_host_create_actor(service_host(state), c, a, u, &p, &ref);
    free(near_names);
    if (st != XO_OK) return st; /* its text is already this activation's (xo_last_error() reads ctx's buffer) */
    st = xo_pack(out, "[ss]", xo_ref_address(ref), xo_ref_uid(ref));
    xo_ref_free(ref);
    return st;
}

/* views(include_main) -> [[address, process_index, labels (comma-separated), device kind, mem free, mem total,
 * actors, queued, busy], ...]: this host's live pools as a placement with cluster scope on another host sees them,
 * with their live load (the same INFO fan-out as a local placement). */
static xo_status_t service_views(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    bool include_main = false;
    xo_status_t st = xo_unpack(args, "|t", &include_main);
    if (st != XO_OK) return st;
    xo_host_t *h = service_host(state);
    char (*addrs)[160] = malloc(MAX_SUBS * sizeof *addrs); /* ours, with labels and kinds below */
    char (*labels)[256] = malloc(MAX_SUBS * sizeof *labels);
    int *kinds = calloc(MAX_SUBS, sizeof *kinds);
    size_t *index = calloc(MAX_SUBS, sizeof *index);
    const char **ask = calloc(MAX_SUBS, sizeof *ask);
    xo__pool_live_t *live = calloc(MAX_SUBS, sizeof *live);
    if (!addrs || !labels || !kinds || !index || !ask || !live) {
        st = xo_ctx_error(ctx, XO_ENOMEM, "views: out of memory");
        goto done;
    }
    size_t n = 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_subs && n < MAX_SUBS; i++) {
        sub_pool_t *sp = h->subs[i];
        if (sp->removed || sp->pid <= 0) continue;
        snprintf(addrs[n], sizeof addrs[n], "%s", sp->address);
        labels[n][0] = '\0';
        for (size_t k = 0; k < sp->n_labels; k++)
            snprintf(labels[n] + strlen(labels[n]), sizeof labels[n] - strlen(labels[n]), "%s%s", k ? "," : "",
                     sp->labels[k]);
        kinds[n] = sp->device[0] ? (strncmp(sp->device, "cuda", 4) == 0 ? XO_POOL_DEVICE_CUDA : XO_POOL_DEVICE_HOST)
                                 : XO_POOL_DEVICE_NONE;
        index[n] = i + 1;
        ask[n] = addrs[n];
        n++;
    }
    pthread_mutex_unlock(&h->lock);
    xo__pool_live_query(ask, n, INFO_TIMEOUT_MS, live);
    msgpack_pack_array(out, n + (include_main ? 1 : 0));
    if (include_main) {
        xo_device_mem_info_t mi = {0};
        if (h->main->device) xo_device_mem_info(h->main->device, &mi);
        xo_pack(out, "[susiuuuuu]", h->main->address, (uint64_t)0, "",
                h->main->device ? XO_POOL_DEVICE_HOST : XO_POOL_DEVICE_NONE, mi.free, mi.total,
                (uint64_t)xo__pool_user_actor_count(h->main), (uint64_t)0, (uint64_t)xo__pool_busy_threads(h->main));
    }
    for (size_t i = 0; i < n; i++)
        xo_pack(out, "[susiuuuuu]", addrs[i], (uint64_t)index[i], labels[i], kinds[i], live[i].mem_free,
                live[i].mem_total, live[i].actors, live[i].in_flight, live[i].busy);
done:
    free(addrs);
    free(labels);
    free(kinds);
    free(index);
    free(ask);
    free(live);
    return st;
}

/* load_profile(path | nil): the host's placement reads this tune profile from now on (`xoscar tune --apply`). */
static xo_status_t service_load_profile(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t path = {0};
    xo_status_t st = xo_unpack(args, "|s", &path);
    if (st != XO_OK) return st;
    char buf[4096];
    const char *p;
    copy_opt(path, buf, sizeof buf, &p);
    if (path.ptr && !p) return xo_ctx_error(ctx, XO_EINVAL, "load_profile: path too long");
    st = xo_host_load_profile(service_host(state), p);
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_ctx_error(ctx, st, "%s", why);
    }
    return XO_OK;
}

static const xo_method_t service_methods[] = {
    {.name = "register", .fn = service_register},
    {.name = "create", .fn = service_create},
    {.name = "load_profile", .fn = service_load_profile},
    {.name = "views", .fn = service_views},
};

static const xo_actor_class_t service_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "xo.host",
    .state_size = sizeof(service_t),
    .methods = service_methods,
    .n_methods = sizeof service_methods / sizeof service_methods[0],
};

static xo_status_t start_service(xo_host_t *h)
{
    xo_ref_t *ref = NULL;
    xo_status_t st = xo_create_actor(&service_class, NULL, h->main->address, XO_HOST_SERVICE_UID, &ref);
    if (st != XO_OK) return st;
    /* No init hook (so no round trip): set the state through the pool's table, before anyone can call it. */
    xo_actor_t *a = xo__pool_table_lookup(h->main, XO_HOST_SERVICE_UID);
    if (a) {
        ((service_t *)a->state)->host = h;
        xo__actor_release(a);
    }
    xo_ref_free(ref);
    return a ? XO_OK : xo__error_set(XO_ENOACTOR, "the host service actor vanished");
}

xo_status_t xo_create_actor_placed(const char *class_name, xo_args_t *args, const char *main_address,
                                   const char *uid, const xo_placement_t *placement, xo_ref_t **ref_p)
{
    xo_status_t st = xo__args_refuse(args);
    if (st != XO_OK) return st;
    xo_ref_t *service = NULL;
    st = class_name ? xo_actor_ref(main_address, XO_HOST_SERVICE_UID, &service)
                                : xo__error_set(XO_EINVAL, "class_name is required");
    if (st != XO_OK) {
        xo_args_free(args);
        return st == XO_ENOACTOR ? xo__error_set(XO_EINVAL, "%s is not a host's main pool (no placement service)",
                                                main_address)
                                 : st;
    }
    size_t len = 0;
    const char *data = args ? xo__args_data(args, &len) : NULL;
    xo_placement_t none = {0};
    if (!placement) placement = &none;
    xo_args_t *req = xo_args_new(10);
    msgpack_packer *pk = xo_args_packer(req);
    xo_pack(pk, "s", class_name);
    if (data) msgpack_pack_bin_with_body(pk, data, len);
    else msgpack_pack_nil(pk);
    xo_pack(pk, "ssssl", uid, placement->strategy, placement->label, placement->mark,
            (int64_t)placement->process_index);
    if (placement->n_near && placement->near) {
        msgpack_pack_array(pk, placement->n_near);
        for (size_t k = 0; k < placement->n_near; k++)
            if (placement->near[k].device_buf || placement->near[k].inbound)
                xo_pack(pk, "[sutt]", placement->near[k].actor ? placement->near[k].actor : "",
                        placement->near[k].bytes, (int)placement->near[k].device_buf, (int)placement->near[k].inbound);
            else
                xo_pack(pk, "[su]", placement->near[k].actor ? placement->near[k].actor : "",
                        placement->near[k].bytes);
    } else {
        msgpack_pack_nil(pk);
    }
    xo_pack(pk, "ts", (int)placement->cluster, placement->address);
    xo_args_free(args);
    xo_result_t *r = NULL;
    st = xo_call(service, "create", req, XO_FOREVER, &r);
    xo_ref_free(service);
    if (st != XO_OK) return st;
    xo_str_t where, created;
    st = xo_result_unpack(r, "[ss]", &where, &created);
    if (st == XO_OK) {
        char a[256], u[512];
        snprintf(a, sizeof a, "%.*s", (int)where.len, where.ptr);
        snprintf(u, sizeof u, "%.*s", (int)created.len, created.ptr);
        st = xo_actor_ref(a, u, ref_p);
    }
    xo_result_free(r);
    return st;
}

/* ---- start and stop ------------------------------------------------------------------------------------------- */

/* A policy that needs no per-call parameter (an address, an index, a label) can be the default of every create. */
static bool default_able(xo_place_kind_t k)
{
    return k != XO_PLACE_ADDRESS && k != XO_PLACE_PROCESS_INDEX && k != XO_PLACE_RANDOM_LABEL &&
           k != XO_PLACE_IDLE_LABEL;
}

/* What xo_host_start refuses at once rather than failing later (every create, or every sub pool start). */
static xo_status_t check_config(const xo_host_config_t *cfg)
{
    if (cfg->restart != XO_RESTART_NONE && cfg->restart != XO_RESTART_PROCESS && cfg->restart != XO_RESTART_ACTORS)
        return xo__error_set(XO_ECONFIG, "restart policy %d is not one of XO_RESTART_NONE (0), XO_RESTART_PROCESS (1), "
                                         "XO_RESTART_ACTORS (2)", (int)cfg->restart);
    if (cfg->max_restarts > XO_HOST_MAX_RESTARTS_LIMIT)
        return xo__error_set(XO_ECONFIG, "max_restarts %u: at most %u", cfg->max_restarts, XO_HOST_MAX_RESTARTS_LIMIT);
    const char *a = cfg->address;
    if (a && (!xo__remote_address_ok(a) || strchr(a, '/') || a[0] == ':' || strchr(a, ' ')))
        return xo__error_set(XO_ECONFIG, "host address \"%s\" is not host:port (an IP address or a host name, a colon "
                                         "and a port; [v6]:port for IPv6; port 0 picks a free one)", a);
    if (cfg->default_policy) {
        const xo_policy_ops_t *ops = xo__policy_find(cfg->default_policy);
        char list[256] = "";
        for (int i = 0, k = 0; i < XO_PLACE_KIND_COUNT && k < (int)sizeof list; i++) {
            const xo_policy_ops_t *o = xo__policy_get((xo_place_kind_t)i);
            if (o && default_able(o->kind)) k += snprintf(list + k, sizeof list - (size_t)k, "%s%s", k ? ", " : "",
                                                          o->name);
        }
        if (!ops)
            return xo__error_set(XO_ECONFIG, "unknown default placement policy \"%s\" (expected one of: %s)",
                                 cfg->default_policy, list);
        if (!default_able(ops->kind))
            return xo__error_set(XO_ECONFIG, "placement policy \"%s\" needs a parameter per create and cannot be the "
                                             "default (expected one of: %s)", cfg->default_policy, list);
    }
    return XO_OK;
}

xo_status_t xo_host_start(const xo_host_config_t *cfg, xo_host_t **host_p)
{
    if (!cfg || !host_p) return xo__error_set(XO_EINVAL, "cfg and host_p are required");
    xo_status_t bad = check_config(cfg);
    if (bad != XO_OK) return bad;
    xo_host_t *h = calloc(1, sizeof *h);
    if (!h) return xo__error_set(XO_ENOMEM, "out of memory");
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->restart = cfg->restart;
    h->max_restarts = cfg->max_restarts ? cfg->max_restarts : XO_HOST_MAX_RESTARTS_DEFAULT;
    h->period_ns = (uint64_t)(cfg->restart_period_ms ? cfg->restart_period_ms : XO_HOST_RESTART_PERIOD_MS_DEFAULT) *
                   1000000ull;
    h->backoff_ns = (uint64_t)(cfg->restart_backoff_ms ? cfg->restart_backoff_ms : XO_HOST_RESTART_BACKOFF_MS_DEFAULT) *
                    1000000ull;
    h->backoff_max_ns = (uint64_t)(cfg->restart_backoff_max_ms ? cfg->restart_backoff_max_ms
                                                               : XO_HOST_RESTART_BACKOFF_MAX_MS_DEFAULT) * 1000000ull;
    if (h->backoff_max_ns < h->backoff_ns) h->backoff_max_ns = h->backoff_ns;
    snprintf(h->default_policy, sizeof h->default_policy, "%s", cfg->default_policy ? cfg->default_policy
                                                                                    : "round_robin");
    memcpy(h->weights, cfg->weights, sizeof h->weights);
    h->on_event = cfg->on_event;
    h->event_arg = cfg->event_arg;
    h->rng = xo__now_ns() ^ (uint64_t)getpid();
    h->binary = find_binary(cfg->pool_binary);
    if (cfg->log_file && cfg->log_file[0]) {
        h->log_file = strdup(cfg->log_file);
        if (!xo__log_set_file(cfg->log_file))
            xo_log_warn("cannot open the log file %s: %s (logging to stderr only)", cfg->log_file, strerror(errno));
    }
    h->wakefd = eventfd(0, EFD_CLOEXEC);
    h->modules = calloc(cfg->n_modules ? cfg->n_modules : 1, sizeof *h->modules);
    xo_status_t st = XO_OK;
    for (size_t i = 0; h->modules && i < cfg->n_modules && st == XO_OK; i++) {
        const xo_module_v1_t *mod;
        /* a Python module is a name (python:NAME), the same in every process; a file is made absolute */
        bool py = strncmp(cfg->modules[i], XO_PYTHON_PREFIX, strlen(XO_PYTHON_PREFIX)) == 0;
        h->modules[h->n_modules++] = py ? strdup(cfg->modules[i]) : realpath(cfg->modules[i], NULL);
        if (!h->modules[i]) st = xo__error_set(XO_ECONFIG, "module %s: %s", cfg->modules[i], strerror(errno));
        else st = xo_module_load(h->modules[i], &mod); /* the main pool loads them too */
    }
    if (st == XO_OK && xo__topology_load(&h->topo) != XO_OK) h->topo = NULL; /* binding is best effort then */
    /* Port 0: sub pool N listens on port + N, so the main pool's port is drawn where port + N are free too (the
     * kernel's free port sits in the ephemeral range, where connections' local ports land on port + N: seen as a
     * sub pool refusing to start). A few spare ports after them leave room for sub pools added later. */
    const char *main_address = cfg->address ? cfg->address : "127.0.0.1:0";
    char picked[300];
    size_t alen = strlen(main_address);
    if (alen > 2 && alen < 256 && strcmp(main_address + alen - 2, ":0") == 0) {
        char host_part[256];
        size_t hl = alen - 2;
        const char *hp = main_address;
        if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') hp++, hl -= 2; /* [v6] */
        snprintf(host_part, sizeof host_part, "%.*s", (int)hl, hp);
        unsigned base;
        if (xo__pick_port_base(host_part, cfg->n_sub_pools + 4, &base)) {
            snprintf(picked, sizeof picked, "%.*s:%u", (int)(alen - 2), main_address, base);
            main_address = picked;
        }
    }
    xo_pool_config_t pc = {.address = main_address,
                           .n_threads = cfg->main_threads ? cfg->main_threads : 1,
                           .device = cfg->main_device,
                           .device_capacity = cfg->main_device_capacity};
    if (st == XO_OK) st = xo_pool_start(&pc, &h->main);
    if (st == XO_OK) {
        h->main->locate = host_locate;
        h->main->locate_arg = h;
        st = start_service(h);
    }
    if (st == XO_OK) {
        int rc = pthread_create(&h->supervisor, NULL, watch, h);
        if (rc != 0) st = xo__error_set(XO_ESYS, "cannot start the supervisor: %s", strerror(rc));
        h->watcher_live = rc == 0;
    }
    xo_cpuset_t defaults[MAX_SUBS];
    bool have_defaults = st == XO_OK && h->topo && cfg->n_sub_pools &&
                         xo__topology_partition(h->topo, NULL, cfg->n_sub_pools, defaults) == XO_OK;
    for (unsigned i = 0; st == XO_OK && i < cfg->n_sub_pools; i++) {
        sub_pool_t *sp;
        st = new_sub(h, cfg->sub_pools ? &cfg->sub_pools[i] : NULL, have_defaults ? &defaults[i] : NULL, &sp);
        if (st != XO_OK) break;
        pthread_mutex_lock(&h->lock);
        h->subs[h->n_subs++] = sp;
        pthread_mutex_unlock(&h->lock);
        st = start_keeper(h, sp);
        if (st == XO_OK) st = spawn_on_keeper(h, sp);
    }
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        xo_host_stop(h);
        return xo__error_set(st, "%s", text);
    }
    *host_p = h;
    return XO_OK;
}

void xo_host_stop(xo_host_t *h)
{
    if (!h) return;
    /* Every keeper stops its pool at once (so the grace periods overlap); the watcher reaps them, then quits. */
    pthread_mutex_lock(&h->lock);
    size_t n_subs = h->n_subs;
    for (size_t i = 0; i < n_subs; i++) {
        h->subs[i]->removed = true;
        h->subs[i]->jobs |= JOB_STOP;
        pthread_cond_broadcast(&h->subs[i]->cond);
    }
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n_subs; i++) stop_keeper(h, h->subs[i]);
    if (h->watcher_live) {
        pthread_mutex_lock(&h->lock);
        h->quit = true;
        pthread_mutex_unlock(&h->lock);
        wake_watcher(h);
        pthread_join(h->supervisor, NULL);
    }
    if (h->main) xo_pool_stop(h->main);
    for (size_t i = 0; i < h->n_subs; i++) free_sub(h->subs[i]);
    for (size_t i = 0; i < h->n_modules; i++) free(h->modules[i]);
    free(h->modules);
    while (h->n_ext) ext_remove_at(h, h->n_ext - 1);
    free(h->ext_uid);
    free(h->ext_addr);
    if (h->topo) xo__topology_free(h->topo);
    xo__profile_free(h->profile);
    for (size_t i = 0; i < h->n_peers; i++) free(h->peers[i]);
    free(h->peers);
    if (h->wakefd >= 0) close(h->wakefd);
    free(h->binary);
    free(h->log_file);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

const char *xo_host_address(const xo_host_t *h) { return h->main->address; }
/* Sub pools are numbered as their addresses are ("host:port/N", from 1; 0 is the main pool, as in process_index
 * placement), and numbers are never reused: sub pool N is h->subs[N - 1]. */
size_t xo_host_sub_pool_count(const xo_host_t *ch)
{
    xo_host_t *h = (xo_host_t *)ch;
    pthread_mutex_lock(&h->lock);
    size_t n = h->n_subs;
    pthread_mutex_unlock(&h->lock);
    return n;
}

const char *xo_host_sub_pool_address(const xo_host_t *ch, size_t n)
{
    xo_host_t *h = (xo_host_t *)ch;
    pthread_mutex_lock(&h->lock);
    const char *a = n >= 1 && n <= h->n_subs ? h->subs[n - 1]->address : NULL; /* lives as long as the host */
    pthread_mutex_unlock(&h->lock);
    return a;
}

const char *xo_host_sub_pool_error(const xo_host_t *ch, size_t n)
{
    xo_host_t *h = (xo_host_t *)ch;
    pthread_mutex_lock(&h->lock);
    /* why is written once, before failed is set, and never again */
    const char *why = n >= 1 && n <= h->n_subs && h->subs[n - 1]->failed ? h->subs[n - 1]->why : NULL;
    pthread_mutex_unlock(&h->lock);
    return why;
}

int xo_host_sub_pool_pid(const xo_host_t *ch, size_t n)
{
    xo_host_t *h = (xo_host_t *)ch;
    pthread_mutex_lock(&h->lock);
    int pid = n >= 1 && n <= h->n_subs ? (int)h->subs[n - 1]->pid : 0;
    pthread_mutex_unlock(&h->lock);
    return pid;
}

xo_status_t xo_host_add_sub_pool(xo_host_t *h, const xo_sub_pool_config_t *cfg, size_t *index_p)
{
    sub_pool_t *sp;
    xo_status_t st = new_sub(h, cfg, NULL, &sp);
    if (st != XO_OK) return st;
    pthread_mutex_lock(&h->lock);
    if (h->n_subs + 1 >= MAX_SUBS) {
        pthread_mutex_unlock(&h->lock);
        free_sub(sp);
        return xo__error_set(XO_EINVAL, "at most %d sub pools", MAX_SUBS - 1);
    }
    size_t n = ++h->n_subs;
    h->subs[n - 1] = sp;
    /* numbered here, under the lock, so that concurrent adds get distinct numbers */
    snprintf(sp->address, sizeof sp->address, "%s/%zu", h->main->address, n);
    pthread_mutex_unlock(&h->lock);
    st = start_keeper(h, sp);
    if (st == XO_OK) st = spawn_on_keeper(h, sp);
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        pthread_mutex_lock(&h->lock);
        sp->removed = true;
        pthread_mutex_unlock(&h->lock);
        stop_keeper(h, sp);
        return xo__error_set(st, "%s", text);
    }
    if (index_p) *index_p = n;
    return XO_OK;
}

xo_status_t xo_host_remove_sub_pool(xo_host_t *h, size_t n)
{
    pthread_mutex_lock(&h->lock);
    sub_pool_t *sp = n >= 1 && n <= h->n_subs && !h->subs[n - 1]->removed ? h->subs[n - 1] : NULL;
    if (sp) sp->removed = true;
    pthread_mutex_unlock(&h->lock);
    if (!sp) return xo__error_set(XO_EINVAL, "no sub pool %zu to remove (sub pools are numbered from 1, as in "
                                             "their addresses; removed ones are not reused)", n);
    stop_keeper(h, sp);
    return XO_OK;
}

xo_status_t xo_host_kill_actor(xo_host_t *h, const char *uid)
{
    if (!h || !uid) return xo__error_set(XO_EINVAL, "xo_host_kill_actor: no host or no uid");
    char where[160];
    pthread_mutex_lock(&h->lock);
    sub_pool_t *sp = NULL;
    bool found = locate_locked(h, uid, where, sizeof where);
    for (size_t i = 0; found && i < h->n_subs && !sp; i++)
        if (strcmp(h->subs[i]->address, where) == 0) sp = h->subs[i];
    if (!found) {
        pthread_mutex_unlock(&h->lock);
        xo_actor_t *a = xo__pool_table_lookup(h->main, uid);
        if (a) xo__actor_release(a);
        return a ? xo__error_set(XO_EINVAL, "actor \"%s\" is in the main pool %s, this process: not killed", uid,
                                 h->main->address)
                 : xo__error_set(XO_ENOACTOR, "no actor \"%s\" in host %s", uid, h->main->address);
    }
    if (!sp || sp->pid <= 0) {
        pthread_mutex_unlock(&h->lock);
        return xo__error_set(XO_EPOOLDIED, "actor \"%s\": its sub pool %s is not running", uid, where);
    }
    /* Under the lock: the watcher reaps under it too, so this pid is still our child, not a reused one. */
    uint64_t deaths = sp->deaths;
    pid_t pid = sp->pid;
    kill(pid, SIGKILL);
    bool seen = wait_reaped(h, sp, deaths, READY_TIMEOUT_MS);
    pthread_mutex_unlock(&h->lock);
    if (!seen) return xo__error_set(XO_ETIMEDOUT, "sub pool %s (process %d) killed, its death not seen within %d ms",
                                    where, (int)pid, READY_TIMEOUT_MS);
    return XO_OK;
}

/* ---- placement ------------------------------------------------------------------------------------------------ */

static void record(sub_pool_t *sp, const char *uid, const char *class_name, const char *label, const char *mark,
                   const void *args, size_t args_len)
{
    if (sp->n_placed == sp->cap_placed) {
        size_t ncap = sp->cap_placed ? sp->cap_placed * 2 : 16;
        placed_t *np = realloc(sp->placed, ncap * sizeof *np);
        if (!np) return;
        sp->placed = np;
        sp->cap_placed = ncap;
    }
    placed_t *p = &sp->placed[sp->n_placed++];
    p->uid = strdup(uid);
    p->class_name = strdup(class_name);
    p->label = label ? strdup(label) : NULL;
    p->mark = label ? strdup(mark ? mark : "") : NULL;
    p->args = args_len ? malloc(args_len) : NULL;
    if (p->args) memcpy(p->args, args, args_len);
    p->args_len = p->args ? args_len : 0;
    p->crashes = 0;
}

static void unrecord(sub_pool_t *sp, const char *uid)
{
    for (size_t i = 0; i < sp->n_placed; i++)
        if (strcmp(sp->placed[i].uid, uid) == 0) {
            placed_free(&sp->placed[i]);
            sp->placed[i] = sp->placed[--sp->n_placed];
            return;
        }
}

xo_status_t xo_host_load_profile(xo_host_t *h, const char *path)
{
    if (!h) return xo__error_set(XO_EINVAL, "no host");
    xo_profile_t *p = NULL;
    if (path) {
        xo_cluster_error_t err;
        xo_status_t st = xo__profile_load(path, &p, &err);
        if (st != XO_OK) return st;
        /* A profile of other pools is reported, never refused: its pairs between our pools still hold. */
        const char *pools[MAX_SUBS + 1];
        size_t n = 0;
        pthread_mutex_lock(&h->lock);
        pools[n++] = h->main->address;
        for (size_t i = 0; i < h->n_subs; i++)
            if (!h->subs[i]->removed) pools[n++] = h->subs[i]->address;
        char *report = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&report, &len);
        size_t diffs = mem ? xo__profile_compare(p, pools, n, NULL, mem) : 0;
        pthread_mutex_unlock(&h->lock);
        if (mem) fclose(mem);
        for (char *line = report, *nl; diffs && line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            if (!nl) break;
            *nl = '\0';
            xo_log_warn("profile %s: %s", path, line);
        }
        free(report);
    }
    pthread_mutex_lock(&h->lock);
    xo_profile_t *old = h->profile;
    h->profile = p;
    pthread_mutex_unlock(&h->lock);
    xo__profile_free(old);
    return XO_OK;
}

/* Resolves placement's near actors to their pools and fills each view's cost of reaching them. Called with h->lock
 * held (the actor records and the profile). *costs_p is the caller's (free) on XO_OK. */
static xo_status_t near_costs(xo_host_t *h, const xo_placement_t *placement, xo_pool_view_t *views, size_t n,
                              xo_place_near_t *near, xo_pair_cost_t **costs_p)
{
    size_t m = placement->n_near;
    if (!placement->near) return xo__error_set(XO_EINVAL, "near: %zu actors but no list", m);
    char where[MAX_NEAR][160];
    const char *peers[MAX_NEAR], *cands[MAX_SUBS + 1];
    for (size_t k = 0; k < m; k++) {
        const char *who = placement->near[k].actor;
        near[k].bytes = placement->near[k].bytes;
        near[k].device_buf = placement->near[k].device_buf;
        near[k].inbound = placement->near[k].inbound;
        if (!who || !*who) return xo__error_set(XO_EINVAL, "near[%zu]: no actor named", k);
        xo_actor_t *a = NULL;
        if (strchr(who, ':')) {
            snprintf(where[k], sizeof where[k], "%s", who); /* a pool's address */
        } else if (locate_locked(h, who, where[k], sizeof where[k])) {
        } else if ((a = xo__pool_table_lookup(h->main, who)) != NULL) {
            xo__actor_release(a);
            snprintf(where[k], sizeof where[k], "%s", h->main->address);
        } else {
            return xo__error_set(XO_EINVAL, "near[%zu]: no actor \"%s\" in host %s", k, who, h->main->address);
        }
        peers[k] = where[k];
    }
    xo_pair_cost_t *costs = calloc(n && m ? n * m : 1, sizeof *costs);
    if (!costs) return xo__error_set(XO_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) cands[i] = views[i].address;
    xo__profile_fill_costs(h->profile, cands, n, peers, near, m, costs);
    for (size_t i = 0; i < n; i++) views[i].near_cost = &costs[i * m];
    *costs_p = costs;
    return XO_OK;
}

xo_status_t xo_host_set_cluster(xo_host_t *h, const char *const *mains, size_t n)
{
    if (!h || (n && !mains)) return xo__error_set(XO_EINVAL, "xo_host_set_cluster: no host or no addresses");
    char **peers = calloc(n ? n : 1, sizeof *peers); /* the host's from here on */
    size_t m = 0;
    for (size_t i = 0; peers && i < n; i++) {
        if (!mains[i] || !xo__remote_address_ok(mains[i])) {
            for (size_t k = 0; k < m; k++) free(peers[k]);
            free(peers);
            return xo__error_set(XO_EINVAL, "xo_host_set_cluster: \"%s\" is not a main pool address",
                                 mains[i] ? mains[i] : "(null)");
        }
        if (strcmp(mains[i], h->main->address) != 0 && (peers[m] = strdup(mains[i]))) m++;
    }
    if (!peers) return xo__error_set(XO_ENOMEM, "out of memory");
    pthread_mutex_lock(&h->lock);
    char **old = h->peers;
    size_t n_old = h->n_peers;
    h->peers = peers;
    h->n_peers = m;
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < n_old; i++) free(old[i]);
    free(old);
    return XO_OK;
}

/* The pools of the other hosts, as their services report them (views), for a placement with cluster scope. */
typedef struct remote_pools {
    size_t n;
    xo_pool_view_t v[MAX_SUBS];
    char addr[MAX_SUBS][160];
    char labels_buf[MAX_SUBS][256];
    const char *labels[MAX_SUBS][MAX_LABELS];
    char host_main[MAX_SUBS][160]; /* the main pool of the host that owns it, which creates the actor there */
    char skipped[XO_ERROR_TEXT_MAX / 2]; /* the hosts that did not answer */
} remote_pools_t;

#define VIEWS_TIMEOUT_MS 3000

/* Asks every other host for its pools at once; a host that does not answer in time is logged and skipped. */
static void fetch_remote(xo_host_t *h, bool include_main, remote_pools_t *rp)
{
    char peers[64][160];
    size_t np = 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_peers && np < 64; i++) snprintf(peers[np++], sizeof peers[0], "%s", h->peers[i]);
    pthread_mutex_unlock(&h->lock);
    xo_future_t *f[64] = {0};
    char why[64][XO_ERROR_TEXT_MAX / 2];
    for (size_t i = 0; i < np; i++) {
        xo_ref_t *svc = NULL;
        xo_status_t st = xo_actor_ref(peers[i], XO_HOST_SERVICE_UID, &svc);
        if (st == XO_OK) st = xo_send(svc, "views", xo_args("t", include_main), &f[i]);
        if (st != XO_OK) {
            snprintf(why[i], sizeof why[i], "%s", xo_last_error());
            f[i] = NULL;
        }
        xo_ref_free(svc);
    }
    uint64_t deadline = xo__now_ns() + (uint64_t)VIEWS_TIMEOUT_MS * 1000000ull;
    for (size_t i = 0; i < np; i++) {
        xo_result_t *r = NULL;
        xo_status_t st = XO_EUNREACHABLE;
        if (f[i]) {
            uint64_t now = xo__now_ns();
            st = xo_future_wait(f[i], now < deadline ? (int64_t)((deadline - now) / 1000000ull) : 0, &r);
            if (st == XO_ETIMEDOUT) xo_future_cancel(f[i]);
            if (st != XO_OK) snprintf(why[i], sizeof why[i], "%s", xo_last_error());
            xo_future_free(f[i]);
        }
        const msgpack_object *list = NULL;
        if (st == XO_OK && (st = xo_result_unpack(r, "o", &list)) == XO_OK && list->type != MSGPACK_OBJECT_ARRAY)
            st = xo__error_set(XO_EPROTO, "views: not a list");
        if (st != XO_OK && f[i]) snprintf(why[i], sizeof why[i], "%s", xo_last_error());
        for (size_t k = 0; st == XO_OK && k < list->via.array.size && rp->n < MAX_SUBS; k++) {
            size_t j = rp->n;
            xo_str_t a = {0}, l = {0};
            uint64_t index = 0;
            int kind = 0;
            xo_pool_view_t *v = &rp->v[j];
            *v = (xo_pool_view_t){.device_index = -1};
            if (xo_unpack(&list->via.array.ptr[k], "susiuuuuu", &a, &index, &l, &kind, &v->mem_free, &v->mem_total,
                          &v->n_actors, &v->n_queued, &v->n_busy) != XO_OK ||
                a.len >= sizeof rp->addr[j] || l.len >= sizeof rp->labels_buf[j] || kind < 0 || kind > 2)
                continue;
            memcpy(rp->addr[j], a.ptr, a.len);
            rp->addr[j][a.len] = '\0';
            memcpy(rp->labels_buf[j], l.ptr, l.len);
            rp->labels_buf[j][l.len] = '\0';
            size_t nl = 0;
            for (char *save = NULL, *tok = strtok_r(rp->labels_buf[j], ",", &save); tok && nl < MAX_LABELS;
                 tok = strtok_r(NULL, ",", &save))
                rp->labels[j][nl++] = tok;
            v->address = rp->addr[j];
            v->process_index = (size_t)index;
            v->labels = nl ? rp->labels[j] : NULL;
            v->n_labels = nl;
            v->device_kind = (xo_pool_device_t)kind;
            if (kind) v->device_index = 0;
            memcpy(rp->host_main[j], peers[i], sizeof rp->host_main[j]); /* both 160, NUL-terminated */
            rp->n++;
        }
        xo_result_free(r);
        if (st != XO_OK) {
            xo_log_warn("placement: host %s skipped: %s", peers[i], why[i]);
            size_t used = strlen(rp->skipped);
            snprintf(rp->skipped + used, sizeof rp->skipped - used, "%s%s", used ? ", " : "", peers[i]);
        }
    }
    xo__error_clear();
}

xo_status_t xo_host_create_actor(xo_host_t *h, const char *class_name, xo_args_t *args, const char *uid,
                                 const xo_placement_t *placement, xo_ref_t **ref_p)
{
    xo_status_t refused = xo__args_refuse(args);
    if (refused != XO_OK) return refused;
    xo_placement_t def = {.strategy = NULL};
    if (!placement) placement = &def;
    const char *strategy = placement->strategy ? placement->strategy : h ? h->default_policy : "round_robin";
    const xo_policy_ops_t *ops = xo__policy_find(strategy);
    if (!h || !class_name || !ops) {
        xo_args_free(args);
        return xo__error_set(XO_EINVAL, "unknown placement strategy \"%s\"", strategy);
    }
    char gen[256];
    if (!uid) {
        h->rng = h->rng * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(gen, sizeof gen, "%s-%016llx", class_name, (unsigned long long)(h->rng ^ (h->rng >> 29)));
        uid = gen;
    }
    /* Live load and device memory, when the placement weighs them: asked of every live sub pool now (INFO, all at
     * once), before taking the lock, so the policy sees what each pool holds and does, not only what this host
     * placed there. */
    bool want_mem = placement->device_mem > 0 || ops->kind == XO_PLACE_MOST_FREE_MEMORY ||
                    ops->kind == XO_PLACE_WEIGHTED;
    bool want_load = ops->kind == XO_PLACE_LEAST_LOADED || ops->kind == XO_PLACE_WEIGHTED;
    xo__pool_live_t live[MAX_SUBS] = {0};
    xo_pool_device_t kind[MAX_SUBS] = {0};
    size_t n_known = 0;
    if (want_mem || want_load) {
        char addrs[MAX_SUBS][160];
        const char *ask[MAX_SUBS];
        pthread_mutex_lock(&h->lock);
        n_known = h->n_subs;
        for (size_t i = 0; i < n_known; i++) {
            snprintf(addrs[i], sizeof addrs[i], "%s", h->subs[i]->address);
            ask[i] = addrs[i];
            kind[i] = h->subs[i]->device[0] ? (strncmp(h->subs[i]->device, "cuda", 4) == 0 ? XO_POOL_DEVICE_CUDA
                                                                                              : XO_POOL_DEVICE_HOST)
                                             : XO_POOL_DEVICE_NONE;
            if (h->subs[i]->removed || h->subs[i]->pid <= 0 || (!want_load && kind[i] == XO_POOL_DEVICE_NONE))
                ask[i] = NULL;
        }
        pthread_mutex_unlock(&h->lock);
        size_t m = 0;
        const char *q[MAX_SUBS];
        size_t at[MAX_SUBS];
        for (size_t i = 0; i < n_known; i++)
            if (ask[i]) {
                at[m] = i;
                q[m++] = ask[i];
            }
        xo__pool_live_t got[MAX_SUBS];
        xo__pool_live_query(q, m, INFO_TIMEOUT_MS, got);
        for (size_t k = 0; k < m; k++) live[at[k]] = got[k];
    }
    xo_device_mem_info_t main_mem = {0};
    if (want_mem && h->main->device) xo_device_mem_info(h->main->device, &main_mem);
    /* Cluster scope: the other hosts' pools join the candidates (after this host's), asked before the lock. */
    remote_pools_t *rp = NULL; /* ours until placed */
    if (placement->cluster) {
        if (ops->kind == XO_PLACE_IDLE_LABEL || ops->kind == XO_PLACE_PROCESS_INDEX) {
            xo_args_free(args);
            return xo__error_set(XO_EINVAL, "%s is per host: it cannot place with cluster scope", ops->name);
        }
        rp = calloc(1, sizeof *rp);
        if (!rp) {
            xo_args_free(args);
            return xo__error_set(XO_ENOMEM, "out of memory");
        }
        fetch_remote(h, ops->kind == XO_PLACE_ADDRESS || ops->kind == XO_PLACE_MAIN_POOL ||
                            ops->kind == XO_PLACE_RANDOM, rp);
    }
    /* Views: index 0 the main pool, then the live sub pools. The IdleLabel pair is reserved before the create
     * (record below), so concurrent creates never pick the same slot. */
    xo_pool_view_t views[MAX_SUBS];
    sub_pool_t *owner[MAX_SUBS];
    size_t n = 0;
    /* The main pool is a candidate only for the strategies that can name it; the others spread over sub pools. */
    bool include_main = ops->kind == XO_PLACE_ADDRESS || ops->kind == XO_PLACE_MAIN_POOL ||
                        ops->kind == XO_PLACE_PROCESS_INDEX || ops->kind == XO_PLACE_RANDOM;
    pthread_mutex_lock(&h->lock);
    /* A uid names one actor in the whole host (so the main address finds it unambiguously); checked and reserved
     * (record below) in one critical section, so two concurrent creates of one uid cannot both pass. */
    char already[256];
    if (locate_locked(h, uid, already, sizeof already)) {
        pthread_mutex_unlock(&h->lock);
        xo_args_free(args);
        free(rp);
        return xo__error_set(XO_EEXIST, "actor \"%s\" already exists at %s", uid, already);
    }
    if (include_main) {
        views[n] = (xo_pool_view_t){.address = h->main->address, .process_index = 0, .device_index = -1,
                                    .n_actors = xo__pool_user_actor_count(h->main),
                                    .n_busy = xo__pool_busy_threads(h->main),
                                    .device_kind = h->main->device ? XO_POOL_DEVICE_HOST : XO_POOL_DEVICE_NONE,
                                    .mem_free = main_mem.free, .mem_total = main_mem.total};
        owner[n++] = NULL;
    }
    for (size_t i = 0; i < h->n_subs; i++) {
        sub_pool_t *sp = h->subs[i];
        if (sp->removed || sp->pid <= 0) continue;
        free(sp->marks);
        sp->marks = calloc(sp->n_placed ? sp->n_placed : 1, sizeof *sp->marks);
        size_t nm = 0;
        for (size_t k = 0; sp->marks && k < sp->n_placed; k++)
            if (sp->placed[k].label) sp->marks[nm++] = (xo_idle_mark_t){sp->placed[k].label, sp->placed[k].mark};
        views[n] = (xo_pool_view_t){.address = sp->address, .process_index = i + 1, .labels = sp->labels,
                                    .n_labels = sp->n_labels, .device_index = -1, .n_actors = sp->n_placed,
                                    .idle_marks = sp->marks, .n_idle_marks = nm};
        if (i < n_known && live[i].ok && want_load) {
            /* What the pool holds now, plus the creates this host is still making there (reported once done),
             * so that concurrent creates do not all see the same idle pool. Without an answer the host's own
             * tally (what it placed there) stands in. */
            views[n].n_actors = live[i].actors + sp->n_creating;
            views[n].n_queued = live[i].in_flight;
            views[n].n_busy = live[i].busy;
        }
        if (i < n_known && kind[i] != XO_POOL_DEVICE_NONE) {
            views[n].device_kind = kind[i];
            views[n].device_index = 0;
            views[n].mem_free = live[i].mem_free;
            views[n].mem_total = live[i].mem_total;
        }
        owner[n++] = sp;
    }
    size_t n_local = n;
    for (size_t k = 0; rp && k < rp->n && n < MAX_SUBS; k++) {
        views[n] = rp->v[k];
        owner[n++] = NULL;
    }
    /* Near peers (weighted): where each lives, then each candidate's measured cost of reaching it. */
    size_t n_near = ops->kind == XO_PLACE_WEIGHTED ? placement->n_near : 0;
    xo_place_near_t near[MAX_NEAR];
    xo_pair_cost_t *costs = NULL; /* ours: n * n_near, freed once placed */
    xo_status_t near_st = n_near > MAX_NEAR ? xo__error_set(XO_EINVAL, "near: %zu actors, at most %d", n_near,
                                                            MAX_NEAR)
                                            : XO_OK;
    if (near_st == XO_OK && n_near) near_st = near_costs(h, placement, views, n, near, &costs);
    if (near_st != XO_OK) {
        pthread_mutex_unlock(&h->lock);
        xo_args_free(args);
        free(rp);
        return near_st;
    }
    xo_place_request_t req = {.kind = ops->kind, .address = placement->address, .near = near, .n_near = n_near,
                              .process_index = placement->process_index, .label = placement->label,
                              .mark = placement->mark, .seed = xo__place_seed_next(&h->rng), .cursor = h->cursor,
                              .mem_bytes = placement->device_mem,
                              .weights = {.mem = h->weights[0], .load = h->weights[1], .link = h->weights[2]}};
    size_t chosen = 0;
    xo_status_t st = xo__place(views, n, &req, &chosen);
    free(costs);
    if (st == XO_OK && ops->kind == XO_PLACE_ROUND_ROBIN) h->cursor = chosen + 1;
    sub_pool_t *sp = st == XO_OK ? owner[chosen] : NULL;
    char address[160], forward_to[160] = "";
    if (st == XO_OK) snprintf(address, sizeof address, "%s", views[chosen].address);
    if (st == XO_OK && chosen >= n_local)
        snprintf(forward_to, sizeof forward_to, "%s", rp->host_main[chosen - n_local]);
    if (st != XO_OK && rp && rp->skipped[0]) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        st = xo__error_set(st, "%s (hosts skipped, unreachable: %s)", text, rp->skipped);
    }
    free(rp);
    size_t args_len = 0;
    const char *args_data = args ? xo__args_data(args, &args_len) : NULL;
    bool idle = ops->kind == XO_PLACE_IDLE_LABEL;
    if (sp) record(sp, uid, class_name, idle ? placement->label : NULL, placement->mark, args_data, args_len);
    if (sp) sp->n_creating++;
    pthread_mutex_unlock(&h->lock);
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    if (forward_to[0]) { /* another host's pool: that host creates it there and records it */
        xo_placement_t there = {.strategy = "address", .address = address};
        xo_ref_t *ref = NULL;
        st = xo_create_actor_placed(class_name, args, forward_to, uid, &there, &ref);
        if (st == XO_OK && ref_p) *ref_p = ref;
        else xo_ref_free(ref);
        return st;
    }
    if (!sp) { /* the main pool, in this process */
        const xo_actor_class_t *cls = xo__class_find(class_name);
        if (!cls) {
            xo_args_free(args);
            return xo__error_set(XO_ENOCLASS, "no class \"%s\" in the main pool (is its module loaded?)", class_name);
        }
        return xo_create_actor(cls, args, address, uid, ref_p);
    }
    xo_ref_t *ref = NULL;
    xo_future_t *f = NULL;
    st = xo__remote_send(address, XO_WIRE_CREATE, xo__chain_current(), uid, class_name, args, true, &f);
    if (st == XO_OK) {
        st = xo_future_wait(f, XO_FOREVER, NULL);
        xo__future_unref(f);
    }
    pthread_mutex_lock(&h->lock);
    sp->n_creating--;
    pthread_mutex_unlock(&h->lock);
    if (st == XO_OK) st = xo_actor_ref(address, uid, &ref);
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        pthread_mutex_lock(&h->lock);
        unrecord(sp, uid);
        pthread_mutex_unlock(&h->lock);
        return xo__error_set(st, "%s", text);
    }
    if (ref_p) *ref_p = ref;
    else xo_ref_free(ref);
    return XO_OK;
}
