/* Scheduler threads. Each has an MPSC inbox for runnables posted by other threads and a private FIFO for those it
 * posts itself (an actor that messages another keeps the pair on one thread: a ping-pong then costs two fiber
 * switches and no cross-core traffic). When a thread has a backlog and another sleeps, new work goes to the
 * sleeper instead (work sharing, no stealing).
 *
 * An idle thread spins briefly, then sleeps on a futex; a poster wakes it only when its "sleeping" flag is set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "base/futex.h"
#include "base/log.h"
#include "runtime/remote.h"

static _Thread_local xo_sched_t *tls_sched;
static _Thread_local xo_worker_t *tls_worker;

xo_sched_t *xo__sched_current(void) { return tls_sched; }
xo_worker_t *xo__worker_current(void) { return tls_worker; }

/* ---- queues -------------------------------------------------------------------------------------------------- */

static void local_push(xo_sched_t *s, xo_runnable_t *r)
{
    atomic_store_explicit(&r->node.next, NULL, memory_order_relaxed);
    if (s->local_tail) atomic_store_explicit(&s->local_tail->node.next, &r->node, memory_order_relaxed);
    else s->local_head = r;
    s->local_tail = r;
}

static xo_runnable_t *local_pop(xo_sched_t *s)
{
    xo_runnable_t *r = s->local_head;
    if (!r) return NULL;
    s->local_head = (xo_runnable_t *)atomic_load_explicit(&r->node.next, memory_order_relaxed);
    if (!s->local_head) s->local_tail = NULL;
    return r;
}

static void push_remote(xo_sched_t *t, xo_runnable_t *r)
{
    xo_mpsc_push(&t->inbox, &r->node);
    /* Dekker with idle(): we publish the node then read "sleeping"; the sleeper publishes "sleeping" then reads
     * the queue. The fence makes sure at least one side sees the other's write. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&t->sleeping, memory_order_relaxed)) {
        atomic_store(&t->sleeping, 0);
        xo_futex_wake(&t->sleeping, 1);
    }
}

void xo__sched_post(xo_pool_t *pool, xo_runnable_t *r, int home)
{
    xo_sched_t *cur = tls_sched;
    if (cur && cur->pool == pool && (home < 0 || (unsigned)home == cur->index)) {
        if (home < 0 && cur->local_head && pool->n_sched > 1) {
            for (unsigned i = 1; i < pool->n_sched; i++) {
                xo_sched_t *t = &pool->sched[(cur->index + i) % pool->n_sched];
                if (atomic_load_explicit(&t->sleeping, memory_order_relaxed)) {
                    push_remote(t, r);
                    return;
                }
            }
        }
        local_push(cur, r);
        return;
    }
    xo_sched_t *t;
    if (home >= 0) t = &pool->sched[home];
    else t = &pool->sched[atomic_fetch_add_explicit(&pool->rr, 1, memory_order_relaxed) % pool->n_sched];
    push_remote(t, r);
}

/* ---- workers ------------------------------------------------------------------------------------------------- */

static void worker_main(void *arg)
{
    xo_worker_t *w = arg;
    for (;;) {
        xo__activation_body(w);
        w->state = XO_W_DONE;
        xo__fiber_switch(w->fiber, w->home->loop_fiber);
    }
}

xo_worker_t *xo__sched_worker_get(xo_sched_t *s)
{
    xo_worker_t *w = s->free_workers;
    if (w) {
        s->free_workers = w->next_free;
        w->next_free = NULL;
        return w;
    }
    if (s->n_workers == s->cap_workers) {
        size_t ncap = s->cap_workers ? s->cap_workers * 2 : 16;
        xo_worker_t **nw = realloc(s->workers, ncap * sizeof *nw);
        if (!nw) return NULL;
        s->workers = nw;
        s->cap_workers = ncap;
    }
    w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fiber = xo__fiber_create(s->pool->fiber_stack_size, worker_main, w);
    if (!w->fiber || !msgpack_zone_init(&w->zone, 1024)) {
        xo__fiber_destroy(w->fiber);
        free(w);
        return NULL;
    }
    w->home = s;
    w->run.kind = XO_RUN_RESUME;
    w->resume_msg.kind = XO_MSG_RESUME;
    msgpack_packer_init(&w->out_pk, &w->out, xo__buf_write);
    s->workers[s->n_workers++] = w;
    return w;
}

void xo__sched_worker_put(xo_sched_t *s, xo_worker_t *w)
{
    w->state = XO_W_IDLE;
    w->actor = NULL;
    w->msg = NULL;
    w->next_free = s->free_workers;
    s->free_workers = w;
}

void xo__sched_switch_in(xo_sched_t *s, xo_worker_t *w)
{
    tls_worker = w;
    xo__error_bind(w->error);
    w->state = XO_W_RUNNING;
    xo__fiber_switch(s->loop_fiber, w->fiber);
    tls_worker = NULL;
    xo__error_bind(NULL);
}

xo_status_t xo__worker_suspend(xo_worker_t *w)
{
    w->state = XO_W_SUSPENDED;
    xo__fiber_switch(w->fiber, w->home->loop_fiber);
    return w->wake_status;
}

void xo__worker_wake(xo_worker_t *w, xo_status_t why)
{
    w->wake_status = why; /* published to the resumer by the queue push below (release) */
    if (w->via_mailbox) {
        /* xo__actor_post reads the actor after publishing the message, by when the resumed activation may have run
         * to its end and the actor been freed (TSan, in the soak's create and destroy churn): hold it across the
         * post. Taking the ref is safe here: the suspended activation holds one until it ends. */
        xo_actor_t *a = w->actor;
        xo__actor_retain(a);
        xo__actor_post(a, &w->resume_msg);
        xo__actor_release(a);
    } else {
        xo__sched_post(w->home->pool, &w->run, (int)w->home->index);
    }
}

/* ---- the loop ------------------------------------------------------------------------------------------------ */

/* While it spins, the thread also takes frames off the process's shared-memory connections (requests to this pool,
 * replies to its actors' calls): a frame then reaches its actor with no thread woken on the way. It stops polling
 * before it sleeps, so that the I/O thread is the one woken while it is away; before it runs work it only pauses
 * (its pool's requests wait a short while for it rather than go to the I/O thread: see xo__remote_poll_pause). */
static void idle(xo_sched_t *s)
{
    xo_pool_t *pool = s->pool;
    atomic_store_explicit(&s->busy, false, memory_order_relaxed);
    uint64_t until = xo__now_ns() + s->spin_ns;
    for (unsigned i = 0;; i++) {
        if (xo_mpsc_maybe_nonempty(&s->inbox) || s->local_head ||
            atomic_load_explicit(&pool->threads_stop, memory_order_relaxed)) {
            xo__remote_poll_pause();
            atomic_store_explicit(&s->busy, true, memory_order_relaxed);
            return;
        }
        if ((i & 7) == 0 && xo__remote_poll(pool)) until = xo__now_ns() + s->spin_ns;
        if ((i & 63) == 63 && xo__now_ns() >= until) break;
        xo_cpu_relax();
    }
    xo__remote_poll_stop();
    if (s->local_head) {
        atomic_store_explicit(&s->busy, true, memory_order_relaxed);
        return;
    }
    atomic_store(&s->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst); /* pairs with push_remote's fence */
    while (atomic_load(&s->sleeping) && !xo_mpsc_maybe_nonempty(&s->inbox) &&
           !atomic_load_explicit(&pool->threads_stop, memory_order_relaxed))
        xo_futex_wait(&s->sleeping, 1, -1);
    atomic_store(&s->sleeping, 0);
    atomic_store_explicit(&s->busy, true, memory_order_relaxed);
}

static void dispatch(xo_sched_t *s, xo_runnable_t *r)
{
    switch (r->kind) {
    case XO_RUN_ACTOR: xo__actor_run(s, (xo_actor_t *)r); break;
    case XO_RUN_MESSAGE: xo__actor_run_stateless(s, (xo_msg_t *)r); break;
    case XO_RUN_RESUME: xo__actor_resume_stateless(s, (xo_worker_t *)((char *)r - offsetof(xo_worker_t, run))); break;
    default: xo_log_error("unknown runnable kind %d", r->kind); break;
    }
}

static void *sched_main(void *arg)
{
    xo_sched_t *s = arg;
    char name[16];
    snprintf(name, sizeof name, "xo-sched-%u", s->index);
    pthread_setname_np(pthread_self(), name);
    tls_sched = s;
    s->loop_fiber = xo__fiber_for_thread();
    if (!s->loop_fiber) {
        xo_log_error("scheduler %u: out of memory for its loop fiber", s->index);
        abort();
    }
    while (!atomic_load_explicit(&s->pool->threads_stop, memory_order_acquire)) {
        xo_runnable_t *r = local_pop(s);
        if (!r) r = (xo_runnable_t *)xo_mpsc_pop(&s->inbox);
        if (!r) {
            idle(s);
            continue;
        }
        dispatch(s, r);
    }
    xo__remote_poll_stop(); /* idle() stops polling on every exit; this one is for safety */
    tls_sched = NULL;
    return NULL;
}

xo_status_t xo__sched_start_all(xo_pool_t *pool)
{
    for (unsigned i = 0; i < pool->n_sched; i++) {
        xo_sched_t *s = &pool->sched[i];
        s->pool = pool;
        s->index = i;
        xo_mpsc_init(&s->inbox);
        s->loop_fiber = NULL;
    }
    for (unsigned i = 0; i < pool->n_sched; i++) {
        xo_sched_t *s = &pool->sched[i];
        /* The loop fiber stands for the thread's own stack, so sched_main makes it on the thread itself. */
        int rc = pthread_create(&s->thread, NULL, sched_main, s);
        if (rc != 0) {
            atomic_store(&pool->threads_stop, true);
            for (unsigned j = 0; j < i; j++) {
                xo_futex_wake(&pool->sched[j].sleeping, 1);
                pthread_join(pool->sched[j].thread, NULL);
            }
            return xo__error_set(XO_ESYS, "cannot start scheduler thread %u: %s", i, strerror(rc));
        }
    }
    return XO_OK;
}

void xo__sched_stop_all(xo_pool_t *pool)
{
    atomic_store(&pool->threads_stop, true);
    for (unsigned i = 0; i < pool->n_sched; i++) {
        atomic_store(&pool->sched[i].sleeping, 0);
        xo_futex_wake(&pool->sched[i].sleeping, 1);
    }
    for (unsigned i = 0; i < pool->n_sched; i++) pthread_join(pool->sched[i].thread, NULL);
}
