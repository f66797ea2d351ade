/* The public API over the in-process runtime: refs, actor lifecycle, calls, sends, tells, batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/core.h"
#include "base/log.h"
#include "runtime/remote.h"

struct xo_ref {
    char *address;
    char *uid;
    xo_actor_t *actor; /* counted; may have died since, then calls look the uid up again */
};

struct xo_delayed {
    char *method;
    xo_args_t *args;
};

/* ---- refs ---------------------------------------------------------------------------------------------------- */

static xo_ref_t *ref_new(const char *address, const char *uid, xo_actor_t *a)
{
    xo_ref_t *r = malloc(sizeof *r);
    if (!r) return NULL;
    r->address = strdup(address);
    r->uid = strdup(uid);
    if (!r->address || !r->uid) {
        free(r->address);
        free(r->uid);
        free(r);
        return NULL;
    }
    r->actor = a;
    if (a) xo__actor_retain(a);
    return r;
}

const char *xo_ref_address(const xo_ref_t *ref) { return ref->address; }
const char *xo_ref_uid(const xo_ref_t *ref) { return ref->uid; }

xo_ref_t *xo__ref_unchecked(const char *address, const char *uid) { return ref_new(address, uid, NULL); }

xo_ref_t *xo_ref_dup(const xo_ref_t *ref) { return ref ? ref_new(ref->address, ref->uid, ref->actor) : NULL; }

void xo_ref_free(xo_ref_t *ref)
{
    if (!ref) return;
    if (ref->actor) xo__actor_release(ref->actor);
    free(ref->address);
    free(ref->uid);
    free(ref);
}

xo_ref_t *xo_ctx_self(const xo_ctx_t *ctx) { return ref_new(ctx->actor->pool->address, ctx->actor->uid, ctx->actor); }

static xo_pool_t *pool_at(const char *address)
{
    return address ? xo__pool_find(address) : xo__pool_default();
}

static xo_status_t no_pool(const char *address)
{
    return xo__error_set(XO_EUNREACHABLE, "no pool at \"%s\" in this process, and it is not a process pool address "
                                         "(host:port or host:port/N)", address ? address : "(default)");
}

/* The live actor behind ref. *held says whether the caller must drop a ref with xo__actor_release: not when the
 * ref's own cached actor is used (the ref keeps it alive for the call, and a send then touches no refcount). */
static xo_status_t resolve(const xo_ref_t *ref, xo_actor_t **a_p, bool *held)
{
    if (!ref) return xo__error_set(XO_EINVAL, "NULL ref");
    xo_actor_t *a = ref->actor;
    if (a && atomic_load_explicit(&a->life, memory_order_acquire) != XO_LIFE_DEAD) {
        *a_p = a;
        *held = false;
        return XO_OK;
    }
    xo_pool_t *pool = xo__pool_find(ref->address);
    if (!pool) return no_pool(ref->address);
    a = xo__pool_table_lookup(pool, ref->uid);
    if (!a) {
        char text[XO_ERROR_TEXT_MAX];
        xo_status_t st = xo__pool_missing_actor(pool, ref->uid, text, sizeof text);
        return xo__error_set(st, "%s", text);
    }
    *a_p = a;
    *held = true;
    return XO_OK;
}

static void unhold(xo_actor_t *a, bool held)
{
    if (held) xo__actor_release(a);
}

/* ---- lifecycle ----------------------------------------------------------------------------------------------- */

static void make_uid(xo_pool_t *pool, const xo_actor_class_t *cls, char *buf, size_t len)
{
    /* class name + a per-pool counter mixed with a random seed: readable, and unique across pools in practice */
    uint64_t x = atomic_fetch_add(&pool->uid_counter, 1) + pool->uid_seed;
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    snprintf(buf, len, "%s-%016llx", cls->name, (unsigned long long)x);
}

static xo_msg_t *msg_new(xo_msg_kind_t kind, xo_future_t **reply_p)
{
    xo_msg_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = (uint8_t)kind;
    m->chain = xo__chain_current();
    if (reply_p) {
        xo_future_t *f = xo__future_new();
        if (!f) {
            free(m);
            return NULL;
        }
        xo__future_ref(f); /* one for the message, one for the caller */
        m->reply = f;
        *reply_p = f;
    }
    return m;
}

/* ---- pools in other processes ----------------------------------------------------------------------------- */

/* A ref that no pool of this process serves, with the address of a process pool: calls go through remote_client.c. */
static bool is_remote(const xo_ref_t *ref)
{
    return ref && !ref->actor && !xo__pool_find(ref->address) && xo__remote_address_ok(ref->address);
}

/* Waits for a remote reply that carries a string (a uid or an address) into buf. */
static xo_status_t wait_string(xo_future_t *f, char *buf, size_t len)
{
    xo_result_t *r = NULL;
    xo_status_t st = xo_future_wait(f, XO_FOREVER, &r);
    xo__future_unref(f);
    if (st != XO_OK) return st;
    xo_str_t s;
    if (xo_result_unpack(r, "s", &s) != XO_OK || s.len >= len) {
        xo_result_free(r);
        return xo__error_set(XO_EPROTO, "the remote pool answered without the expected string");
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    xo_result_free(r);
    return XO_OK;
}

xo_status_t xo__create_remote(const char *address, const char *class_name, xo_args_t *args, const char *uid,
                             xo_ref_t **ref_p)
{
    xo_status_t st = xo__args_refuse(args);
    if (st != XO_OK) return st;
    xo_future_t *f = NULL;
    st = xo__remote_send(address, XO_WIRE_CREATE, xo__chain_current(), uid, class_name, args, true, &f);
    if (st != XO_OK) return st;
    char created[512];
    st = wait_string(f, created, sizeof created);
    if (st != XO_OK) return st;
    xo_ref_t *ref = ref_new(address, created, NULL);
    if (!ref) return xo__error_set(XO_ENOMEM, "out of memory for a ref");
    if (ref_p) *ref_p = ref;
    else xo_ref_free(ref);
    return XO_OK;
}

/* Sends a request that answers with a status only (destroy) or a bool (has). */
static xo_status_t remote_simple(const xo_ref_t *ref, int type, xo_result_t **r_p)
{
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(ref->address, type, xo__chain_current(), ref->uid, NULL, NULL, true, &f);
    if (st != XO_OK) return st;
    st = xo_future_wait(f, XO_FOREVER, r_p);
    xo__future_unref(f);
    return st;
}

xo_status_t xo__create_start(xo_pool_t *pool, const xo_actor_class_t *cls, xo_args_t *args, const char *uid,
                            xo_future_t *f)
{
    char gen[160];
    if (!uid || !uid[0]) {
        make_uid(pool, cls, gen, sizeof gen);
        uid = gen;
    }
    xo_actor_t *a = xo__actor_new(pool, cls, uid);
    xo_args_t *uid_value = a ? xo_args("s", uid) : NULL;
    if (!uid_value || uid_value->error) {
        xo_args_free(uid_value);
        if (a) xo__actor_release(a);
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory creating actor \"%s\"", uid);
    }
    if (!cls->init && !cls->after_create && !pool->main_address) {
        /* Nothing to run: the actor is alive as soon as it is in the table, no round trip through a scheduler. (A
         * sub pool's creates go through an activation: it reports the actor to its main pool and waits.) */
        xo_args_free(args);
        a->init_ok = true;
        atomic_store_explicit(&a->life, XO_LIFE_ALIVE, memory_order_release);
        xo_status_t st = xo__pool_table_insert(pool, a);
        xo__actor_release(a);
        if (st != XO_OK) {
            xo_args_free(uid_value);
            return st;
        }
        xo_promise_resolve(f, uid_value);
        return XO_OK;
    }
    xo_msg_t *m = calloc(1, sizeof *m);
    if (!m) {
        xo_args_free(uid_value);
        xo__actor_release(a);
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory creating actor \"%s\"", uid);
    }
    m->kind = XO_MSG_CREATE;
    m->chain = xo__chain_current();
    m->args = args;
    m->reply = f;
    xo__future_ref(f);
    /* The create message goes first in the mailbox before anyone can find the actor, so whatever others send
     * once it is in the table runs after init and after_create. */
    atomic_store_explicit(&a->posted, 1, memory_order_relaxed); /* posted by hand: counted as xo__actor_post does */
    xo_mpsc_push(&a->mailbox, &m->run.node);
    xo_status_t st = xo__pool_table_insert(pool, a);
    if (st != XO_OK) {
        xo_msg_t *back = (xo_msg_t *)xo_mpsc_pop(&a->mailbox);
        xo__msg_free(back); /* drops the message's ref on f */
        xo_args_free(uid_value);
        xo__actor_release(a);
        return st;
    }
    xo_args_free(uid_value); /* run_create answers with the uid itself */
    if (atomic_exchange(&a->scheduled, 1) == 0) {
        xo__actor_retain(a);
        xo__sched_post(pool, &a->run, -1);
    }
    xo__actor_release(a);
    return XO_OK;
}

xo_status_t xo_create_actor(const xo_actor_class_t *cls, xo_args_t *args, const char *address, const char *uid,
                            xo_ref_t **ref_p)
{
    xo_status_t st = xo__args_refuse(args);
    if (st != XO_OK) return st;
    st = xo_register_class(cls);
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    xo_pool_t *pool = pool_at(address);
    if (!pool) {
        if (address && xo__remote_address_ok(address)) return xo__create_remote(address, cls->name, args, uid, ref_p);
        xo_args_free(args);
        return no_pool(address);
    }
    xo_future_t *f = xo__future_new();
    if (!f) {
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    st = xo__create_start(pool, cls, args, uid, f);
    if (st != XO_OK) {
        xo__future_unref(f);
        return st;
    }
    xo_result_t *r = NULL;
    st = xo_future_wait(f, XO_FOREVER, &r);
    xo__future_unref(f);
    if (st != XO_OK) return st;
    xo_str_t created;
    char uidbuf[256];
    if (xo_result_unpack(r, "s", &created) != XO_OK || created.len >= sizeof uidbuf) {
        xo_result_free(r);
        return xo__error_set(XO_EPROTO, "create answered without a uid");
    }
    memcpy(uidbuf, created.ptr, created.len);
    uidbuf[created.len] = '\0';
    xo_result_free(r);
    xo_actor_t *a = xo__pool_table_lookup(pool, uidbuf); /* to cache it in the ref; NULL if already destroyed */
    xo_ref_t *ref = ref_new(pool->address, uidbuf, a);
    if (a) xo__actor_release(a);
    if (!ref) return xo__error_set(XO_ENOMEM, "out of memory for a ref");
    if (ref_p) *ref_p = ref;
    else xo_ref_free(ref);
    return XO_OK;
}

xo_status_t xo_actor_ref(const char *address, const char *uid, xo_ref_t **ref_p)
{
    if (!uid || !ref_p) return xo__error_set(XO_EINVAL, "uid and ref_p are required");
    xo_pool_t *pool = pool_at(address);
    if (!pool && address && xo__remote_address_ok(address)) {
        /* The pool answers with the address that holds the actor (a main pool may point into a sub pool). */
        xo_future_t *f = NULL;
        xo_status_t st = xo__remote_send(address, XO_WIRE_LOOKUP, 0, uid, NULL, NULL, true, &f);
        char where[256];
        if (st == XO_OK) st = wait_string(f, where, sizeof where);
        if (st != XO_OK) return st;
        xo_ref_t *ref = ref_new(where, uid, NULL);
        if (!ref) return xo__error_set(XO_ENOMEM, "out of memory for a ref");
        *ref_p = ref;
        return XO_OK;
    }
    if (!pool) return no_pool(address);
    xo_actor_t *a = xo__pool_table_lookup(pool, uid);
    char elsewhere[256];
    if (!a && pool->locate && pool->locate(pool->locate_arg, uid, elsewhere, sizeof elsewhere))
        return xo_actor_ref(elsewhere, uid, ref_p); /* in one of this main pool's sub pools */
    if (!a) {
        char text[XO_ERROR_TEXT_MAX];
        xo_status_t st = xo__pool_missing_actor(pool, uid, text, sizeof text);
        return xo__error_set(st, "%s", text);
    }
    xo_ref_t *ref = ref_new(pool->address, uid, a);
    xo__actor_release(a);
    if (!ref) return xo__error_set(XO_ENOMEM, "out of memory for a ref");
    *ref_p = ref;
    return XO_OK;
}

bool xo_has_actor(const xo_ref_t *ref)
{
    if (is_remote(ref)) {
        xo_result_t *r = NULL;
        bool alive = false;
        if (remote_simple(ref, XO_WIRE_HAS, &r) == XO_OK) xo_result_unpack(r, "t", &alive);
        xo_result_free(r);
        return alive;
    }
    xo_actor_t *a;
    bool held;
    if (resolve(ref, &a, &held) != XO_OK) return false;
    bool alive = atomic_load(&a->life) != XO_LIFE_DEAD;
    unhold(a, held);
    return alive;
}

xo_status_t xo_destroy_actor(const xo_ref_t *ref) { return xo_destroy_actor_timeout(ref, XO_FOREVER); }

/* A destroy that outlives timeout_ms is cancelled as a timed-out call is, so its before_destroy's waits end at
 * once; run_destroy then destroys the actor anyway, as after a failing hook. */
xo_status_t xo_destroy_actor_timeout(const xo_ref_t *ref, int64_t timeout_ms)
{
    if (!ref) return xo__error_set(XO_EINVAL, "NULL ref");
    xo_future_t *f = NULL; /* ours: one ref */
    xo_status_t st;
    if (is_remote(ref)) {
        st = xo__remote_send(ref->address, XO_WIRE_DESTROY, xo__chain_current(), ref->uid, NULL, NULL, true, &f);
        if (st != XO_OK) return st;
    } else {
        xo_actor_t *a;
        bool held;
        st = resolve(ref, &a, &held);
        if (st != XO_OK) return st;
        xo_msg_t *m = msg_new(XO_MSG_DESTROY, &f);
        if (!m) {
            unhold(a, held);
            return xo__error_set(XO_ENOMEM, "out of memory");
        }
        xo__actor_post(a, m);
        unhold(a, held);
    }
    st = xo_future_wait(f, timeout_ms, NULL);
    if (st == XO_ETIMEDOUT) {
        xo__future_request_cancel(f);
        st = xo__error_set(XO_ETIMEDOUT, "destroy of actor \"%s\" at %s not done within %lld ms (before_destroy "
                           "still running, or messages queued before it): cancelled, the actor is destroyed when its "
                           "before_destroy returns", ref->uid, ref->address, (long long)timeout_ms);
    }
    xo__future_unref(f);
    return st;
}

/* ---- calls --------------------------------------------------------------------------------------------------- */

static xo_status_t find_method(xo_actor_t *a, const char *method, int *index_p)
{
    if (!method) return xo__error_set(XO_EINVAL, "NULL method name");
    int i = xo__class_method_index(a->cls, method);
    if (i < 0)
        return xo__error_set(XO_ENOMETHOD, "actor \"%s\" (class %s) has no method \"%s\"", a->uid, a->cls->name,
                            method);
    *index_p = i;
    return XO_OK;
}

/* Builds and posts a call. args is consumed. With future_p, the caller gets a future holding one ref. */
static xo_status_t post_call(const xo_ref_t *ref, const char *method, xo_args_t *args, xo_future_t **future_p)
{
    /* Lent binaries stay lent for another process (xo__remote_send copies them out before it returns); a call in
     * this process may run after we return, so it gets them copied in. */
    xo_status_t refused = xo__args_refuse_keep_lent(args);
    if (refused != XO_OK) return refused;
    bool remote = is_remote(ref); /* once: it looks the address up among this process's pools */
    if (!remote && (refused = xo__args_settle(args)) != XO_OK) return refused;
    if (remote) {
        if (!method) {
            xo_args_free(args);
            return xo__error_set(XO_EINVAL, "NULL method name");
        }
        return xo__remote_send(ref->address, XO_WIRE_CALL, xo__chain_current(), ref->uid, method, args,
                              future_p != NULL, future_p);
    }
    xo_actor_t *a;
    bool held = false;
    xo_status_t st = resolve(ref, &a, &held);
    int index = 0;
    if (st == XO_OK) {
        st = find_method(a, method, &index);
        if (st != XO_OK) unhold(a, held);
    }
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    xo_msg_t *m = msg_new(XO_MSG_CALL, future_p);
    if (!m) {
        unhold(a, held);
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory for a message");
    }
    m->method = (uint32_t)index;
    m->args = args;
    xo__actor_post(a, m);
    unhold(a, held);
    return XO_OK;
}

xo_status_t xo_send(const xo_ref_t *ref, const char *method, xo_args_t *args, xo_future_t **future_p)
{
    if (!future_p) {
        xo_args_free(args);
        return xo__error_set(XO_EINVAL, "xo_send needs future_p (use xo_tell for no reply)");
    }
    return post_call(ref, method, args, future_p);
}

xo_status_t xo_tell(const xo_ref_t *ref, const char *method, xo_args_t *args)
{
    return post_call(ref, method, args, NULL);
}

xo_status_t xo_call(const xo_ref_t *ref, const char *method, xo_args_t *args, int64_t timeout_ms,
                    xo_result_t **result_p)
{
    xo_future_t *f;
    xo_status_t st = post_call(ref, method, args, &f);
    if (st != XO_OK) return st;
    st = xo_future_wait(f, timeout_ms, result_p);
    if (st == XO_ETIMEDOUT) xo__future_request_cancel(f);
    xo__future_unref(f);
    return st;
}

/* ---- delayed tells and sleeping ------------------------------------------------------------------------------ */

typedef struct {
    xo_timer_t timer;
    xo_ref_t *ref;
    char *method;
    xo_args_t *args;
} delayed_tell_t;

static void delayed_tell_free(delayed_tell_t *d)
{
    xo_ref_free(d->ref);
    free(d->method);
    xo_args_free(d->args);
    free(d);
}

static void delayed_tell_fire(xo_timer_t *t)
{
    delayed_tell_t *d = (delayed_tell_t *)t;
    xo_args_t *args = d->args;
    d->args = NULL;
    /* Runs on the timer thread: xo_tell only posts (no waiting, no timers), so it is safe under the timer lock. */
    xo_status_t st = xo_tell(d->ref, d->method, args);
    if (st != XO_OK) xo_log_debug("delayed tell %s.%s dropped: %s", d->ref->uid, d->method, xo_last_error());
    delayed_tell_free(d);
}

static void delayed_tell_drop(xo_timer_t *t) { delayed_tell_free((delayed_tell_t *)t); }

xo_status_t xo_tell_delay(const xo_ref_t *ref, const char *method, xo_args_t *args, int64_t delay_ms)
{
    xo_status_t refused = xo__args_refuse(args);
    if (refused != XO_OK) return refused;
    if (!ref || !method) {
        xo_args_free(args);
        return xo__error_set(XO_EINVAL, "ref and method are required");
    }
    if (delay_ms <= 0) return xo_tell(ref, method, args);
    xo_pool_t *pool = xo__pool_find(ref->address);
    xo_timers_t *timers = pool ? pool->timers : is_remote(ref) ? xo__remote_timers() : NULL;
    if (!timers) {
        xo_args_free(args);
        return no_pool(ref->address);
    }
    delayed_tell_t *d = calloc(1, sizeof *d);
    if (d) {
        d->ref = xo_ref_dup(ref);
        d->method = strdup(method);
    }
    if (!d || !d->ref || !d->method) {
        if (d) delayed_tell_free(d);
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    d->args = args;
    d->timer.heap_index = SIZE_MAX;
    d->timer.fire = delayed_tell_fire;
    d->timer.drop = delayed_tell_drop;
    xo__timers_add(timers, &d->timer, xo__now_ns() + (uint64_t)delay_ms * 1000000ull);
    return XO_OK;
}

xo_status_t xo_sleep_ms(int64_t ms)
{
    if (ms < 0) ms = 0;
    if (!xo__worker_current()) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return XO_OK;
    }
    /* A method sleeps by waiting, with a timeout, on a future nobody completes. */
    xo_future_t *never = xo__future_new();
    if (!never) return xo__error_set(XO_ENOMEM, "out of memory");
    xo_status_t st = xo__future_await(never, ms);
    xo__future_unref(never);
    if (st == XO_ETIMEDOUT) {
        xo__error_clear();
        return XO_OK;
    }
    return st;
}

/* ---- batches ------------------------------------------------------------------------------------------------- */

xo_delayed_t *xo_delay(const char *method, xo_args_t *args)
{
    xo_delayed_t *d = malloc(sizeof *d);
    if (d) d->method = method ? strdup(method) : NULL;
    if (!d || (method && !d->method)) {
        free(d);
        xo_args_free(args);
        return NULL;
    }
    d->args = args;
    return d;
}

void xo_delayed_free(xo_delayed_t *d)
{
    if (!d) return;
    free(d->method);
    xo_args_free(d->args);
    free(d);
}

static void free_calls(xo_delayed_t **calls, size_t n)
{
    for (size_t i = 0; i < n; i++) xo_delayed_free(calls[i]);
}

xo_status_t xo_batch_send(const xo_ref_t *ref, xo_delayed_t **calls, size_t n, xo_future_t **future_p)
{
    if (n == 0 || !calls || !future_p) {
        if (calls) free_calls(calls, n);
        return xo__error_set(XO_EINVAL, "a batch needs calls (n > 0) and a future pointer");
    }
    for (size_t i = 0; i < n; i++) {
        if (!calls[i] || !calls[i]->method) {
            free_calls(calls, n);
            return xo__error_set(XO_EINVAL, "batch call %zu is NULL or has no method", i);
        }
        if (calls[i]->args && calls[i]->args->error) { /* its xo_args() failed (xo_delay keeps them to say so here) */
            xo_status_t st = xo__error_set(XO_EINVAL, "batch call %zu: %s", i, calls[i]->args->error);
            free_calls(calls, n);
            return st;
        }
        if (strcmp(calls[i]->method, calls[0]->method) != 0) {
            xo_status_t st = xo__error_set(XO_EBATCH, "a batch must call one method: call 0 is \"%s\", call %zu is \"%s\"",
                                          calls[0]->method, i, calls[i]->method);
            free_calls(calls, n);
            return st;
        }
    }
    xo_actor_t *a;
    bool held = false;
    xo_status_t st;
    xo_future_t *f = NULL;
    if (is_remote(ref)) {
        xo_args_t **args = calloc(n, sizeof *args);
        if (!args) {
            free_calls(calls, n);
            return xo__error_set(XO_ENOMEM, "out of memory for a batch");
        }
        for (size_t i = 0; i < n; i++) {
            args[i] = calls[i]->args;
            calls[i]->args = NULL;
        }
        st = xo__remote_send_batch(ref->address, xo__chain_current(), ref->uid, calls[0]->method, n, args, &f);
        free(args);
        free_calls(calls, n);
        if (st != XO_OK) return st;
        *future_p = f;
        return XO_OK;
    }
    st = resolve(ref, &a, &held);
    int index = 0;
    if (st == XO_OK) {
        st = find_method(a, calls[0]->method, &index);
        if (st == XO_OK && !(a->cls->methods[index].flags & XO_METHOD_EXTENSIBLE))
            st = xo__error_set(XO_EBATCH, "method \"%s\" of class %s is not extensible (it cannot be batched)",
                              calls[0]->method, a->cls->name);
        if (st != XO_OK) unhold(a, held);
    }
    if (st != XO_OK) {
        free_calls(calls, n);
        return st;
    }
    xo_msg_t *m = msg_new(XO_MSG_BATCH, &f);
    xo_args_t **batch_args = m ? calloc(n, sizeof *batch_args) : NULL;
    if (!batch_args) {
        if (m) xo__msg_free(m);
        xo__future_unref(f);
        unhold(a, held);
        free_calls(calls, n);
        return xo__error_set(XO_ENOMEM, "out of memory for a batch");
    }
    for (size_t i = 0; i < n; i++) {
        batch_args[i] = calls[i]->args;
        calls[i]->args = NULL;
    }
    free_calls(calls, n);
    m->method = (uint32_t)index;
    m->n_calls = n;
    m->batch_args = batch_args;
    xo__actor_post(a, m);
    unhold(a, held);
    *future_p = f;
    return XO_OK;
}

xo_status_t xo_future_batch_results(xo_future_t *f, int64_t timeout_ms, size_t n, xo_status_t *statuses,
                                    xo_result_t **results, char **errors)
{
    if (!f || !statuses || !results) return xo__error_set(XO_EINVAL, "future, statuses and results are required");
    xo_status_t st = xo__future_await(f, timeout_ms);
    if (st != XO_OK) return st;
    if (f->status != XO_OK)
        return f->error ? xo__error_set(f->status, "%s", f->error) : xo__error_set(f->status, "%s", xo_strerror(f->status));
    if (f->n_items != n || !f->item_status)
        return xo__error_set(XO_EINVAL, "not a batch of %zu calls (it has %zu)", n, f->n_items);
    if (f->taken) return xo__error_set(XO_EINVAL, "the batch's results were already taken");
    f->taken = true;
    for (size_t i = 0; i < n; i++) {
        statuses[i] = f->item_status[i];
        results[i] = f->item_results[i];
        f->item_results[i] = NULL;
        if (errors) {
            errors[i] = f->item_errors[i];
            f->item_errors[i] = NULL;
        }
    }
    return XO_OK;
}

xo_status_t xo_batch(const xo_ref_t *ref, xo_delayed_t **calls, size_t n, int64_t timeout_ms, xo_status_t *statuses,
                     xo_result_t **results, char **errors)
{
    if (n == 0) return XO_OK;
    if (!calls || !statuses || !results) {
        if (calls) free_calls(calls, n);
        return xo__error_set(XO_EINVAL, "calls, statuses and results are required");
    }
    xo_future_t *f = NULL;
    xo_status_t st = xo_batch_send(ref, calls, n, &f);
    if (st != XO_OK) return st;
    st = xo_future_batch_results(f, timeout_ms, n, statuses, results, errors);
    if (st == XO_ETIMEDOUT) xo__future_request_cancel(f);
    xo__future_unref(f);
    return st;
}
