/* One timer thread per pool: a binary min-heap under a mutex, a condition variable on CLOCK_MONOTONIC.
 * Timers are rare next to messages (timed calls from methods, delayed tells, sleeps), so a thread that sleeps
 * until the earliest deadline costs nothing on the message path. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core.h"
#include "base/log.h"

struct xo_timers {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    xo_timer_t **heap;
    size_t n, cap;
    bool stop;
    char name[16];
};

uint64_t xo__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void heap_set(xo_timers_t *t, size_t i, xo_timer_t *x)
{
    t->heap[i] = x;
    x->heap_index = i;
}

static void sift_up(xo_timers_t *t, size_t i)
{
    xo_timer_t *x = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->heap[p]->deadline_ns <= x->deadline_ns) break;
        heap_set(t, i, t->heap[p]);
        i = p;
    }
    heap_set(t, i, x);
}

static void sift_down(xo_timers_t *t, size_t i)
{
    xo_timer_t *x = t->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint64_t md = x->deadline_ns;
        if (l < t->n && t->heap[l]->deadline_ns < md) {
            m = l;
            md = t->heap[l]->deadline_ns;
        }
        if (r < t->n && t->heap[r]->deadline_ns < md) m = r;
        if (m == i) break;
        heap_set(t, i, t->heap[m]);
        i = m;
    }
    heap_set(t, i, x);
}

static void heap_remove_at(xo_timers_t *t, size_t i)
{
    xo_timer_t *x = t->heap[i];
    x->heap_index = SIZE_MAX;
    t->n--;
    if (i == t->n) return;
    heap_set(t, i, t->heap[t->n]);
    sift_down(t, i);
    sift_up(t, t->heap[i]->heap_index);
}

static void *timer_main(void *arg)
{
    xo_timers_t *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        uint64_t now = xo__now_ns();
        while (t->n > 0 && t->heap[0]->deadline_ns <= now) {
            xo_timer_t *x = t->heap[0];
            heap_remove_at(t, 0);
            x->fire(x); /* under the lock: xo__timers_remove cannot return while x fires, so x stays valid */
        }
        if (t->n == 0) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            uint64_t d = t->heap[0]->deadline_ns;
            struct timespec ts = {.tv_sec = (time_t)(d / 1000000000ull), .tv_nsec = (long)(d % 1000000000ull)};
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

xo_status_t xo__timers_start(xo_timers_t **timers_p, const char *thread_name)
{
    xo_timers_t *t = calloc(1, sizeof *t);
    if (!t) return xo__error_set(XO_ENOMEM, "out of memory for timers");
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(t->name, sizeof t->name, "%s", thread_name);
    int rc = pthread_create(&t->thread, NULL, timer_main, t);
    if (rc != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return xo__error_set(XO_ESYS, "cannot start the timer thread: %s", strerror(rc));
    }
    *timers_p = t;
    return XO_OK;
}

void xo__timers_stop(xo_timers_t *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    while (t->n > 0) {
        xo_timer_t *x = t->heap[t->n - 1];
        heap_remove_at(t, t->n - 1);
        if (x->drop) x->drop(x);
    }
    free(t->heap);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

void xo__timers_add(xo_timers_t *t, xo_timer_t *x, uint64_t deadline_ns)
{
    pthread_mutex_lock(&t->lock);
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        xo_timer_t **nh = realloc(t->heap, ncap * sizeof *nh);
        if (!nh) {
            /* Without room the timer cannot wait: fire it now rather than lose it (a timeout fires early). */
            xo_log_error("timer heap full and out of memory: firing a timer early");
            x->heap_index = SIZE_MAX;
            x->fire(x);
            pthread_mutex_unlock(&t->lock);
            return;
        }
        t->heap = nh;
        t->cap = ncap;
    }
    x->deadline_ns = deadline_ns;
    heap_set(t, t->n++, x);
    sift_up(t, t->n - 1);
    if (x->heap_index == 0) pthread_cond_signal(&t->cond); /* new earliest deadline */
    pthread_mutex_unlock(&t->lock);
}

bool xo__timers_remove(xo_timers_t *t, xo_timer_t *x)
{
    pthread_mutex_lock(&t->lock);
    bool queued = x->heap_index != SIZE_MAX && x->heap_index < t->n && t->heap[x->heap_index] == x;
    if (queued) heap_remove_at(t, x->heap_index);
    pthread_mutex_unlock(&t->lock);
    return queued;
}
