#include "base/log.h"

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

void xo__log_write(xo_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    static const char *tags[] = {"E", "W", "I", "D", "T"};
    char thread_name[16] = "?";
    pthread_getname_np(pthread_self(), thread_name, sizeof thread_name);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;

    /* Format the whole line first so concurrent writers do not interleave inside a line. */
    char buf[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(buf, sizeof buf, "[%s %ld.%06ld %d %s %s:%d] ", tags[level], (long)ts.tv_sec, ts.tv_nsec / 1000,
                     (int)getpid(), thread_name, base, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof buf) n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf - 1) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}
