/* The mailbox of a collective member: an endpoint actor in the member's pool receives the peers' "put" messages
 * and matches them to the member's receives by (operation, step, sender).
 *
 * Why a separate actor: the member is usually a stateful actor whose method is suspended inside the collective; a
 * put sent to it would wait behind that method (one message at a time) and the collective would never finish. The
 * endpoint is stateless, so puts run at once on any thread of the pool and write into the member's group.
 *
 * A put that arrives before its receive is posted is kept in a buffer the mailbox owns; a receive posted first gives
 * its own destination, and the put copies straight into it. Both happen under the group's lock, and a receive that
 * gives up (timeout) removes its slot under that lock, so nothing is written into the caller's memory after the
 * receive has returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/coll/coll.h"
#include "runtime/core.h"

struct xo_coll_slot {
    uint64_t seq;
    uint64_t sig;          /* the operation signature of whoever made the slot first (a put, or the receive) */
    uint32_t tag;
    int from;
    size_t total, got;
    unsigned char *data;   /* the receive's destination, or (owned) a buffer holding what arrived first */
    bool owned;
    xo_future_t *waiter;   /* completed when the slot is full or failed; NULL while nobody waits */
    xo_status_t error;     /* a peer sent something that does not fit (another length) */
    char text[400];
    xo_coll_slot_t *next;
};

/* ---- the process's groups, found by (name, rank) ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static xo_coll_t *registry;

/* The group (name, rank) with a reference the caller drops with group_unref, or NULL. */
static xo_coll_t *group_find(xo_str_t name, int rank)
{
    pthread_mutex_lock(&registry_lock);
    xo_coll_t *g = registry;
    while (g && !(g->rank == rank && xo_str_eq(name, g->name))) g = g->registry_next;
    if (g) atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&registry_lock);
    return g;
}

static void group_unref(xo_coll_t *g) { atomic_fetch_sub(&g->refs, 1); }

char *xo__coll_endpoint_uid(const char *name, int rank)
{
    size_t n = strlen(name) + 32;
    char *uid = malloc(n);
    if (uid) snprintf(uid, n, "xo.coll/%s/%d", name, rank);
    return uid;
}

/* ---- slots (the group's lock held) ---- */

static xo_coll_slot_t *slot_find(xo_coll_t *g, uint64_t seq, uint32_t tag, int from)
{
    for (xo_coll_slot_t *s = g->slots; s; s = s->next)
        if (s->seq == seq && s->tag == tag && s->from == from) return s;
    return NULL;
}

static xo_coll_slot_t *slot_add(xo_coll_t *g, uint64_t seq, uint32_t tag, int from, size_t total)
{
    xo_coll_slot_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    *s = (xo_coll_slot_t){.seq = seq, .tag = tag, .from = from, .total = total, .next = g->slots};
    g->slots = s;
    return s;
}

static void slot_remove(xo_coll_t *g, xo_coll_slot_t *s)
{
    for (xo_coll_slot_t **pp = &g->slots; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->owned) free(s->data);
    free(s);
}

static void slot_wake(xo_coll_slot_t *s)
{
    if (s->waiter) xo__future_complete(s->waiter, XO_OK, NULL, NULL);
}

/* ---- the endpoint actor ---- */

typedef struct endpoint {
    char *name;
    int rank;
} endpoint_t;

static xo_status_t ep_init(xo_ctx_t *ctx, void *state, const msgpack_object *args)
{
    endpoint_t *e = state;
    xo_str_t name;
    xo_status_t st = xo_unpack(args, "si", &name, &e->rank);
    if (st != XO_OK) return st;
    e->name = strndup(name.ptr, name.len);
    return e->name ? XO_OK : xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
}

static void ep_fini(void *state) { free(((endpoint_t *)state)->name); }

/* Fails the member's current operation (lock held): rank `from` sent a message of operation seq whose signature is
 * sig, not g->sig. Every receive of that operation wakes and returns the error, whatever step it waits for: the
 * other member may never send what it waits for. */
static void op_mismatch(xo_coll_t *g, uint64_t sig, int from)
{
    if (g->op_error != XO_OK) return;
    char theirs[96], mine[96];
    xo__coll_sig_text(sig, theirs, sizeof theirs);
    xo__coll_sig_text(g->sig, mine, sizeof mine);
    g->op_error = XO_EPROTO;
    snprintf(g->op_text, sizeof g->op_text, "rank %d called %s where rank %d called %s (every member must call the "
                                            "same collectives in the same order, with the same type, operation and "
                                            "root)", from, theirs, g->rank, mine);
    for (xo_coll_slot_t *s = g->slots; s; s = s->next)
        if (s->seq == g->seq) slot_wake(s);
}

/* put(seq, sig, tag, from, total, offset, bytes): a piece of what member `from` sends for step `tag` of operation
 * seq, whose signature on that member is sig. */
static xo_status_t ep_put(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    (void)out;
    endpoint_t *e = state;
    uint64_t seq, sig, total, offset;
    int64_t tag;
    int from;
    xo_bytes_t piece;
    xo_status_t st = xo_unpack(args, "uuliuub", &seq, &sig, &tag, &from, &total, &offset, &piece);
    if (st != XO_OK) return st;
    if (tag < 0 || tag > UINT32_MAX || offset > total || piece.len > total - offset)
        return xo_ctx_error(ctx, XO_EPROTO, "collective piece out of range: %zu bytes at %llu of %llu", piece.len,
                            (unsigned long long)offset, (unsigned long long)total);
    xo_coll_t *g = group_find((xo_str_t){e->name, strlen(e->name)}, e->rank);
    if (!g) return xo_ctx_error(ctx, XO_ENOACTOR, "collective group %s has no rank %d here", e->name, e->rank);
    pthread_mutex_lock(&g->lock);
    xo_coll_slot_t *s = slot_find(g, seq, (uint32_t)tag, from);
    if (!s) {
        s = slot_add(g, seq, (uint32_t)tag, from, (size_t)total);
        if (s) {
            s->sig = sig;
            s->data = malloc(total ? total : 1);
            s->owned = true;
            if (!s->data) {
                slot_remove(g, s);
                s = NULL;
            }
        }
        if (!s) st = xo_ctx_error(ctx, XO_ENOMEM, "out of memory for %llu bytes of a collective",
                                  (unsigned long long)total);
    }
    if (seq == g->seq && sig != g->sig) { /* this member runs another operation, type or root as seq */
        op_mismatch(g, sig, from);
        st = xo_ctx_error(ctx, XO_EPROTO, "%s", g->op_text);
    } else if (s && s->total != total) { /* the receive expects another length: members disagree on count */
        if (s->error == XO_OK) {
            s->error = XO_EPROTO;
            snprintf(s->text, sizeof s->text,
                     "rank %d sent %llu bytes where rank %d expected %zu (do all members pass the same count and type?)",
                     from, (unsigned long long)total, e->rank, s->total);
            slot_wake(s);
        }
        st = xo_ctx_error(ctx, XO_EPROTO, "%s", s->text);
    } else if (s) {
        memcpy(s->data + offset, piece.ptr, piece.len);
        s->got += piece.len;
        if (s->got >= s->total) slot_wake(s);
    }
    pthread_mutex_unlock(&g->lock);
    group_unref(g);
    return st;
}

static const xo_method_t ep_methods[] = {{.name = "put", .fn = ep_put}};

const xo_actor_class_t xo_coll_endpoint_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = "xo.coll.endpoint",
    .state_size = sizeof(endpoint_t),
    .init = ep_init,
    .fini = ep_fini,
    .methods = ep_methods,
    .n_methods = 1,
};

/* ---- opening and closing ---- */

xo_status_t xo__coll_mailbox_open(xo_coll_t *g)
{
    pthread_mutex_lock(&registry_lock);
    for (xo_coll_t *o = registry; o; o = o->registry_next) {
        if (o->rank == g->rank && strcmp(o->name, g->name) == 0) {
            pthread_mutex_unlock(&registry_lock);
            return xo__error_set(XO_EINVAL, "rank %d of collective group %s is already in this process", g->rank,
                                g->name);
        }
    }
    atomic_store(&g->refs, 1);
    g->registry_next = registry;
    registry = g;
    pthread_mutex_unlock(&registry_lock);

    char *uid = xo__coll_endpoint_uid(g->name, g->rank);
    xo_status_t st = uid ? xo_create_actor(&xo_coll_endpoint_class, xo_args("si", g->name, g->rank), g->pool->address,
                                           uid, &g->endpoint)
                         : xo__error_set(XO_ENOMEM, "out of memory");
    free(uid);
    if (st != XO_OK) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "%s", xo_last_error());
        xo__coll_mailbox_close(g);
        return xo__error_set(st, "collective group %s, rank %d: creating its endpoint: %s", g->name, g->rank, text);
    }
    return XO_OK;
}

void xo__coll_mailbox_close(xo_coll_t *g)
{
    if (g->endpoint) {
        xo_destroy_actor(g->endpoint);
        xo_ref_free(g->endpoint);
        g->endpoint = NULL;
    }
    pthread_mutex_lock(&registry_lock);
    for (xo_coll_t **pp = &registry; *pp; pp = &(*pp)->registry_next) {
        if (*pp == g) {
            *pp = g->registry_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    /* A put that found g before it left the registry may still be copying into it. */
    while (atomic_load(&g->refs) > 1) xo_sleep_ms(1);
    while (g->slots) slot_remove(g, g->slots);
}

/* ---- sending ---- */

static xo_status_t sends_push(xo_coll_sends_t *s, xo_future_t *f, int to)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        xo_future_t **nf = realloc(s->futures, cap * sizeof *nf);
        if (nf) s->futures = nf;
        int *nt = nf ? realloc(s->to, cap * sizeof *nt) : NULL;
        if (nt) s->to = nt;
        if (!nf || !nt) return xo__error_set(XO_ENOMEM, "out of memory");
        s->cap = cap;
    }
    s->futures[s->n] = f;
    s->to[s->n++] = to;
    return XO_OK;
}

xo_status_t xo__coll_send(xo_coll_t *g, xo_coll_sends_t *s, int to, uint32_t tag, const void *src, size_t len)
{
    size_t off = 0;
    while (off < len) { /* nothing for 0 bytes: the receiver knows the length too and does not wait */
        size_t n = len - off < XO_COLL_PIECE ? len - off : XO_COLL_PIECE;
        xo_args_t *a = xo_args_new(7);
        if (!a) return xo__coll_fail(g, XO_ENOMEM, "out of memory");
        msgpack_packer *pk = xo_args_packer(a);
        msgpack_pack_uint64(pk, g->seq);
        msgpack_pack_uint64(pk, g->sig);
        msgpack_pack_uint32(pk, tag);
        msgpack_pack_int(pk, g->rank);
        msgpack_pack_uint64(pk, len);
        msgpack_pack_uint64(pk, off);
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, (const char *)src + off, n);
        xo_future_t *f = NULL;
        /* Small messages are told: waiting for their replies would double the messages of a latency-bound step. A
         * lost one (the peer's endpoint gone) shows as the receiver's timeout; a dead connection fails the tell. */
        xo_status_t st = len <= XO_COLL_TELL_MAX ? xo_tell(g->peers[to], "put", a) : xo_send(g->peers[to], "put", a, &f);
        if (st == XO_OK && f) st = sends_push(s, f, to);
        if (st != XO_OK) {
            if (f) xo_future_free(f);
            return xo__coll_fail(g, st, "sending to rank %d: %s", to, xo_last_error());
        }
        off += n;
    }
    return XO_OK;
}

xo_status_t xo__coll_sends_wait(xo_coll_t *g, xo_coll_sends_t *s)
{
    xo_status_t first = XO_OK;
    char text[XO_ERROR_TEXT_MAX] = "";
    int who = -1;
    for (size_t i = 0; i < s->n; i++) {
        xo_status_t st = xo_future_wait(s->futures[i], g->timeout_ms, NULL);
        if (st != XO_OK && first == XO_OK) {
            first = st;
            who = s->to[i];
            snprintf(text, sizeof text, "%s", xo_last_error());
        }
        xo_future_free(s->futures[i]);
    }
    s->n = 0;
    if (first != XO_OK) return xo__coll_fail(g, first, "sending to rank %d: %s", who, text);
    return XO_OK;
}

void xo__coll_sends_free(xo_coll_sends_t *s)
{
    for (size_t i = 0; i < s->n; i++) xo_future_free(s->futures[i]);
    free(s->futures);
    free(s->to);
    *s = (xo_coll_sends_t){0};
}

/* ---- every member to every member ---- */

xo_status_t xo__coll_all_to_all(xo_coll_t *g, xo_coll_sends_t *s, uint32_t tag, const void *src, size_t stride,
                               size_t len, void *dst)
{
    const unsigned char *in = src;
    unsigned char *out = dst;
    memmove(out + len * (size_t)g->rank, in + stride * (size_t)g->rank, len);
    xo_status_t st = XO_OK;
    for (int i = 1; st == XO_OK && i < g->size; i++) {
        int to = (g->rank + i) % g->size;
        st = xo__coll_send(g, s, to, tag, in + stride * (size_t)to, len);
    }
    for (int i = 1; st == XO_OK && i < g->size; i++) {
        int from = (g->rank + g->size - i) % g->size;
        st = xo__coll_recv(g, from, tag, out + len * (size_t)from, len);
    }
    return st;
}

xo_status_t xo__coll_barrier_round(xo_coll_t *g, xo_coll_sends_t *s, uint32_t tag)
{
    unsigned char one = 1, *all = malloc((size_t)g->size);
    if (!all) return xo__coll_fail(g, XO_ENOMEM, "out of memory");
    xo_status_t st = xo__coll_all_to_all(g, s, tag, &one, 0, 1, all);
    free(all);
    return st;
}

/* ---- receiving ---- */

xo_status_t xo__coll_recv(xo_coll_t *g, int from, uint32_t tag, void *dst, size_t len)
{
    if (len == 0) return XO_OK;
    pthread_mutex_lock(&g->lock);
    /* What arrived for this operation before it began here was not compared yet. */
    for (xo_coll_slot_t *o = g->slots; o && g->op_error == XO_OK; o = o->next)
        if (o->seq == g->seq && o->sig != g->sig) op_mismatch(g, o->sig, o->from);
    if (g->op_error != XO_OK) {
        char text[sizeof g->op_text];
        snprintf(text, sizeof text, "%s", g->op_text);
        pthread_mutex_unlock(&g->lock);
        return xo__coll_fail(g, XO_EPROTO, "collective %s: %s", g->name, text);
    }
    xo_coll_slot_t *s = slot_find(g, g->seq, tag, from);
    if (!s) {
        s = slot_add(g, g->seq, tag, from, len);
        if (!s) {
            pthread_mutex_unlock(&g->lock);
            return xo__coll_fail(g, XO_ENOMEM, "out of memory");
        }
        s->data = dst;
        s->sig = g->sig;
    } else if (s->total != len && s->error == XO_OK) {
        s->error = XO_EPROTO;
        snprintf(s->text, sizeof s->text,
                 "rank %d sent %zu bytes where rank %d expected %zu (do all members pass the same count and type?)",
                 from, s->total, g->rank, len);
    }
    xo_future_t *w = NULL;
    if (s->error == XO_OK && s->got < s->total) {
        w = xo__future_new();
        if (!w) {
            slot_remove(g, s);
            pthread_mutex_unlock(&g->lock);
            return xo__coll_fail(g, XO_ENOMEM, "out of memory");
        }
        s->waiter = w;
        pthread_mutex_unlock(&g->lock);
        xo_status_t st = xo__future_await(w, g->timeout_ms);
        pthread_mutex_lock(&g->lock);
        s->waiter = NULL;
        xo__future_unref(w);
        if (g->op_error != XO_OK && s->error == XO_OK) { /* woken by another step's mismatch */
            s->error = g->op_error;
            snprintf(s->text, sizeof s->text, "%s", g->op_text);
        }
        if (st != XO_OK && s->error == XO_OK && s->got < s->total) {
            slot_remove(g, s);
            pthread_mutex_unlock(&g->lock);
            if (st == XO_ETIMEDOUT)
                return xo__coll_fail(g, st, "collective %s: no data from rank %d within %lld ms (operation %llu, step %u)",
                                    g->name, from, (long long)g->timeout_ms, (unsigned long long)g->seq, tag);
            return xo__coll_fail(g, st, "collective %s: waiting for rank %d: %s", g->name, from, xo_strerror(st));
        }
    }
    xo_status_t st = s->error;
    char text[sizeof s->text];
    snprintf(text, sizeof text, "%s", s->text);
    if (st == XO_OK && s->owned) memcpy(dst, s->data, len);
    slot_remove(g, s);
    pthread_mutex_unlock(&g->lock);
    return st == XO_OK ? XO_OK : xo__coll_fail(g, st, "collective %s: %s", g->name, text);
}
