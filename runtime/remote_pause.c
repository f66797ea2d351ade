/* Pausing: a polling scheduler that leaves to run work it found. See remote_impl.h. */
#include "runtime/remote_impl.h"

/* ---- pausing: a scheduler that leaves to run work it found ----
 *
 * A scheduler that took frames goes to run them and will be back to poll within microseconds. Were it to unregister
 * (the frames still waiting go to the I/O thread, and the next one rings it), the I/O thread would take the rest of
 * a stream of tells at the same time, fighting it over rx_lock and malloc's arena (measured: 8 B tells ran at half
 * the rate, 1 KiB ones at a quarter). So it pauses instead: it stays registered with its pool's inbound connections
 * (requests for its pool, which only its pool's schedulers run anyway) and lets go of the rest at once (replies,
 * which other threads wait for). If it is not back within POLL_PAUSE_NS, the I/O thread takes its registrations
 * over and unregisters them (arming the wake-up, handing waiting frames over). The I/O thread looks every 0.2 ms
 * while a pause is on and every 1 ms for a while after the last one, so a frame waits about a millisecond at most
 * behind a scheduler that runs something long. Not used when another scheduler of the pool sleeps: a request must
 * wake that one at once. */
enum { PAUSE_NONE = 0, PAUSE_ON, PAUSE_TAKING, PAUSE_TAKEN };

typedef struct pauser {
    _Atomic int state;         /* NONE -> ON (owner) -> NONE (owner resumes) or TAKING -> TAKEN (I/O thread) */
    _Atomic uint64_t deadline; /* ns (xo__now_ns) after which the I/O thread takes over */
    _Atomic uint64_t count;    /* pauses so far (owner) */
    uint64_t seen;             /* count at the I/O thread's last look (I/O thread only) */
    poller_t *p;               /* the owner's poller: the I/O thread reads it between TAKING and TAKEN only */
    struct pauser *next;       /* xo__io.pausers (xo__io.lock) */
} pauser_t;

/* Owner: ends a pause. When the I/O thread took the registrations over, the refs it left are dropped. */
void xo__poll_resume(poller_t *p)
{
    pauser_t *z = p->pz;
    if (!z || atomic_load_explicit(&z->state, memory_order_relaxed) == PAUSE_NONE) return;
    int expected = PAUSE_ON;
    if (atomic_compare_exchange_strong(&z->state, &expected, PAUSE_NONE)) return; /* still ours */
    while (atomic_load_explicit(&z->state, memory_order_acquire) != PAUSE_TAKEN) xo_cpu_relax();
    for (size_t i = 0; i < p->n; i++) xo__conn_release(p->conns[i]);
    p->n = 0;
    p->active = false;
    p->partial = false;
    atomic_store_explicit(&z->state, PAUSE_NONE, memory_order_relaxed);
}

/* I/O thread: takes over the registrations of pausers whose time is up. PAUSES_ON while a pause is still on,
 * PAUSES_LATELY when a thread paused since the last look. */
int xo__pausers_check(void)
{
    pauser_t *due[64];
    size_t n_due = 0;
    bool any_on = false, lately = false;
    uint64_t now = xo__now_ns();
    pthread_mutex_lock(&xo__io.lock);
    for (pauser_t *z = xo__io.pausers; z; z = z->next) {
        uint64_t count = atomic_load_explicit(&z->count, memory_order_relaxed);
        if (count != z->seen) lately = true;
        z->seen = count;
        if (atomic_load(&z->state) != PAUSE_ON) continue;
        int expected = PAUSE_ON;
        if (n_due < 64 && atomic_load(&z->deadline) <= now &&
            atomic_compare_exchange_strong(&z->state, &expected, PAUSE_TAKING))
            due[n_due++] = z; /* its owner waits for TAKEN before it touches its poller or exits */
        else if (expected == PAUSE_ON)
            any_on = true;
    }
    pthread_mutex_unlock(&xo__io.lock);
    for (size_t i = 0; i < n_due; i++) {
        poller_t *p = due[i]->p;
        for (size_t k = 0; k < p->n; k++) xo__poll_unregister(p->conns[k]);
        atomic_store_explicit(&due[i]->state, PAUSE_TAKEN, memory_order_release);
    }
    return any_on ? PAUSES_ON : lately ? PAUSES_LATELY : PAUSES_NONE;
}

/* pthread key destructor of a scheduler thread that paused: it exits. */
void xo__pauser_exit(void *arg)
{
    pauser_t *z = arg;
    pthread_mutex_lock(&xo__io.lock);
    for (pauser_t **pp = &xo__io.pausers; *pp; pp = &(*pp)->next)
        if (*pp == z) {
            *pp = z->next;
            break;
        }
    pthread_mutex_unlock(&xo__io.lock);
    xo__poll_resume(z->p); /* normally a no-op: the thread stopped polling before it exited */
    z->p->pz = NULL;
    free(z);
}

static bool pool_has_sleeper(xo_pool_t *pool)
{
    xo_sched_t *me = xo__sched_current();
    for (unsigned i = 0; i < pool->n_sched; i++)
        if (&pool->sched[i] != me && atomic_load_explicit(&pool->sched[i].sleeping, memory_order_relaxed))
            return true;
    return false;
}

void xo__remote_poll_pause(void)
{
    poller_t *p = xo__poller_self();
    if (p->busy) return;
    if (p->pz && atomic_load(&p->pz->state) != PAUSE_NONE) {
        /* Not back to poll since the last pause (it found more work at once): that pause's deadline stands, so a
         * scheduler that never runs dry cannot hold its connections forever. Taken over: drop what is left. */
        if (atomic_load(&p->pz->state) != PAUSE_ON) xo__poll_resume(p);
        return;
    }
    if (!p->active) return;
    if (!p->pool || !p->pz || pool_has_sleeper(p->pool)) {
        if (p->pool && !p->pz) { /* the first pause of this thread: make its pauser */
            pauser_t *z = calloc(1, sizeof *z);
            if (z && pthread_setspecific(xo__io.pause_key, z) == 0) {
                z->p = p;
                pthread_mutex_lock(&xo__io.lock);
                z->next = xo__io.pausers;
                xo__io.pausers = z;
                pthread_mutex_unlock(&xo__io.lock);
                p->pz = z;
            } else {
                free(z);
            }
        }
        if (!p->pz || pool_has_sleeper(p->pool)) {
            xo__remote_poll_stop();
            return;
        }
    }
    p->busy = true;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        conn_t *c = p->conns[i];
        if (c->kind == CONN_INBOUND) {
            p->conns[k++] = c;
        } else {
            xo__poll_unregister(c);
            xo__conn_release(c);
        }
    }
    p->n = k;
    p->partial = true;
    if (k) {
        atomic_store(&p->pz->deadline, xo__now_ns() + POLL_PAUSE_NS);
        atomic_store_explicit(&p->pz->count, atomic_load_explicit(&p->pz->count, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        /* Dekker with the I/O thread's xo__pausers_check after it clears pause_watch: it sees us ON, or we see the
         * watch off and wake it. */
        atomic_store(&p->pz->state, PAUSE_ON);
        if (!atomic_load(&xo__io.pause_watch) && !atomic_exchange(&xo__io.pause_watch, true)) xo__io_wake();
    } else {
        p->active = false;
        p->partial = false;
    }
    p->busy = false;
}
