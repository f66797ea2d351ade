#include "base/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* -1 means "not read from the environment yet"; a race between two first readers writes the same value. */
static _Atomic int threshold = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

bool xo__log_parse_level(const char *s, xo_log_level_t *level_p)
{
    for (int i = 0; s && i < 5; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *level_p = (xo_log_level_t)i;
            return true;
        }
    return false;
}

const char *xo__log_level_name(xo_log_level_t level)
{
    return (unsigned)level < 5 ? level_names[level] : "warn";
}

static int parse_level(const char *s)
{
    xo_log_level_t level = XO_LOG_WARN;
    xo__log_parse_level(s, &level);
    return (int)level;
}

xo_log_level_t xo__log_threshold(void)
{
    int t = atomic_load_explicit(&threshold, memory_order_relaxed);
    if (t < 0) {
        const char *env = getenv("XO_LOG_LEVEL");
        t = env ? parse_level(env) : XO_LOG_WARN;
        atomic_store_explicit(&threshold, t, memory_order_relaxed);
    }
    return (xo_log_level_t)t;
}

void xo__log_set_threshold(xo_log_level_t level) { atomic_store(&threshold, (int)level); }

/* Who writes (a pool's address), shown on every line. Each name set goes to the next of a few buffers and the
 * pointer swaps to it whole, so that a name set while other threads log (a main pool on port 0 learns its port once
 * started) never shows half written: a buffer is written again only 8 names later (a process sets one or two). */
static char log_names[8][128];
static _Atomic unsigned log_names_used;
static _Atomic(const char *) log_name = "";

void xo__log_set_name(const char *name)
{
    char *buf = log_names[atomic_fetch_add(&log_names_used, 1) % 8];
    snprintf(buf, sizeof log_names[0], "%s", name ? name : "");
    atomic_store_explicit(&log_name, buf, memory_order_release);
}

/* The second sink: -2 means "XO_LOG_FILE not looked at yet", -1 none. Opened O_APPEND: every pool of a cluster may
 * append to its own file while an operator tails it; each line is one write, so lines never mix. Once open, the fd
 * number stays: xo__log_set_file replaces the file behind it with dup3, so a writer racing with it never writes to
 * a closed (or reused) fd. */
static _Atomic int file_fd = -2;
/* The file is also our stderr (a daemon's stderr is its log file): one copy of each line is enough. */
static _Atomic bool file_is_stderr;
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_file(int a_fd, int b_fd)
{
    struct stat a, b;
    return fstat(a_fd, &a) == 0 && fstat(b_fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Opens path as the file sink, or drops the sink (path NULL or ""); file_lock held. */
static bool open_file_locked(const char *path)
{
    int fd = path && path[0] ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
    bool ok = fd >= 0 || !(path && path[0]);
    int cur = atomic_load_explicit(&file_fd, memory_order_relaxed);
    if (fd < 0) { /* none: a sink already open is silenced, its fd number kept (see above) */
        atomic_store(&file_is_stderr, true);
        if (cur == -2) atomic_store_explicit(&file_fd, -1, memory_order_release);
        return ok;
    }
    atomic_store(&file_is_stderr, same_file(fd, STDERR_FILENO));
    if (cur >= 0 && fd != cur) { /* (fd == cur only if someone closed ours: then it is simply the new one) */
        dup3(fd, cur, O_CLOEXEC); /* sub pools must not inherit it (dup2 would clear FD_CLOEXEC) */
        close(fd);
    } else {
        atomic_store_explicit(&file_fd, fd, memory_order_release);
    }
    return true;
}

static int log_file(void)
{
    int fd = atomic_load_explicit(&file_fd, memory_order_acquire);
    if (fd != -2) return fd;
    pthread_mutex_lock(&file_lock);
    if (atomic_load_explicit(&file_fd, memory_order_relaxed) == -2) open_file_locked(getenv("XO_LOG_FILE"));
    fd = atomic_load_explicit(&file_fd, memory_order_relaxed);
    pthread_mutex_unlock(&file_lock);
    return fd;
}

/* The echo sink (xo__log_set_echo): -1 none. Written under echo_lock so that clearing it never races a writer. */
static _Atomic int echo_fd = -1;
static pthread_mutex_t echo_lock = PTHREAD_MUTEX_INITIALIZER;

void xo__log_set_echo(int fd)
{
    pthread_mutex_lock(&echo_lock);
    int old = atomic_exchange(&echo_fd, fd);
    if (old >= 0 && old != fd) close(old);
    pthread_mutex_unlock(&echo_lock);
}

static void echo(const char *buf, size_t n)
{
    if (atomic_load_explicit(&echo_fd, memory_order_relaxed) < 0) return;
    pthread_mutex_lock(&echo_lock);
    int fd = atomic_load_explicit(&echo_fd, memory_order_relaxed);
    if (fd >= 0 && write(fd, buf, n) < 0) {
        /* the caller went away (its pipe closed): nobody reads these lines, the log file has them */
    }
    pthread_mutex_unlock(&echo_lock);
}

bool xo__log_set_file(const char *path)
{
    pthread_mutex_lock(&file_lock);
    bool ok = open_file_locked(path);
    pthread_mutex_unlock(&file_lock);
    return ok;
}

void xo__log_write(xo_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    static const char *tags[] = {"E", "W", "I", "D", "T"};
    char thread_name[16] = "?";
    pthread_getname_np(pthread_self(), thread_name, sizeof thread_name);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    const char *name = atomic_load_explicit(&log_name, memory_order_acquire);
    /* Format the whole line first so concurrent writers do not interleave inside a line. */
    char buf[1024], when[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* ISO 8601 in UTC with microseconds: sortable, and the same on every host of a cluster whatever its zone. */
    int n = snprintf(buf, sizeof buf, "[%s %s.%06ldZ %s%spid %d %s %s:%d] ", tags[level], when, ts.tv_nsec / 1000,
                     name, name[0] ? " " : "", (int)getpid(), thread_name, base, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof buf) n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf - 1) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    int fd = log_file();
    if (fd >= 0 && !atomic_load_explicit(&file_is_stderr, memory_order_relaxed)) w = write(fd, buf, (size_t)n);
    echo(buf, (size_t)n);
    (void)w;
}
