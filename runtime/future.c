/* Futures: a reply's rendezvous between its producer (the target's activation, a timer, a cancel) and one waiter
 * (a plain thread sleeping on a futex, or a worker suspended on its fiber).
 *
 * The state word goes PENDING → WAITING (the waiter registered) → DONE (the reply is there). Whoever moves it out
 * of WAITING wakes the waiter, exactly once: the completer by exchanging in DONE, a timeout or a cancel by a CAS
 * back to PENDING (the wait is abandoned; the reply may still come later and is kept). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "base/futex.h"
#include "runtime/remote.h"

typedef struct {
    _Atomic bool completed; /* claims the right to complete; separate from state so completion is exclusive */
    xo_future_t f;
} future_box_t;

#define BOX(fp) ((future_box_t *)((char *)(fp) - offsetof(future_box_t, f)))

xo_future_t *xo__future_new(void)
{
    future_box_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->f.refs, 1);
    atomic_flag_clear(&b->f.lock);
    return &b->f;
}

void xo__future_ref(xo_future_t *f) { atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); }

static void free_items(xo_future_t *f)
{
    for (size_t i = 0; i < f->n_items; i++) {
        if (f->item_results) xo_result_free(f->item_results[i]);
        if (f->item_errors) free(f->item_errors[i]);
    }
    free(f->item_status);
    free(f->item_results);
    free(f->item_errors);
}

void xo__future_unref(xo_future_t *f)
{
    if (!f) return;
    /* acq_rel: the last holder must see every write the others made (the reply, the taken flag). */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    if (f->on_free) f->on_free(f->hook_arg);
    free(f->error);
    xo_result_free(f->result);
    free_items(f);
    free(BOX(f));
}

static void lock(xo_future_t *f)
{
    while (atomic_flag_test_and_set_explicit(&f->lock, memory_order_acquire)) xo_cpu_relax();
}

static void unlock(xo_future_t *f) { atomic_flag_clear_explicit(&f->lock, memory_order_release); }

enum { USER_CB_NONE = 0, USER_CB_SET = 1, USER_CB_FIRED = 2 };

/* The completer's side of xo_future_on_done, after DONE is visible. seq_cst exchange against the registrant's
 * seq_cst CAS: exactly one of the two sees the other's move and runs the callback. */
static void run_user_cb_if_set(xo_future_t *f)
{
    if (atomic_exchange(&f->user_cb_state, USER_CB_FIRED) == USER_CB_SET) f->user_cb(f, f->user_cb_arg);
}

static void publish(xo_future_t *f)
{
    /* Once DONE is visible the owner may drop its reference and free the future, while this function still reads
     * the hooks and the waiter: a completer that holds no reference of its own (a promise resolved by another actor,
     * as the collectives' rendezvous does; found by TSan under load) would read freed memory. So hold one here. The
     * future is alive on entry: its owner does not free it before it is done, and completers with no reference only
     * complete futures that are not. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    /* acq_rel exchange: releases the reply written above to the waiter; acquires the waiter's registration. */
    int prev = atomic_exchange_explicit(&f->state, XO_FUT_DONE, memory_order_acq_rel);
    if (f->on_done) f->on_done(f, f->hook_arg);
    run_user_cb_if_set(f);
    if (prev == XO_FUT_WAITING) {
        xo_worker_t *w = f->waiter;
        if (w) xo__worker_wake(w, XO_OK);
        else xo_futex_wake(&f->state, INT_MAX);
    }
    xo__future_unref(f);
}

static bool claim(xo_future_t *f)
{
    bool expected = false;
    return atomic_compare_exchange_strong(&BOX(f)->completed, &expected, true);
}

bool xo__future_complete(xo_future_t *f, xo_status_t st, char *error, xo_result_t *result)
{
    if (!claim(f)) {
        free(error);
        xo_result_free(result);
        return false;
    }
    f->status = st;
    f->error = error;
    f->result = result;
    publish(f);
    return true;
}

bool xo__future_complete_batch(xo_future_t *f, size_t n, xo_status_t *st, xo_result_t **results, char **errors)
{
    if (!claim(f)) {
        for (size_t i = 0; i < n; i++) {
            xo_result_free(results[i]);
            free(errors[i]);
        }
        free(st);
        free(results);
        free(errors);
        return false;
    }
    f->status = XO_OK;
    f->n_items = n;
    f->item_status = st;
    f->item_results = results;
    f->item_errors = errors;
    publish(f);
    return true;
}

bool xo_future_done(const xo_future_t *f)
{
    return atomic_load_explicit(&((xo_future_t *)f)->state, memory_order_acquire) == XO_FUT_DONE;
}

/* ---- waiting on a plain thread ------------------------------------------------------------------------------- */

/* A short spin first: on a loaded pool the reply often arrives within microseconds, and a futex sleep plus wake
 * costs several. */
#define THREAD_SPIN_NS 20000

static xo_status_t thread_wait(xo_future_t *f, int64_t timeout_ms)
{
    uint64_t start = xo__now_ns();
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000ull;
    uint64_t spin_until = start + THREAD_SPIN_NS < deadline ? start + THREAD_SPIN_NS : deadline;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&f->state, memory_order_acquire) == XO_FUT_DONE) {
            xo__remote_poll_stop();
            return XO_OK;
        }
        /* Takes a remote reply off its shared-memory ring here instead of waking the I/O thread for it. */
        if ((i & 7) == 0) xo__remote_poll(NULL);
        if ((i & 63) == 63 && xo__now_ns() >= spin_until) break;
        xo_cpu_relax();
    }
    xo__remote_poll_stop();
    f->waiter = NULL;
    int expected = XO_FUT_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&f->state, &expected, XO_FUT_WAITING, memory_order_acq_rel,
                                                 memory_order_acquire))
        return XO_OK; /* it became DONE meanwhile */
    for (;;) {
        uint64_t now = xo__now_ns();
        if (now >= deadline) {
            expected = XO_FUT_WAITING;
            if (atomic_compare_exchange_strong_explicit(&f->state, &expected, XO_FUT_PENDING, memory_order_acq_rel,
                                                        memory_order_acquire))
                return xo__error_set(XO_ETIMEDOUT, "no reply within %lld ms", (long long)timeout_ms);
            return XO_OK;
        }
        xo_futex_wait(&f->state, XO_FUT_WAITING, deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now));
        if (atomic_load_explicit(&f->state, memory_order_acquire) == XO_FUT_DONE) return XO_OK;
    }
}

bool xo_poll_replies(int64_t spin_us)
{
    if (xo__worker_current()) return false; /* a method's thread has its scheduler's polling */
    uint64_t until = xo__now_ns() + (spin_us > 0 ? (uint64_t)spin_us * 1000ull : 0);
    bool took = false;
    for (;;) {
        if (xo__remote_poll(NULL)) {
            took = true;
            break;
        }
        if (xo__now_ns() >= until) break;
        xo_cpu_relax();
    }
    /* Hands the connections back to the I/O thread before the caller sleeps (see xo__remote_poll). */
    xo__remote_poll_stop();
    return took;
}

/* ---- waiting on a worker ------------------------------------------------------------------------------------- */

typedef struct {
    xo_timer_t timer;
    xo_future_t *f;
    xo_worker_t *w;
} wait_timer_t;

static void wait_timer_fire(xo_timer_t *t)
{
    wait_timer_t *wt = (wait_timer_t *)t;
    int expected = XO_FUT_WAITING;
    if (atomic_compare_exchange_strong_explicit(&wt->f->state, &expected, XO_FUT_PENDING, memory_order_acq_rel,
                                                memory_order_acquire))
        xo__worker_wake(wt->w, XO_ETIMEDOUT);
}

static void set_awaiting(xo_worker_t *w, xo_future_t *f)
{
    xo_future_t *call = w->msg ? w->msg->reply : NULL;
    if (!call) {
        w->awaiting = f;
        return;
    }
    lock(call);
    w->awaiting = f;
    unlock(call);
}

static xo_status_t worker_wait(xo_worker_t *w, xo_future_t *f, int64_t timeout_ms)
{
    if (atomic_load(&w->cancelled)) return xo__error_set(XO_ECANCELED, "the calling method was cancelled");
    set_awaiting(w, f);
    f->waiter = w;
    wait_timer_t wt = {.timer = {.heap_index = SIZE_MAX, .fire = wait_timer_fire}, .f = f, .w = w};
    xo_timers_t *timers = w->home->pool->timers;

    xo_status_t why = XO_OK;
    int expected = XO_FUT_PENDING;
    if (atomic_compare_exchange_strong(&f->state, &expected, XO_FUT_WAITING)) {
        /* The timer starts only once we are registered as WAITING: a timer that fired before would find nobody to
         * wake and we would sleep for good. */
        if (timeout_ms >= 0) xo__timers_add(timers, &wt.timer, xo__now_ns() + (uint64_t)timeout_ms * 1000000ull);
        /* seq_cst CAS above, seq_cst load here, against the canceller's seq_cst store of cancelled and its CAS of
         * our state: either it sees WAITING and wakes us, or we see cancelled and withdraw ourselves. */
        if (atomic_load(&w->cancelled)) {
            expected = XO_FUT_WAITING;
            if (atomic_compare_exchange_strong(&f->state, &expected, XO_FUT_PENDING)) why = XO_ECANCELED;
            else why = xo__worker_suspend(w); /* somebody already claimed the wake: consume it */
        } else {
            why = xo__worker_suspend(w);
        }
        if (timeout_ms >= 0) xo__timers_remove(timers, &wt.timer);
    }
    set_awaiting(w, NULL);
    if (why == XO_ETIMEDOUT) return xo__error_set(XO_ETIMEDOUT, "no reply within %lld ms", (long long)timeout_ms);
    if (why == XO_ECANCELED) return xo__error_set(XO_ECANCELED, "the calling method was cancelled");
    return XO_OK;
}

xo_status_t xo__future_await(xo_future_t *f, int64_t timeout_ms)
{
    if (atomic_load_explicit(&f->state, memory_order_acquire) == XO_FUT_DONE) return XO_OK;
    xo_worker_t *w = xo__worker_current();
    return w ? worker_wait(w, f, timeout_ms) : thread_wait(f, timeout_ms);
}

/* ---- cancellation -------------------------------------------------------------------------------------------- */

void xo__future_request_cancel(xo_future_t *f)
{
    if (atomic_exchange(&f->cancel_requested, true)) return; /* once is enough */
    if (f->on_cancel && !xo_future_done(f)) f->on_cancel(f, f->hook_arg);
    lock(f);
    xo_worker_t *w = f->runner;
    xo_future_t *g = NULL;
    if (w) {
        atomic_store(&w->cancelled, true);
        g = w->awaiting;
        if (g) xo__future_ref(g);
    }
    unlock(f);
    if (!g) return;
    /* First end the method's wait (it sees XO_ECANCELED at once, whatever the inner call does next), then cancel
     * the call it was waiting on, down the chain. In the other order the inner call could complete first and the
     * method would get its value instead. */
    int expected = XO_FUT_WAITING;
    if (atomic_compare_exchange_strong(&g->state, &expected, XO_FUT_PENDING)) xo__worker_wake(w, XO_ECANCELED);
    xo__future_request_cancel(g);
    xo__future_unref(g);
}

/* Called by the activation that runs f's call, at its start and end (runner = NULL). */
void xo__future_set_runner(xo_future_t *f, xo_worker_t *w)
{
    lock(f);
    f->runner = w;
    unlock(f);
}

/* ---- public API ---------------------------------------------------------------------------------------------- */

xo_status_t xo_future_wait(xo_future_t *f, int64_t timeout_ms, xo_result_t **result_p)
{
    if (!f) return xo__error_set(XO_EINVAL, "NULL future");
    xo_status_t st = xo__future_await(f, timeout_ms);
    if (st != XO_OK) return st;
    if (f->taken) return xo__error_set(XO_EINVAL, "the future's value was already taken");
    if (f->status != XO_OK) {
        if (f->error) xo__error_set(f->status, "%s", f->error);
        else xo__error_set(f->status, "%s", xo_strerror(f->status));
        return f->status;
    }
    f->taken = true;
    if (result_p) {
        *result_p = f->result;
        f->result = NULL;
    }
    return XO_OK;
}

void xo_future_cancel(xo_future_t *f)
{
    if (f) xo__future_request_cancel(f);
}

void xo_future_free(xo_future_t *f) { xo__future_unref(f); }

xo_status_t xo_future_on_done(xo_future_t *f, void (*cb)(xo_future_t *f, void *arg), void *arg)
{
    if (!f || !cb) return xo__error_set(XO_EINVAL, "NULL future or callback");
    /* user_cb is written only here, and the contract is one registration per future, from one thread. */
    if (f->user_cb)
        return xo__error_set(XO_EINVAL, "the future already has a completion callback");
    /* Written before the CAS publishes them; the completer reads them only after seeing SET. */
    f->user_cb = cb;
    f->user_cb_arg = arg;
    int expected = USER_CB_NONE;
    if (atomic_compare_exchange_strong(&f->user_cb_state, &expected, USER_CB_SET)) return XO_OK;
    /* The completer already passed (FIRED): the reply is there and nobody else will run cb. */
    cb(f, arg);
    return XO_OK;
}

xo_future_t *xo_promise_new(void) { return xo__future_new(); }

xo_status_t xo_promise_resolve(xo_future_t *p, xo_args_t *value)
{
    xo_status_t refused = xo__args_refuse(value);
    if (refused != XO_OK) return refused;
    if (!p) {
        xo_args_free(value);
        return xo__error_set(XO_EINVAL, "NULL promise");
    }
    size_t len = 0;
    const char *data = NULL;
    static const char nil = (char)0xc0;
    if (value) {
        /* value is an argument list of one: the promise's value is that one element */
        data = xo__args_data(value, &len);
        if (len < 2 || (unsigned char)data[0] != 0x91) {
            xo_args_free(value);
            return xo__error_set(XO_EINVAL, "a promise value must be exactly one value, e.g. xo_args(\"i\", 1)");
        }
        data++;
        len--;
    } else {
        data = &nil;
        len = 1;
    }
    xo_result_t *r = xo__result_from_bytes(data, len);
    xo_args_free(value);
    if (!r) return xo__error_set(XO_ENOMEM, "out of memory");
    if (!xo__future_complete(p, XO_OK, NULL, r)) return xo__error_set(XO_EINVAL, "promise already completed");
    return XO_OK;
}

xo_status_t xo_promise_reject(xo_future_t *p, xo_status_t st, const char *fmt, ...)
{
    if (!p) return xo__error_set(XO_EINVAL, "NULL promise");
    if (st == XO_OK) st = XO_EMETHOD;
    va_list ap;
    va_start(ap, fmt);
    char *text = xo__error_text_vdup(fmt, ap);
    va_end(ap);
    if (!xo__future_complete(p, st, text, NULL)) return xo__error_set(XO_EINVAL, "promise already completed");
    return XO_OK;
}
