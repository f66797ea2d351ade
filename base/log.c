#include "base/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* -1 means "not read from the environment yet"; a race between two first readers writes the same value. */
static _Atomic int threshold = -1;

static int parse_level(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    return XO_LOG_WARN;
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

/* Who writes (a pool's address), shown on every line; set once at start, before other threads log. */
static char log_name[128];

void xo__log_set_name(const char *name) { snprintf(log_name, sizeof log_name, "%s", name ? name : ""); }

/* The second sink: -2 means "XO_LOG_FILE not looked at yet", -1 none. Opened once, O_APPEND: every pool of a
 * cluster may append to its own file while an operator tails it; each line is one write, so lines never mix. */
static _Atomic int file_fd = -2;
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

static int log_file(void)
{
    int fd = atomic_load_explicit(&file_fd, memory_order_acquire);
    if (fd != -2) return fd;
    pthread_mutex_lock(&file_lock);
    fd = atomic_load_explicit(&file_fd, memory_order_relaxed);
    if (fd == -2) {
        const char *path = getenv("XO_LOG_FILE");
        fd = path && path[0] ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640) : -1;
        atomic_store_explicit(&file_fd, fd, memory_order_release);
    }
    pthread_mutex_unlock(&file_lock);
    return fd;
}

void xo__log_write(xo_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    static const char *tags[] = {"E", "W", "I", "D", "T"};
    char thread_name[16] = "?";
    pthread_getname_np(pthread_self(), thread_name, sizeof thread_name);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    /* Format the whole line first so concurrent writers do not interleave inside a line. */
    char buf[1024], when[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* ISO 8601 in UTC with microseconds: sortable, and the same on every host of a cluster whatever its zone. */
    int n = snprintf(buf, sizeof buf, "[%s %s.%06ldZ %s%spid %d %s %s:%d] ", tags[level], when, ts.tv_nsec / 1000,
                     log_name, log_name[0] ? " " : "", (int)getpid(), thread_name, base, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof buf) n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf - 1) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    int fd = log_file();
    if (fd >= 0) w = write(fd, buf, (size_t)n);
    (void)w;
}
