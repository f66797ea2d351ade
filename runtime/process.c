/* Process-wide state: the pools started in this process (by address), the actor classes known by name, and the
 * call-chain id generator. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "runtime/core.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static xo_pool_t *pools;          /* newest first */

typedef struct class_entry {
    const xo_actor_class_t *cls;
    struct class_entry *next;
} class_entry_t;
static class_entry_t *classes;

xo_status_t xo__process_register_pool(xo_pool_t *pool)
{
    pthread_mutex_lock(&registry_lock);
    for (xo_pool_t *p = pools; p; p = p->registry_next) {
        if (strcmp(p->address, pool->address) == 0) {
            pthread_mutex_unlock(&registry_lock);
            return xo__error_set(XO_EEXIST, "a pool with address %s already runs in this process", pool->address);
        }
    }
    pool->registry_next = pools;
    pools = pool;
    pthread_mutex_unlock(&registry_lock);
    return XO_OK;
}

void xo__process_unregister_pool(xo_pool_t *pool)
{
    pthread_mutex_lock(&registry_lock);
    for (xo_pool_t **pp = &pools; *pp; pp = &(*pp)->registry_next) {
        if (*pp == pool) {
            *pp = pool->registry_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

xo_pool_t *xo__pool_find(const char *address)
{
    pthread_mutex_lock(&registry_lock);
    xo_pool_t *p = pools;
    while (p && strcmp(p->address, address) != 0) p = p->registry_next;
    pthread_mutex_unlock(&registry_lock);
    return p;
}

xo_pool_t *xo__pool_default(void)
{
    xo_worker_t *w = xo__worker_current();
    if (w) return w->actor->pool;
    pthread_mutex_lock(&registry_lock);
    xo_pool_t *p = pools;
    while (p && p->registry_next) p = p->registry_next; /* the oldest */
    pthread_mutex_unlock(&registry_lock);
    return p;
}

xo_status_t xo_register_class(const xo_actor_class_t *cls)
{
    if (!cls || !cls->name || !cls->name[0]) return xo__error_set(XO_EINVAL, "a class needs a name");
    if (cls->abi_version != XO_CLASS_ABI_V1)
        return xo__error_set(XO_EINVAL, "class %s: abi_version %u is not supported (this runtime knows %u)", cls->name,
                            cls->abi_version, XO_CLASS_ABI_V1);
    for (size_t i = 0; i < cls->n_methods; i++) {
        const xo_method_t *m = &cls->methods[i];
        if (!m->name || (!m->fn && !m->batch))
            return xo__error_set(XO_EINVAL, "class %s: method %zu has no name or no function", cls->name, i);
        if (m->batch && !(m->flags & XO_METHOD_EXTENSIBLE))
            return xo__error_set(XO_EINVAL, "class %s: method %s has a batch handler but is not extensible", cls->name,
                                m->name);
    }
    pthread_mutex_lock(&registry_lock);
    for (class_entry_t *e = classes; e; e = e->next) {
        if (strcmp(e->cls->name, cls->name) == 0) {
            pthread_mutex_unlock(&registry_lock);
            if (e->cls == cls) return XO_OK;
            return xo__error_set(XO_EEXIST, "another class named %s is already registered", cls->name);
        }
    }
    class_entry_t *e = malloc(sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&registry_lock);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    e->cls = cls;
    e->next = classes;
    classes = e;
    pthread_mutex_unlock(&registry_lock);
    return XO_OK;
}

const xo_actor_class_t *xo__class_find(const char *name)
{
    pthread_mutex_lock(&registry_lock);
    class_entry_t *e = classes;
    while (e && strcmp(e->cls->name, name) != 0) e = e->next;
    pthread_mutex_unlock(&registry_lock);
    return e ? e->cls : NULL;
}

/* Chain ids: a random per-process base plus a counter, so ids from different processes (later, across pools) do not
 * collide in practice. */
static _Atomic uint64_t chain_counter;
static uint64_t chain_base;
static pthread_once_t chain_once = PTHREAD_ONCE_INIT;

static void chain_init(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    chain_base = r & ~0xFFFFFFFFull;
}

/* Threads take ids in blocks, so a thread that calls often does not hit the shared counter per call. */
#define CHAIN_BLOCK 4096u
static _Thread_local uint64_t chain_next, chain_end;

uint64_t xo__chain_new(void)
{
    if (chain_next == chain_end) {
        pthread_once(&chain_once, chain_init);
        chain_next = chain_base + atomic_fetch_add_explicit(&chain_counter, CHAIN_BLOCK, memory_order_relaxed) + 1;
        chain_end = chain_next + CHAIN_BLOCK;
    }
    return chain_next++;
}

uint64_t xo__chain_current(void)
{
    xo_worker_t *w = xo__worker_current();
    return w ? w->chain : xo__chain_new();
}
