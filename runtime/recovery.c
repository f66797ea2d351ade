/* The actors a restarted sub pool is about to get back: while its host re-creates them (restart: actors), a call
 * to one of them is answered XO_ERECOVERING, not XO_ENOACTOR, so that a caller can tell "retry soon" from "gone".
 *
 * Two stages, because a caller may reach the new process before its host has said anything: a pool started with
 * XO_RECOVERING=1 in its environment (set by the host on a restart only) treats every miss as recovering; the host's
 * XO_WIRE_RECOVERING then narrows that to the uids it is going to re-create, and a second one, without uids, ends the
 * recovery. The uids are kept sorted, for a binary search on a miss; misses are not on any hot path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"

static int by_uid(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void drop_list(xo_pool_t *p)
{
    for (size_t i = 0; i < p->n_recovering; i++) free(p->recovering[i]);
    free(p->recovering);
    p->recovering = NULL;
    p->n_recovering = 0;
}

void xo__pool_recovery_begin_all(xo_pool_t *p)
{
    pthread_mutex_lock(&p->recovery_lock);
    drop_list(p);
    p->recovering_all = true;
    atomic_store(&p->recovery_active, true);
    pthread_mutex_unlock(&p->recovery_lock);
}

xo_status_t xo__pool_recovery_set(xo_pool_t *p, const msgpack_object *uids)
{
    if (!uids) {
        pthread_mutex_lock(&p->recovery_lock);
        drop_list(p);
        p->recovering_all = false;
        atomic_store(&p->recovery_active, false);
        pthread_mutex_unlock(&p->recovery_lock);
        return XO_OK;
    }
    if (uids->type != MSGPACK_OBJECT_ARRAY) return xo__error_set(XO_EPROTO, "recovering: not an array of uids");
    size_t n = uids->via.array.size;
    char **list = calloc(n ? n : 1, sizeof *list); /* ours until handed to the pool below */
    if (!list) return xo__error_set(XO_ENOMEM, "out of memory for %zu recovering uids", n);
    xo_status_t st = XO_OK;
    for (size_t i = 0; i < n && st == XO_OK; i++) {
        const msgpack_object *o = &uids->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR) st = xo__error_set(XO_EPROTO, "recovering: uid %zu is not a string", i);
        else if (!(list[i] = strndup(o->via.str.ptr, o->via.str.size))) st = xo__error_set(XO_ENOMEM, "out of memory");
    }
    if (st != XO_OK) {
        for (size_t i = 0; i < n; i++) free(list[i]);
        free(list);
        return st;
    }
    qsort(list, n, sizeof *list, by_uid);
    pthread_mutex_lock(&p->recovery_lock);
    drop_list(p);
    p->recovering = list;
    p->n_recovering = n;
    p->recovering_all = false;
    atomic_store(&p->recovery_active, n > 0);
    pthread_mutex_unlock(&p->recovery_lock);
    return XO_OK;
}

/* The entry for uid, or NULL. recovery_lock held. */
static char **find(xo_pool_t *p, const char *uid)
{
    return p->n_recovering ? bsearch(&uid, p->recovering, p->n_recovering, sizeof *p->recovering, by_uid) : NULL;
}

bool xo__pool_recovering(xo_pool_t *p, const char *uid)
{
    if (!atomic_load_explicit(&p->recovery_active, memory_order_acquire)) return false;
    pthread_mutex_lock(&p->recovery_lock);
    bool yes = p->recovering_all || find(p, uid) != NULL;
    pthread_mutex_unlock(&p->recovery_lock);
    return yes;
}

xo_status_t xo__pool_missing_actor(xo_pool_t *p, const char *uid, char *text, size_t len)
{
    if (xo__pool_recovering(p, uid)) {
        snprintf(text, len, "actor \"%.200s\" at %s is being re-created after its pool restarted: retry", uid,
                 p->address);
        return XO_ERECOVERING;
    }
    snprintf(text, len, "no actor \"%.200s\" at %s", uid, p->address);
    return XO_ENOACTOR;
}

void xo__pool_recovery_forget(xo_pool_t *p, const char *uid)
{
    if (!atomic_load_explicit(&p->recovery_active, memory_order_acquire)) return;
    pthread_mutex_lock(&p->recovery_lock);
    char **e = find(p, uid);
    if (e) { /* destroyed once back: from now on it is gone, not coming back */
        free(*e);
        memmove(e, e + 1, (size_t)(p->recovering + p->n_recovering - (e + 1)) * sizeof *e);
        p->n_recovering--;
    }
    pthread_mutex_unlock(&p->recovery_lock);
}

void xo__pool_recovery_free(xo_pool_t *p)
{
    drop_list(p);
    pthread_mutex_destroy(&p->recovery_lock);
}
