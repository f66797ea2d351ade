/* A pool in this process: its scheduler threads, its actor table and its timers; start and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/random.h>
#include <unistd.h>

#include "runtime/core.h"
#include "base/log.h"
#include "runtime/remote.h"
#include "xoscar/device_buf.h"
#include "xoscar/gpu.h"
#include "xoscar/host.h"

#define DEFAULT_STACK (256u * 1024u)
#define DEFAULT_SPIN_US 50u
#define STOP_DESTROY_BUDGET_MS 2000

static _Atomic unsigned pool_counter;

/* ---- the actor table ----------------------------------------------------------------------------------------- */

static size_t uid_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static xo_status_t table_grow(xo_pool_t *p)
{
    size_t ncap = p->table_cap ? p->table_cap * 2 : 64;
    xo_actor_t **nt = calloc(ncap, sizeof *nt);
    if (!nt) return xo__error_set(XO_ENOMEM, "out of memory for the actor table");
    for (size_t i = 0; i < p->table_cap; i++) {
        xo_actor_t *a = p->table[i];
        while (a) {
            xo_actor_t *next = a->table_next;
            size_t b = uid_hash(a->uid) & (ncap - 1);
            a->table_next = nt[b];
            nt[b] = a;
            a = next;
        }
    }
    free(p->table);
    p->table = nt;
    p->table_cap = ncap;
    return XO_OK;
}

xo_status_t xo__pool_table_insert(xo_pool_t *p, xo_actor_t *a)
{
    pthread_mutex_lock(&p->table_lock);
    if (atomic_load(&p->stopping)) {
        pthread_mutex_unlock(&p->table_lock);
        return xo__error_set(XO_ECLOSED, "pool %s is stopping", p->address);
    }
    if (p->n_actors + 1 > p->table_cap * 3 / 4) {
        xo_status_t st = table_grow(p);
        if (st != XO_OK) {
            pthread_mutex_unlock(&p->table_lock);
            return st;
        }
    }
    size_t b = uid_hash(a->uid) & (p->table_cap - 1);
    for (xo_actor_t *e = p->table[b]; e; e = e->table_next) {
        if (strcmp(e->uid, a->uid) == 0) {
            pthread_mutex_unlock(&p->table_lock);
            return xo__error_set(XO_EEXIST, "actor \"%s\" already exists at %s", a->uid, p->address);
        }
    }
    xo__actor_retain(a);
    a->table_next = p->table[b];
    p->table[b] = a;
    p->n_actors++;
    pthread_mutex_unlock(&p->table_lock);
    return XO_OK;
}

void xo__pool_table_remove(xo_pool_t *p, xo_actor_t *a)
{
    bool found = false;
    pthread_mutex_lock(&p->table_lock);
    if (p->table_cap) {
        size_t b = uid_hash(a->uid) & (p->table_cap - 1);
        for (xo_actor_t **pp = &p->table[b]; *pp; pp = &(*pp)->table_next) {
            if (*pp == a) {
                *pp = a->table_next;
                p->n_actors--;
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&p->table_lock);
    if (found) xo__pool_recovery_forget(p, a->uid);
    if (found) xo__actor_release(a);
}

xo_actor_t *xo__pool_table_lookup(xo_pool_t *p, const char *uid)
{
    xo_actor_t *found = NULL;
    pthread_mutex_lock(&p->table_lock);
    if (p->table_cap) {
        size_t b = uid_hash(uid) & (p->table_cap - 1);
        for (xo_actor_t *e = p->table[b]; e; e = e->table_next) {
            if (strcmp(e->uid, uid) == 0) {
                found = e;
                xo__actor_retain(e);
                break;
            }
        }
    }
    pthread_mutex_unlock(&p->table_lock);
    return found;
}

static const char *life_name(int life)
{
    return life == XO_LIFE_CREATING ? "creating" : life == XO_LIFE_ALIVE ? "alive" : "dead";
}

void xo__pool_pack_actors(xo_pool_t *p, msgpack_packer *pk)
{
    pthread_mutex_lock(&p->table_lock);
    msgpack_pack_array(pk, p->n_actors);
    for (size_t b = 0; b < p->table_cap; b++)
        for (xo_actor_t *a = p->table[b]; a; a = a->table_next) {
            uint64_t posted = atomic_load_explicit(&a->posted, memory_order_relaxed);
            uint64_t taken = atomic_load_explicit(&a->taken, memory_order_relaxed);
            const char *state = life_name(atomic_load_explicit(&a->life, memory_order_relaxed));
            msgpack_pack_array(pk, 5);
            msgpack_pack_str_with_body(pk, a->uid, strlen(a->uid));
            msgpack_pack_str_with_body(pk, a->cls->name, strlen(a->cls->name));
            msgpack_pack_str_with_body(pk, state, strlen(state));
            msgpack_pack_uint64(pk, posted > taken ? posted - taken : 0); /* read apart: may cross */
            msgpack_pack_int(pk, atomic_load_explicit(&a->activations, memory_order_relaxed));
        }
    pthread_mutex_unlock(&p->table_lock);
}

void xo__pool_report_actor(xo_pool_t *pool, const char *uid, bool add)
{
    if (!pool->main_address || strcmp(uid, XO_HOST_SERVICE_UID) == 0 || strcmp(uid, XO_DEVBUF_SERVICE_UID) == 0)
        return; /* every pool has its own: not found through the main pool */
    /* Waited for (from the create or destroy activation, so only that fiber waits): once the creator has its reply,
     * a lookup through the main address finds the actor, and a destroyed one is no longer re-created after a
     * restart. A destroy while the pool stops says so: those actors die with their process, as a kill -9 would
     * take them, and stay the host's to re-create. A main pool without a host service answers ENOACTOR. */
    char kept[XO_ERROR_TEXT_MAX]; /* the hook's text (a failing before_destroy) is the caller's, not ours */
    snprintf(kept, sizeof kept, "%s", xo_last_error());
    xo_future_t *f = NULL;
    xo_status_t st = xo__remote_send(pool->main_address, XO_WIRE_CALL, xo__chain_new(), XO_HOST_SERVICE_UID,
                                    "register", xo_args("sstt", uid, pool->address, (int)add,
                                                        (int)atomic_load(&pool->stopping)), true, &f);
    if (st == XO_OK) {
        st = xo_future_wait(f, 2000, NULL);
        xo__future_unref(f);
    }
    if (st != XO_OK) xo_log_debug("cannot report actor %s to %s: %s", uid, pool->main_address, xo_last_error());
    xo__error_set(XO_OK, "%s", kept);
}

size_t xo_pool_actor_count(const xo_pool_t *cp)
{
    xo_pool_t *p = (xo_pool_t *)cp;
    pthread_mutex_lock(&p->table_lock);
    size_t n = p->n_actors;
    pthread_mutex_unlock(&p->table_lock);
    return n;
}

size_t xo__pool_user_actor_count(xo_pool_t *p)
{
    size_t n = 0;
    pthread_mutex_lock(&p->table_lock);
    for (size_t b = 0; b < p->table_cap; b++)
        for (xo_actor_t *e = p->table[b]; e; e = e->table_next)
            if (strncmp(e->uid, "xo.", 3) != 0) n++;
    pthread_mutex_unlock(&p->table_lock);
    return n;
}

unsigned xo__pool_busy_threads(xo_pool_t *p)
{
    xo_sched_t *me = xo__sched_current();
    unsigned n = 0;
    for (unsigned i = 0; i < p->n_sched; i++)
        if (&p->sched[i] != me && atomic_load_explicit(&p->sched[i].busy, memory_order_relaxed)) n++;
    return n;
}

const char *xo_pool_address(const xo_pool_t *p) { return p->address; }

static void cleanup(xo_pool_t *p);

/* Opens the device named "backend" or "backend:index" for the pool. */
static xo_status_t open_device(xo_pool_t *p, const char *name, uint64_t capacity)
{
    char backend[32];
    int index = 0;
    const char *colon = strchr(name, ':');
    size_t n = colon ? (size_t)(colon - name) : strlen(name);
    if (n == 0 || n >= sizeof backend) return xo__error_set(XO_EINVAL, "bad device name \"%s\"", name);
    memcpy(backend, name, n);
    backend[n] = '\0';
    if (colon) index = atoi(colon + 1);
    const xo_device_ops_t *ops = xo_device_backend_find(backend);
    if (!ops) return xo__error_set(XO_ENOTSUP, "no device backend \"%s\" in this build", backend);
    xo_device_config_t dc = {.capacity = capacity};
    return xo_device_open(ops, index, &dc, &p->device);
}

/* ---- start --------------------------------------------------------------------------------------------------- */

/* The CPUs the starting thread may run on: a pool bound to k CPUs (xoscar-pool --cpus, taskset, a cgroup cpuset)
 * gets k schedulers, not one per CPU of the machine, which on a 128-core node with 8 pools would put 1024 threads
 * on 128 cores. Without a binding the mask is every online CPU, as before. */
static unsigned usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return (unsigned)n;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    return (unsigned)(ncpu > 0 ? ncpu : 1);
}

xo_status_t xo__pool_start_engine(const xo_pool_config_t *cfg, xo_pool_t **pool_p)
{
    xo_pool_config_t def = {0};
    if (!cfg) cfg = &def;
    if (!pool_p) return xo__error_set(XO_EINVAL, "pool_p is NULL");
    xo_pool_t *p = calloc(1, sizeof *p);
    if (!p) return xo__error_set(XO_ENOMEM, "out of memory for a pool");
    if (cfg->address) {
        p->address = strdup(cfg->address);
    } else {
        char buf[64];
        snprintf(buf, sizeof buf, "inproc://%d.%u", (int)getpid(), atomic_fetch_add(&pool_counter, 1));
        p->address = strdup(buf);
    }
    p->n_sched = cfg->n_threads ? cfg->n_threads : usable_cpus();
    p->fiber_stack_size = cfg->fiber_stack_size ? cfg->fiber_stack_size : DEFAULT_STACK;
    p->sched = calloc(p->n_sched, sizeof *p->sched);
    pthread_mutex_init(&p->table_lock, NULL);
    pthread_mutex_init(&p->recovery_lock, NULL);
    if (getrandom(&p->uid_seed, sizeof p->uid_seed, 0) != sizeof p->uid_seed)
        p->uid_seed = (uint64_t)getpid() ^ xo__now_ns();
    if (!p->address || !p->sched) {
        free(p->address);
        free(p->sched);
        free(p);
        return xo__error_set(XO_ENOMEM, "out of memory for a pool");
    }
    unsigned spin = cfg->spin_us ? cfg->spin_us : DEFAULT_SPIN_US;
    for (unsigned i = 0; i < p->n_sched; i++) p->sched[i].spin_ns = (uint64_t)spin * 1000u;

    xo_status_t st = cfg->device ? open_device(p, cfg->device, cfg->device_capacity) : XO_OK;
    if (st != XO_OK) goto fail_free;
    st = xo__timers_start(&p->timers, "xo-timer");
    if (st != XO_OK) goto fail_free;
    st = xo__sched_start_all(p);
    if (st != XO_OK) goto fail_timers;
    /* A process pool address ("host:port[/N]") is served to other processes; listening may fix a port 0. */
    p->listening = xo__remote_address_ok(p->address);
    const char *slash = p->listening ? strrchr(p->address, '/') : NULL;
    if (slash && atoi(slash + 1) > 0) p->main_address = strndup(p->address, (size_t)(slash - p->address));
    /* Before the first connection: a caller may reach a restarted sub pool before its host has said what comes back. */
    const char *recovering = getenv("XO_RECOVERING");
    if (p->main_address && recovering && strcmp(recovering, "1") == 0) xo__pool_recovery_begin_all(p);
    if (p->listening) {
        st = xo__remote_listen(p);
        if (st != XO_OK) goto fail_sched;
    }
    st = xo__process_register_pool(p);
    if (st != XO_OK) goto fail_unlisten;
    xo_log_debug("pool %s started with %u scheduler threads", p->address, p->n_sched);
    *pool_p = p;
    return XO_OK;

fail_unlisten:
    if (p->listening) xo__remote_unlisten(p);
fail_sched:
    xo__sched_stop_all(p);
    cleanup(p);
fail_timers:
    xo__timers_stop(p->timers);
fail_free:
    if (p->device) xo_device_close(p->device);
    free(p->main_address);
    pthread_mutex_destroy(&p->table_lock);
    xo__pool_recovery_free(p);
    free(p->sched);
    free(p->address);
    free(p);
    return st;
}

/* ---- stop ---------------------------------------------------------------------------------------------------- */

/* Destroys the actors still in the table through the normal path (before_destroy runs), all at once (they run in
 * parallel on the pool's threads), within a time budget. */
static void destroy_remaining(xo_pool_t *p)
{
    size_t n = 0;
    pthread_mutex_lock(&p->table_lock);
    xo_actor_t **v = malloc((p->n_actors ? p->n_actors : 1) * sizeof *v);
    for (size_t i = 0; v && i < p->table_cap; i++)
        for (xo_actor_t *a = p->table[i]; a; a = a->table_next) {
            xo__actor_retain(a);
            v[n++] = a;
        }
    pthread_mutex_unlock(&p->table_lock);
    if (!v) return; /* out of memory: the cleanup below finalises them without before_destroy */
    xo_future_t **fs = calloc(n ? n : 1, sizeof *fs);
    for (size_t i = 0; fs && i < n; i++) {
        xo_msg_t *m = calloc(1, sizeof *m);
        xo_future_t *f = m ? xo__future_new() : NULL;
        if (!f) {
            free(m);
            continue;
        }
        m->kind = XO_MSG_DESTROY;
        m->chain = xo__chain_new();
        m->reply = f;
        xo__future_ref(f);
        fs[i] = f;
        xo__actor_post(v[i], m);
    }
    uint64_t deadline = xo__now_ns() + (uint64_t)STOP_DESTROY_BUDGET_MS * 1000000ull;
    for (size_t i = 0; i < n; i++) {
        if (fs && fs[i]) {
            uint64_t now = xo__now_ns();
            int64_t left = now < deadline ? (int64_t)((deadline - now) / 1000000ull) : 0;
            if (xo__future_await(fs[i], left) != XO_OK)
                xo_log_warn("pool %s stop: actor \"%s\" was not destroyed in time (before_destroy still running, "
                            "or the actor is waiting); finalising it without before_destroy",
                            p->address, v[i]->uid);
            xo__future_unref(fs[i]);
        }
        xo__actor_release(v[i]);
    }
    free(fs);
    free(v);
}

typedef struct actor_set {
    xo_actor_t **v;
    size_t n, cap;
} actor_set_t;

static void set_add(actor_set_t *s, xo_actor_t *a)
{
    if (a->stop_mark) return; /* single-threaded by now: a plain flag dedupes in O(1) */
    a->stop_mark = true;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        xo_actor_t **nv = realloc(s->v, ncap * sizeof *nv);
        if (!nv) return; /* leak rather than crash at shutdown */
        s->v = nv;
        s->cap = ncap;
    }
    xo__actor_retain(a);
    s->v[s->n++] = a;
}

static void reject_closed(xo_pool_t *p, xo_msg_t *m)
{
    xo__msg_reject(m, XO_ECLOSED, "pool %s stopped", p->address);
}

/* With every thread of the pool stopped: answer every queued message with XO_ECLOSED, abandon suspended
 * activations, finalise the actors, free the workers. Single-threaded from here on. */
static void cleanup(xo_pool_t *p)
{
    actor_set_t actors = {0};
    for (unsigned i = 0; i < p->n_sched; i++) {
        xo_sched_t *s = &p->sched[i];
        for (;;) {
            xo_runnable_t *r = s->local_head;
            if (r) {
                s->local_head = (xo_runnable_t *)atomic_load(&r->node.next);
                if (!s->local_head) s->local_tail = NULL;
            } else {
                r = (xo_runnable_t *)xo_mpsc_pop(&s->inbox);
            }
            if (!r) break;
            if (r->kind == XO_RUN_ACTOR) {
                xo_actor_t *a = (xo_actor_t *)r;
                set_add(&actors, a);
                atomic_store(&a->scheduled, 0);
                xo__actor_release(a); /* the token's ref */
            } else if (r->kind == XO_RUN_MESSAGE) {
                xo_msg_t *m = (xo_msg_t *)r;
                xo_actor_t *a = m->actor;
                reject_closed(p, m);
                xo__actor_release(a);
            }
            /* XO_RUN_RESUME: the worker is handled below */
        }
    }
    for (unsigned i = 0; i < p->n_sched; i++) {
        xo_sched_t *s = &p->sched[i];
        for (size_t k = 0; k < s->n_workers; k++) {
            xo_worker_t *w = s->workers[k];
            if (w->state == XO_W_SUSPENDED && w->msg) {
                xo_actor_t *a = w->actor;
                set_add(&actors, a);
                reject_closed(p, w->msg);
                w->msg = NULL;
                atomic_fetch_sub(&a->activations, 1);
                if (!w->via_mailbox) xo__actor_release(a); /* the stateless message's ref */
                xo__actor_release(a);                      /* the activation's ref */
            }
        }
    }
    pthread_mutex_lock(&p->table_lock);
    for (size_t i = 0; i < p->table_cap; i++)
        for (xo_actor_t *a = p->table[i]; a; a = a->table_next) set_add(&actors, a);
    pthread_mutex_unlock(&p->table_lock);
    for (size_t i = 0; i < actors.n; i++) {
        xo_actor_t *a = actors.v[i];
        xo_msg_t *m;
        while ((m = (xo_msg_t *)xo_mpsc_pop(&a->mailbox)))
            if (m->kind != XO_MSG_RESUME) reject_closed(p, m);
        while (a->deferred_head) reject_closed(p, (m = a->deferred_head, a->deferred_head =
                                                       (xo_msg_t *)atomic_load(&m->run.node.next), m));
        a->deferred_tail = NULL;
        atomic_store(&a->life, XO_LIFE_DEAD);
        xo__pool_table_remove(p, a);
        atomic_store(&a->activations, 0);
        xo__actor_try_fini(a);
        xo__actor_release(a);
    }
    free(actors.v);
    for (unsigned i = 0; i < p->n_sched; i++) {
        xo_sched_t *s = &p->sched[i];
        for (size_t k = 0; k < s->n_workers; k++) {
            xo_worker_t *w = s->workers[k];
            xo__fiber_destroy(w->fiber);
            msgpack_zone_destroy(&w->zone);
            xo__buf_free(&w->out);
            free(w->on_return);
            free(w);
        }
        free(s->workers);
        xo__fiber_destroy(s->loop_fiber);
    }
}

void xo_pool_stop(xo_pool_t *p)
{
    if (!p) return;
    if (xo__sched_current() && xo__sched_current()->pool == p) {
        xo_log_error("xo_pool_stop called from pool %s's own thread: refused (it would join itself)", p->address);
        return;
    }
    if (p->listening) xo__remote_unlisten(p); /* no new requests from other processes */
    destroy_remaining(p);
    pthread_mutex_lock(&p->table_lock);
    atomic_store(&p->stopping, true);
    pthread_mutex_unlock(&p->table_lock);
    xo__process_unregister_pool(p);
    xo__sched_stop_all(p);
    xo__timers_stop(p->timers);
    cleanup(p);
    pthread_mutex_destroy(&p->table_lock);
    xo__pool_recovery_free(p);
    if (p->device) xo_device_close(p->device); /* after cleanup: the actors' fini may free device memory */
    free(p->table);
    free(p->sched);
    free(p->main_address);
    xo_log_debug("pool %s stopped", p->address);
    free(p->address);
    free(p);
}
