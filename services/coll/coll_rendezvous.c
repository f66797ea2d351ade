/* The rendezvous of a collective group: a stateless actor where members exchange one blob each per phase.
 *
 * Phase 0 is the join (each member's pool address, capabilities and requested backend); later phases carry what a
 * backend must share (NCCL's unique id). A member's "exchange" waits, suspended, until all size members have given
 * theirs for the phase; the last one to arrive answers everyone. Stateless because the waiting exchanges must not
 * hold the actor: a stateful one would run one of them at a time and never complete the phase. Its own lock guards
 * the state instead. The last member to leave destroys it. */
#include <stdlib.h>
#include <string.h>

#include "services/coll/coll.h"
#include "runtime/core.h"

typedef struct rdv {
    pthread_mutex_t lock;
    int size;              /* 0 until the first member arrives */
    int phase;             /* the phase being collected */
    int arrived;
    int left;
    unsigned char **blob;  /* size entries, malloc'd copies; NULL where not arrived */
    size_t *len;
    xo_future_t **waiter;  /* size entries: the promise a waiting member's exchange waits on */
} rdv_t;

static xo_status_t rdv_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    (void)ctx, (void)args;
    rdv_t *s = state;
    pthread_mutex_init(&s->lock, NULL);
    return XO_OK;
}

static void clear_phase(rdv_t *s)
{
    for (int i = 0; i < s->size; i++) {
        free(s->blob[i]);
        s->blob[i] = NULL;
        s->len[i] = 0;
    }
    s->arrived = 0;
}

static void rdv_fini(void *state)
{
    rdv_t *s = state;
    if (s->size) {
        clear_phase(s);
        /* Waiters are answered by their own cancelled calls; a promise still here belongs to a waiter that frees it. */
    }
    free(s->blob);
    free(s->len);
    free(s->waiter);
    pthread_mutex_destroy(&s->lock);
}

/* Packs the phase's answer into pk: an array of size bins by rank. */
static void pack_answer(const rdv_t *s, msgpack_packer *pk)
{
    msgpack_pack_array(pk, (size_t)s->size);
    for (int i = 0; i < s->size; i++) {
        msgpack_pack_bin(pk, s->len[i]);
        msgpack_pack_bin_body(pk, s->blob[i], s->len[i]);
    }
}

/* The answer as a promise's value. The caller owns the returned args (NULL when out of memory). */
static xo_args_t *answer(const rdv_t *s)
{
    xo_args_t *a = xo_args_new(1);
    if (a) pack_answer(s, xo_args_packer(a));
    return a;
}

/* exchange(phase, rank, size, blob) -> [blob of rank 0, ..., blob of rank size-1] once every member has given one. */
static xo_status_t rdv_exchange(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    rdv_t *s = state;
    int phase, rank, size;
    xo_bytes_t blob;
    xo_status_t st = xo_unpack(args, "iiib", &phase, &rank, &size, &blob);
    if (st != XO_OK) return st;
    if (size < 1 || rank < 0 || rank >= size)
        return xo_ctx_error(ctx, XO_EINVAL, "rank %d of a group of size %d", rank, size);
    pthread_mutex_lock(&s->lock);
    if (!s->size) {
        s->blob = calloc((size_t)size, sizeof *s->blob);
        s->len = calloc((size_t)size, sizeof *s->len);
        s->waiter = calloc((size_t)size, sizeof *s->waiter);
        if (!s->blob || !s->len || !s->waiter) {
            free(s->blob), free(s->len), free(s->waiter);
            s->blob = NULL, s->len = NULL, s->waiter = NULL;
            pthread_mutex_unlock(&s->lock);
            return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
        }
        s->size = size;
    }
    if (size != s->size) {
        int have = s->size;
        pthread_mutex_unlock(&s->lock);
        return xo_ctx_error(ctx, XO_EINVAL, "members disagree on the group size: rank %d says %d, others said %d", rank,
                            size, have);
    }
    if (phase != s->phase) {
        int have = s->phase;
        pthread_mutex_unlock(&s->lock);
        return xo_ctx_error(ctx, XO_EINVAL,
                            "rank %d is at step %d of joining while the group is at step %d (is the group name reused "
                            "by another live group?)",
                            rank, phase, have);
    }
    if (s->blob[rank] || s->waiter[rank]) {
        pthread_mutex_unlock(&s->lock);
        return xo_ctx_error(ctx, XO_EINVAL, "rank %d joined twice", rank);
    }
    s->blob[rank] = malloc(blob.len ? blob.len : 1);
    if (!s->blob[rank]) {
        pthread_mutex_unlock(&s->lock);
        return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    }
    memcpy(s->blob[rank], blob.ptr, blob.len);
    s->len[rank] = blob.len;
    if (++s->arrived == s->size) { /* the last member answers everyone, then the next phase starts empty */
        for (int i = 0; i < s->size; i++) {
            if (!s->waiter[i]) continue;
            xo_args_t *a = answer(s);
            if (a) xo_promise_resolve(s->waiter[i], a);
            else xo_promise_reject(s->waiter[i], XO_ENOMEM, "out of memory at the rendezvous");
            s->waiter[i] = NULL; /* the waiter frees its promise */
        }
        pack_answer(s, out);
        clear_phase(s);
        s->phase++;
        pthread_mutex_unlock(&s->lock);
        return XO_OK;
    }
    xo_future_t *p = xo_promise_new();
    if (!p) {
        free(s->blob[rank]);
        s->blob[rank] = NULL;
        s->arrived--;
        pthread_mutex_unlock(&s->lock);
        return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    }
    s->waiter[rank] = p;
    pthread_mutex_unlock(&s->lock);

    xo_result_t *r = NULL;
    st = xo_future_wait(p, XO_FOREVER, &r);
    if (st != XO_OK) { /* our caller gave up (timeout, cancel): withdraw, unless the phase completed meanwhile */
        pthread_mutex_lock(&s->lock);
        if (s->waiter[rank] == p) {
            s->waiter[rank] = NULL;
            free(s->blob[rank]);
            s->blob[rank] = NULL;
            s->len[rank] = 0;
            s->arrived--;
        }
        pthread_mutex_unlock(&s->lock);
        xo_future_free(p);
        xo_result_free(r);
        return xo_ctx_error(ctx, st, "rank %d stopped waiting for the other members", rank);
    }
    xo_future_free(p);
    msgpack_pack_object(out, *xo_result_value(r));
    xo_result_free(r);
    return XO_OK;
}

/* arrived() -> how many members have given their blob for the current phase (for error texts). */
static xo_status_t rdv_arrived(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    rdv_t *s = state;
    pthread_mutex_lock(&s->lock);
    int n = s->arrived, size = s->size;
    pthread_mutex_unlock(&s->lock);
    return xo_pack(out, "[ii]", n, size);
}

/* leave() -> true for the last member to leave, which then destroys the rendezvous so that the name can be used
 * again. The member does it, not this method: a destroy waited for inside the actor's own method would still be
 * pending if the pool stopped meanwhile. */
static xo_status_t rdv_leave(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)ctx, (void)args;
    rdv_t *s = state;
    pthread_mutex_lock(&s->lock);
    bool last = s->size > 0 && ++s->left == s->size;
    pthread_mutex_unlock(&s->lock);
    return xo_pack(out, "t", last);
}

static const xo_method_t rdv_methods[] = {
    {.name = "exchange", .fn = rdv_exchange},
    {.name = "arrived", .fn = rdv_arrived},
    {.name = "leave", .fn = rdv_leave},
};

const xo_actor_class_t xo_coll_rendezvous_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "xo.coll.rendezvous",
    .state_size = sizeof(rdv_t),
    .init = rdv_init,
    .fini = rdv_fini,
    .methods = rdv_methods,
    .n_methods = sizeof rdv_methods / sizeof rdv_methods[0],
};
