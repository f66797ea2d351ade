/* Actors: delivery into mailboxes, the run loop of a stateful actor (with the call-chain reentrancy rule, see
 * core.h), stateless dispatch, and the activation body that runs one message on a worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "base/log.h"

/* Messages a stateful actor runs per turn before yielding its scheduler thread to others. */
#define ACTOR_BATCH 64

static bool is_stateless(const xo_actor_t *a) { return (a->cls->flags & XO_ACTOR_STATELESS) != 0; }

/* ---- life and references ------------------------------------------------------------------------------------- */

xo_actor_t *xo__actor_new(xo_pool_t *pool, const xo_actor_class_t *cls, const char *uid)
{
    size_t ulen = strlen(uid) + 1;
    size_t state_off = (sizeof(xo_actor_t) + ulen + 15) & ~(size_t)15;
    /* One allocation: header, uid, then the state (16-byte aligned); cache-line aligned for the layout above. */
    size_t size = (state_off + cls->state_size + 63) & ~(size_t)63;
    xo_actor_t *a = aligned_alloc(64, size);
    if (!a) return NULL;
    memset(a, 0, size);
    a->run.kind = XO_RUN_ACTOR;
    xo_mpsc_init(&a->mailbox);
    atomic_init(&a->scheduled, 0);
    atomic_init(&a->home, -1);
    atomic_init(&a->last, -1);
    atomic_init(&a->refs, 1);
    atomic_init(&a->life, XO_LIFE_CREATING);
    atomic_init(&a->activations, 0);
    atomic_flag_clear(&a->fini_done);
    a->cls = cls;
    a->pool = pool;
    a->state = cls->state_size ? (char *)a + state_off : NULL;
    memcpy(a->uid, uid, ulen);
    return a;
}

void xo__actor_retain(xo_actor_t *a) { atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed); }

void xo__actor_release(xo_actor_t *a)
{
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1) free(a);
}

void xo__actor_try_fini(xo_actor_t *a)
{
    if (atomic_load(&a->life) != XO_LIFE_DEAD) return;
    if (atomic_flag_test_and_set(&a->fini_done)) return;
    if (a->init_ok && a->cls->fini) a->cls->fini(a->state);
}

void xo__actor_activation_end(xo_actor_t *a)
{
    if (atomic_fetch_sub(&a->activations, 1) == 1 && atomic_load(&a->life) == XO_LIFE_DEAD) xo__actor_try_fini(a);
}

int xo__class_method_index(const xo_actor_class_t *cls, const char *name)
{
    for (size_t i = 0; i < cls->n_methods; i++) {
        const char *m = cls->methods[i].name;
        if (m[0] == name[0] && strcmp(m, name) == 0) return (int)i;
    }
    return -1;
}

/* ---- messages ------------------------------------------------------------------------------------------------ */

void xo__msg_free(xo_msg_t *m)
{
    xo_args_free(m->args);
    for (size_t i = 0; i < m->n_calls; i++) xo_args_free(m->batch_args[i]);
    free(m->batch_args);
    xo__future_unref(m->reply);
    free(m);
}

void xo__msg_reject(xo_msg_t *m, xo_status_t st, const char *fmt, ...)
{
    if (m->reply) {
        va_list ap;
        va_start(ap, fmt);
        char *text = xo__error_text_vdup(fmt, ap);
        va_end(ap);
        xo__future_complete(m->reply, st, text, NULL);
    }
    xo__msg_free(m);
}

/* ---- delivery ------------------------------------------------------------------------------------------------ */

void xo__actor_post(xo_actor_t *a, xo_msg_t *m)
{
    if (m->kind != XO_MSG_RESUME) atomic_fetch_add_explicit(&a->posted, 1, memory_order_relaxed);
    if (m->kind != XO_MSG_RESUME && is_stateless(a) &&
        atomic_load_explicit(&a->life, memory_order_acquire) == XO_LIFE_ALIVE) {
        /* Stateless: every message is its own runnable; the mailbox only serialises creation. */
        xo__actor_retain(a);
        m->actor = a;
        m->run.kind = XO_RUN_MESSAGE;
        xo__sched_post(a->pool, &m->run, -1);
        return;
    }
    xo_mpsc_push(&a->mailbox, &m->run.node);
    /* seq_cst load after the seq_cst push: see xo_mpsc_push. The plain load first keeps the common case (the actor
     * is already scheduled) to a read of a shared line instead of a write. */
    if (atomic_load_explicit(&a->scheduled, memory_order_seq_cst) == 0 && atomic_exchange(&a->scheduled, 1) == 0) {
        xo__actor_retain(a); /* the token holds a ref until it is given back */
        int home = atomic_load(&a->home);
        /* From a plain thread, go back to the scheduler that ran the actor last: bouncing an idle actor between
         * schedulers costs a sleeping thread's wake-up per call (measured: 27 us vs 0.5 us per call on 2 CPUs). */
        if (home < 0 && !xo__sched_current()) home = atomic_load_explicit(&a->last, memory_order_relaxed);
        xo__sched_post(a->pool, &a->run, home);
    }
}

/* ---- the stateful run loop ----------------------------------------------------------------------------------- */

static void defer(xo_actor_t *a, xo_msg_t *m)
{
    atomic_store_explicit(&m->run.node.next, NULL, memory_order_relaxed);
    if (a->deferred_tail) atomic_store_explicit(&a->deferred_tail->run.node.next, &m->run.node, memory_order_relaxed);
    else a->deferred_head = m;
    a->deferred_tail = m;
}

static xo_msg_t *pop_deferred(xo_actor_t *a)
{
    xo_msg_t *m = a->deferred_head;
    a->deferred_head = (xo_msg_t *)atomic_load_explicit(&m->run.node.next, memory_order_relaxed);
    if (!a->deferred_head) a->deferred_tail = NULL;
    return m;
}

/* A call of a XO_METHOD_NO_LOCK method of a live actor: it does not take the actor's turn. */
static bool runs_unlocked(const xo_actor_t *a, const xo_msg_t *m)
{
    return (m->kind == XO_MSG_CALL || m->kind == XO_MSG_BATCH) && m->method < a->cls->n_methods &&
           (a->cls->methods[m->method].flags & XO_METHOD_NO_LOCK) &&
           atomic_load_explicit(&a->life, memory_order_acquire) == XO_LIFE_ALIVE;
}

static void after_stateful_switch(xo_sched_t *s, xo_actor_t *a, xo_worker_t *w)
{
    if (w->state == XO_W_SUSPENDED) {
        if (!w->counted) {
            w->counted = true;
            a->depth++;
            /* Asked here, not at every start: it matters only to an activation that waits. */
            w->unlocked = runs_unlocked(a, w->msg);
            if (!w->unlocked) a->locked_depth++;
        }
        return;
    }
    if (w->counted) {
        a->depth--;
        if (!w->unlocked) a->locked_depth--;
    }
    xo__sched_worker_put(s, w);
}

static void start_activation(xo_sched_t *s, xo_actor_t *a, xo_msg_t *m, bool via_mailbox)
{
    atomic_fetch_add_explicit(&a->taken, 1, memory_order_relaxed);
    xo_worker_t *w = xo__sched_worker_get(s);
    if (!w) {
        xo_log_error("out of memory for a worker: call to %s rejected", a->uid);
        xo__msg_reject(m, XO_ENOMEM, "out of memory for a worker in pool %s", a->pool->address);
        if (!via_mailbox) xo__actor_release(a);
        return;
    }
    w->actor = a;
    w->msg = m;
    w->chain = m->chain;
    w->via_mailbox = via_mailbox;
    w->counted = false;
    w->unlocked = false; /* decided when it first suspends (after_stateful_switch) */
    atomic_store_explicit(&w->cancelled, false, memory_order_relaxed);
    w->awaiting = NULL;
    w->error[0] = '\0';
    /* Only a locked activation's chain is ever compared, and it is the last one set while none was locked. */
    if (via_mailbox && a->locked_depth == 0) a->chain = m->chain;
    xo__sched_switch_in(s, w);
    if (via_mailbox) {
        after_stateful_switch(s, a, w);
    } else if (w->state == XO_W_DONE) {
        xo__sched_worker_put(s, w);
        xo__actor_release(a); /* the ref the message carried */
    }
}

void xo__actor_run(xo_sched_t *s, xo_actor_t *a)
{
    if (atomic_load_explicit(&a->last, memory_order_relaxed) != (int)s->index)
        atomic_store_explicit(&a->last, (int)s->index, memory_order_relaxed);
    for (int budget = ACTOR_BATCH; budget > 0; budget--) {
        xo_msg_t *m;
        if (a->locked_depth == 0 && a->deferred_head) m = pop_deferred(a);
        else m = (xo_msg_t *)xo_mpsc_pop(&a->mailbox);
        if (!m) {
            if (xo_mpsc_maybe_nonempty(&a->mailbox)) break; /* a push is half done: keep the token, come back */
            /* Empty. Give the token back, then look again: a poster that saw the token taken relies on us. */
            atomic_store(&a->home, a->depth > 0 ? (int)s->index : -1);
            atomic_store_explicit(&a->scheduled, 0, memory_order_seq_cst);
            if (xo_mpsc_pushed_since_empty(&a->mailbox) && atomic_exchange(&a->scheduled, 1) == 0) break;
            xo__actor_release(a); /* the token's ref */
            return;
        }
        if (m->kind == XO_MSG_RESUME) {
            xo_worker_t *w = (xo_worker_t *)((char *)m - offsetof(xo_worker_t, resume_msg));
            xo__sched_switch_in(s, w); /* w->home == s: a suspended actor is pinned to its workers' thread */
            after_stateful_switch(s, a, w);
            continue;
        }
        if (a->locked_depth > 0 && m->chain != a->chain && !runs_unlocked(a, m)) {
            defer(a, m);
            continue;
        }
        int life = atomic_load_explicit(&a->life, memory_order_acquire);
        if (life == XO_LIFE_DEAD && m->kind != XO_MSG_CREATE) {
            atomic_fetch_add_explicit(&a->taken, 1, memory_order_relaxed);
            xo__msg_reject(m, XO_ENOACTOR, "actor \"%s\" was destroyed", a->uid);
            continue;
        }
        if (life == XO_LIFE_ALIVE && is_stateless(a)) {
            /* queued while the stateless actor was being created: now it runs concurrently */
            xo__actor_retain(a);
            m->actor = a;
            m->run.kind = XO_RUN_MESSAGE;
            xo__sched_post(a->pool, &m->run, -1);
            continue;
        }
        start_activation(s, a, m, true);
    }
    /* Still holding the token with work left (budget spent, deferred calls runnable, or a half-done push): requeue. */
    xo__sched_post(a->pool, &a->run, a->depth > 0 ? (int)s->index : -1);
}

void xo__actor_run_stateless(xo_sched_t *s, xo_msg_t *m)
{
    xo_actor_t *a = m->actor;
    m->actor = NULL;
    if (atomic_load_explicit(&a->life, memory_order_acquire) == XO_LIFE_DEAD) {
        atomic_fetch_add_explicit(&a->taken, 1, memory_order_relaxed);
        xo__msg_reject(m, XO_ENOACTOR, "actor \"%s\" was destroyed", a->uid);
        xo__actor_release(a);
        return;
    }
    start_activation(s, a, m, false);
}

void xo__actor_resume_stateless(xo_sched_t *s, xo_worker_t *w)
{
    xo_actor_t *a = w->actor;
    xo__sched_switch_in(s, w);
    if (w->state == XO_W_DONE) {
        xo__sched_worker_put(s, w);
        xo__actor_release(a);
    }
}
