/* What a worker runs: one message (call, batch, create or destroy) on one actor, then the reply. Runs on the
 * worker's fiber, so everything here may suspend (a method waiting on another actor). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "base/log.h"

#define XO_RESULT_LEND_MIN (64u * 1024u) /* XO_WIRE_SEG_MIN: below it the bytes are copied into the header anyway */

struct xo_batch_out {
    size_t n;
    xo_buf_t *bufs;
    msgpack_packer *pks;
    xo_status_t *status;
    char **errors;
};

static char *error_text(xo_worker_t *w, xo_status_t st)
{
    return strdup(w->error[0] ? w->error : xo_strerror(st));
}

static xo_status_t decode_args(xo_worker_t *w, const xo_args_t *args, msgpack_object *obj)
{
    xo_status_t st = xo__args_decode(args, &w->zone, obj);
    if (st != XO_OK) return st;
    if (obj->type != MSGPACK_OBJECT_ARRAY)
        return xo__error_set(XO_EPROTO, "arguments must be a msgpack array, got type %d", (int)obj->type);
    return XO_OK;
}

static const xo_method_t *method_of(const xo_actor_t *a, const xo_msg_t *m) { return &a->cls->methods[m->method]; }

/* ---- calls --------------------------------------------------------------------------------------------------- */

static xo_status_t run_single_as_batch(xo_worker_t *w, const xo_method_t *mt, const msgpack_object *args);

static xo_status_t run_call(xo_worker_t *w, xo_actor_t *a, xo_msg_t *m)
{
    msgpack_object args;
    xo_status_t st = decode_args(w, m->args, &args);
    if (st != XO_OK) return st;
    const xo_method_t *mt = method_of(a, m);
    if (mt->fn) return mt->fn(w, a->state, &args, &w->out_pk);
    return run_single_as_batch(w, mt, &args);
}

/* ---- batches ------------------------------------------------------------------------------------------------- */

msgpack_packer *xo_batch_result(xo_batch_out_t *out, size_t i) { return i < out->n ? &out->pks[i] : NULL; }

void xo_batch_error(xo_batch_out_t *out, size_t i, xo_status_t st, const char *fmt, ...)
{
    if (i >= out->n) return;
    out->status[i] = st == XO_OK ? XO_EMETHOD : st;
    va_list ap;
    va_start(ap, fmt);
    char *text = xo__error_text_vdup(fmt, ap); /* before the free: an argument may be the previous text */
    va_end(ap);
    free(out->errors[i]);
    out->errors[i] = text;
}

static bool batch_out_init(xo_batch_out_t *out, size_t n)
{
    out->n = n;
    out->bufs = calloc(n ? n : 1, sizeof *out->bufs);
    out->pks = calloc(n ? n : 1, sizeof *out->pks);
    out->status = calloc(n ? n : 1, sizeof *out->status);
    out->errors = calloc(n ? n : 1, sizeof *out->errors);
    if (!out->bufs || !out->pks || !out->status || !out->errors) return false;
    for (size_t i = 0; i < n; i++) msgpack_packer_init(&out->pks[i], &out->bufs[i], xo__buf_write);
    return true;
}

static void batch_out_free(xo_batch_out_t *out)
{
    for (size_t i = 0; i < out->n; i++) {
        if (out->bufs) xo__buf_free(&out->bufs[i]);
        if (out->errors) free(out->errors[i]);
    }
    free(out->bufs);
    free(out->pks);
    free(out->status);
    free(out->errors);
}

/* Runs the batch handler over args[0..n); fills out. The handler's own failure fails every call. */
static xo_status_t call_batch_handler(xo_worker_t *w, const xo_method_t *mt, size_t n,
                                      const msgpack_object *const *args, xo_batch_out_t *out)
{
    xo_status_t st = mt->batch(w, w->actor->state, n, args, out);
    if (st != XO_OK) {
        for (size_t i = 0; i < n; i++) xo_batch_error(out, i, st, "%s", w->error[0] ? w->error : xo_strerror(st));
    }
    return st;
}

static xo_status_t run_single_as_batch(xo_worker_t *w, const xo_method_t *mt, const msgpack_object *args)
{
    xo_batch_out_t out;
    if (!batch_out_init(&out, 1)) {
        batch_out_free(&out);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    const msgpack_object *one[1] = {args};
    call_batch_handler(w, mt, 1, one, &out);
    xo_status_t st = out.status[0];
    if (st == XO_OK) {
        if (out.bufs[0].size) xo__buf_write(&w->out, out.bufs[0].data, out.bufs[0].size);
    } else {
        xo__error_set(st, "%s", out.errors[0] ? out.errors[0] : xo_strerror(st));
    }
    batch_out_free(&out);
    return st;
}

static void run_batch(xo_worker_t *w, xo_actor_t *a, xo_msg_t *m)
{
    size_t n = m->n_calls;
    const xo_method_t *mt = method_of(a, m);
    xo_batch_out_t out;
    msgpack_object *objs = msgpack_zone_malloc(&w->zone, (n ? n : 1) * sizeof *objs);
    const msgpack_object **ptrs = msgpack_zone_malloc(&w->zone, (n ? n : 1) * sizeof *ptrs);
    if (!batch_out_init(&out, n) || !objs || !ptrs) {
        batch_out_free(&out);
        if (m->reply) xo__future_complete(m->reply, XO_ENOMEM, strdup("out of memory for a batch"), NULL);
        return;
    }
    size_t n_ok = 0;
    for (size_t i = 0; i < n; i++) {
        xo_status_t st = decode_args(w, m->batch_args[i], &objs[i]);
        if (st != XO_OK) xo_batch_error(&out, i, st, "%s", w->error);
        ptrs[i] = &objs[i];
        n_ok += st == XO_OK;
    }
    if (mt->batch && n_ok == n) {
        call_batch_handler(w, mt, n, ptrs, &out);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (out.status[i] != XO_OK) continue;
            w->error[0] = '\0';
            xo_status_t st = mt->fn ? mt->fn(w, a->state, ptrs[i], &out.pks[i])
                                    : run_single_as_batch(w, mt, ptrs[i]);
            if (st != XO_OK) xo_batch_error(&out, i, st, "%s", w->error[0] ? w->error : xo_strerror(st));
            else if (!mt->fn && w->out.size) {
                xo__buf_write(&out.bufs[i], w->out.data, w->out.size);
                xo__buf_reset(&w->out);
            }
        }
    }
    if (!m->reply) {
        batch_out_free(&out);
        return;
    }
    xo_result_t **results = calloc(n ? n : 1, sizeof *results);
    if (!results) {
        batch_out_free(&out);
        xo__future_complete(m->reply, XO_ENOMEM, strdup("out of memory for batch results"), NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (out.status[i] != XO_OK) continue;
        results[i] = xo__result_from_bytes(out.bufs[i].data, out.bufs[i].size);
        if (!results[i]) {
            out.status[i] = XO_ENOMEM;
            out.errors[i] = strdup("out of memory for a result");
        }
    }
    /* the arrays move into the future */
    xo_status_t *status = out.status;
    char **errors = out.errors;
    out.status = NULL;
    out.errors = NULL;
    for (size_t i = 0; i < n; i++) xo__buf_free(&out.bufs[i]);
    free(out.bufs);
    free(out.pks);
    xo__future_complete_batch(m->reply, n, status, results, errors);
}

/* ---- lifecycle ----------------------------------------------------------------------------------------------- */

static xo_status_t hook_failed(xo_worker_t *w, xo_actor_t *a, const char *hook, xo_status_t st)
{
    char text[XO_ERROR_TEXT_MAX];
    snprintf(text, sizeof text, "%s", w->error[0] ? w->error : xo_strerror(st));
    return xo__error_set(XO_EHOOK, "%s.%s of actor \"%s\" failed (%s): %s", a->cls->name, hook, a->uid,
                        xo_status_name(st), text);
}

static xo_status_t run_create(xo_worker_t *w, xo_actor_t *a, xo_msg_t *m)
{
    xo_status_t st = XO_OK;
    if (a->cls->init) {
        msgpack_object args;
        st = decode_args(w, m->args, &args);
        if (st == XO_OK) st = a->cls->init(w, a->state, &args);
        if (st != XO_OK) {
            atomic_flag_test_and_set(&a->fini_done); /* init failed: it cleaned up after itself, no fini */
            st = hook_failed(w, a, "init", st);
            goto fail;
        }
    }
    a->init_ok = true;
    if (a->cls->after_create) {
        st = a->cls->after_create(w, a->state);
        if (st != XO_OK) {
            st = hook_failed(w, a, "after_create", st);
            goto fail;
        }
    }
    atomic_store_explicit(&a->life, XO_LIFE_ALIVE, memory_order_release);
    xo__pool_report_actor(a->pool, a->uid, true);
    return xo_pack(&w->out_pk, "s", a->uid); /* the creator learns the uid (it may have been generated) */
fail:
    atomic_store_explicit(&a->life, XO_LIFE_DEAD, memory_order_release);
    xo__pool_table_remove(a->pool, a);
    return st; /* fini, if due, runs when this activation ends */
}

static xo_status_t run_destroy(xo_worker_t *w, xo_actor_t *a)
{
    if (atomic_load(&a->life) == XO_LIFE_DEAD) return xo__error_set(XO_ENOACTOR, "actor \"%s\" was destroyed", a->uid);
    xo_status_t st = XO_OK;
    if (a->cls->before_destroy) {
        st = a->cls->before_destroy(w, a->state);
        if (st != XO_OK) st = hook_failed(w, a, "before_destroy", st);
    }
    atomic_store_explicit(&a->life, XO_LIFE_DEAD, memory_order_release);
    xo__pool_table_remove(a->pool, a);
    xo__pool_report_actor(a->pool, a->uid, false);
    /* With no other activation (the common case), fini runs before the reply, so a caller of xo_destroy_actor
     * finds the actor's resources released when it returns. Otherwise the last activation to end runs it. */
    if (atomic_load(&a->activations) == 1) xo__actor_try_fini(a);
    return st;
}

/* ---- slow calls ---------------------------------------------------------------------------------------------- */

/* XO_SLOW_CALL_MS=N logs every message that takes longer than N ms from start to reply (waits included), with its
 * actor and method: the debugging aid for "who is holding this actor". Read once; 0 or unset: off, no clock read. */
static _Atomic int64_t cached = -1;

void xo_set_slow_call_ms(double ms) { atomic_store(&cached, ms > 0 ? (int64_t)(ms * 1e6) : 0); }

static int64_t slow_call_ns(void)
{
    int64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *env = getenv("XO_SLOW_CALL_MS");
        v = env ? (int64_t)(atof(env) * 1e6) : 0;
        if (v < 0) v = 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

static const char *message_name(const xo_actor_t *a, const xo_msg_t *m)
{
    switch (m->kind) {
    case XO_MSG_CALL:
    case XO_MSG_BATCH: return a->cls->methods[m->method].name;
    case XO_MSG_CREATE: return "(create)";
    case XO_MSG_DESTROY: return "(destroy)";
    default: return "?";
    }
}

/* ---- the body ------------------------------------------------------------------------------------------------ */

void xo__activation_body(xo_worker_t *w)
{
    xo_actor_t *a = w->actor;
    xo_msg_t *m = w->msg;
    xo_future_t *reply = m->reply;
    bool ended = false;
    int64_t slow_ns = 0;
    uint64_t started = 0;
    xo__actor_retain(a); /* a suspended activation keeps its actor alive, whoever else lets go */
    atomic_fetch_add(&a->activations, 1);
    msgpack_zone_clear(&w->zone);
    xo__buf_reset(&w->out);

    if (reply && atomic_load(&reply->cancel_requested)) {
        /* A destroy is never undone (xo_destroy_actor_timeout): cancelled before it ran, it still runs, with
         * before_destroy seeing the cancel (its waits end at once). */
        if (m->kind == XO_MSG_DESTROY) {
            atomic_store(&w->cancelled, true);
        } else {
            xo__future_complete(reply, XO_ECANCELED, strdup("call cancelled before it ran"), NULL);
            goto done;
        }
    }
    if (atomic_load(&a->life) == XO_LIFE_DEAD && m->kind != XO_MSG_DESTROY) {
        if (reply) {
            char *text = malloc(XO_ERROR_TEXT_MAX);
            if (text) snprintf(text, XO_ERROR_TEXT_MAX, "actor \"%s\" was destroyed", a->uid);
            xo__future_complete(reply, XO_ENOACTOR, text, NULL);
        }
        goto done;
    }
    if (reply) xo__future_set_runner(reply, w);

    slow_ns = slow_call_ns();
    started = slow_ns ? xo__now_ns() : 0;
    xo_status_t st = XO_OK;
    switch (m->kind) {
    case XO_MSG_CALL:
        /* A reply for another process is sent before this activation ends, so 'B' in the result may lend the
         * method's bytes to it (xo_buf_lend_t) instead of copying them twice (into out, then into the frame). */
        w->out.lend = reply && reply->hook_takes_result ? &w->out_lend : NULL;
        w->out_lend.n = 0;
        st = run_call(w, a, m);
        break;
    case XO_MSG_BATCH: run_batch(w, a, m); break;
    case XO_MSG_CREATE: st = run_create(w, a, m); break;
    case XO_MSG_DESTROY: st = run_destroy(w, a); break;
    default: st = xo__error_set(XO_EPROTO, "unknown message kind %d", m->kind); break;
    }
    xo__worker_run_on_return(w); /* what was lent to this method only (device buffers) ends with it */
    if (slow_ns) {
        uint64_t took = xo__now_ns() - started;
        if ((int64_t)took > slow_ns)
            xo_log_warn("slow call: actor \"%s\" (class %s) %s took %.3f ms (threshold %.3f ms, XO_SLOW_CALL_MS)",
                        a->uid, a->cls->name, message_name(a, m), (double)took / 1e6, (double)slow_ns / 1e6);
    }

    if (reply) {
        xo__future_set_runner(reply, NULL);
        if (m->kind != XO_MSG_BATCH) {
            xo_result_t *r = NULL;
            char *text = NULL;
            if (st == XO_OK) {
                /* A large result for another process is sent from the buffer the method packed it into (reused,
                 * so its pages are warm), lent for the completion only: the reply hook sends it and drops it before
                 * xo__future_complete returns (hook_takes_result). Anywhere else it is copied, since the caller
                 * keeps it. */
                if (w->out.lend && w->out_lend.n) r = xo__result_borrow_lent(w->out.data, w->out.size, &w->out_lend);
                else if (reply->hook_takes_result && w->out.size >= XO_RESULT_LEND_MIN)
                    r = xo__result_borrow(w->out.data, w->out.size, NULL, NULL);
                else r = xo__result_from_bytes(w->out.data, w->out.size);
                if (!r) {
                    st = XO_ENOMEM;
                    text = strdup("out of memory for the result");
                }
            } else {
                text = error_text(w, st);
            }
            /* End the activation before answering: a caller that sees the reply of a method that destroyed its own
             * actor must also see fini done. */
            ended = true;
            xo__actor_activation_end(a);
            xo__future_complete(reply, st, text, r);
        }
    } else if (st != XO_OK) {
        /* a tell has nobody to report to: log it once, here */
        xo_log_warn("told call on actor \"%s\" failed: %s: %s", a->uid, xo_status_name(st), w->error);
    }
done:
    w->out.lend = NULL; /* the reply, which read the lent bytes, has been sent */
    w->msg = NULL;
    xo__msg_free(m);
    if (!ended) xo__actor_activation_end(a);
    xo__actor_release(a);
}

/* ---- ctx ----------------------------------------------------------------------------------------------------- */

const char *xo_ctx_uid(const xo_ctx_t *ctx) { return ctx->actor->uid; }
const char *xo_ctx_address(const xo_ctx_t *ctx) { return ctx->actor->pool->address; }
bool xo_ctx_cancelled(const xo_ctx_t *ctx) { return atomic_load(&((xo_ctx_t *)ctx)->cancelled); }
xo_ctx_t *xo_ctx_current(void) { return xo__worker_current(); }

const xo_actor_class_t *xo_ctx_class(const xo_ctx_t *ctx) { return ctx->actor->cls; }

int xo_ctx_method_index(const xo_ctx_t *ctx)
{
    const xo_msg_t *m = ctx ? ctx->msg : NULL;
    if (!m || (m->kind != XO_MSG_CALL && m->kind != XO_MSG_BATCH)) return -1;
    return (int)m->method;
}

/* ctx->error is also what xo_last_error() reads inside a method, so `xo_ctx_error(ctx, st, "wrapped: %s",
 * xo_last_error())` formats a buffer into itself: through a copy. */
xo_status_t xo_ctx_error(xo_ctx_t *ctx, xo_status_t st, const char *fmt, ...)
{
    char text[sizeof ctx->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(ctx->error, text, strlen(text) + 1);
    return st;
}

xo_status_t xo__worker_on_return(void (*fn)(xo_worker_t *w, void *arg), void *arg)
{
    xo_worker_t *w = xo__worker_current();
    if (!w) return XO_OK;
    if (w->n_on_return == w->cap_on_return) {
        size_t ncap = w->cap_on_return ? w->cap_on_return * 2 : 4;
        xo__on_return_t *n = realloc(w->on_return, ncap * sizeof *n);
        if (!n) return xo__error_set(XO_ENOMEM, "out of memory");
        w->on_return = n;
        w->cap_on_return = ncap;
    }
    w->on_return[w->n_on_return++] = (xo__on_return_t){.fn = fn, .arg = arg};
    return XO_OK;
}

void xo__worker_run_on_return(xo_worker_t *w)
{
    /* A callback may register another (a release that lends again): index, not a saved count. */
    for (size_t i = 0; i < w->n_on_return; i++) w->on_return[i].fn(w, w->on_return[i].arg);
    w->n_on_return = 0;
}
