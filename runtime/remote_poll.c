/* Polling shared-memory connections from threads that spin anyway. See remote_impl.h. */
#include "runtime/remote_impl.h"

/* ---- polling from spinning threads ---------------------------------------------------------------------------
 *
 * The I/O thread sleeps in epoll, so a frame it receives costs the sender a doorbell and us a wake-up, and then a
 * second wake-up for the thread it hands the frame to. Threads that spin anyway take frames themselves instead: an
 * idle scheduler (the inbound connections of its pool, and every outbound one: replies to its actors' calls), and
 * a plain thread waiting for a reply (outbound ones). Each such thread registers with the connections it polls
 * (pollers > 0) while it spins, and its first receive disarms the channel's wake-up: the sender rings nothing and
 * the I/O thread sleeps (woken by a stale doorbell, it only empties the fd and leaves the frames to the pollers).
 * The last one to leave arms the wake-up again under rx_lock, and hands any frame already waiting to the I/O thread
 * (conn_kick), so a frame is always either seen by a poller or signalled on the fd. Only channels with a cheap
 * ready check (shm) are polled. */

#define POLL_BUDGET 64 /* frames one poll takes from one connection before it looks at its own work again */
/* ... and bytes: large frames go to their actor a few at a time, so that the ring frees up while they are handled */
#define POLL_BYTES ((size_t)256 << 10)


static _Thread_local poller_t tls_poller;

poller_t *xo__poller_self(void) { return &tls_poller; }

/* A poller stopped with frames left (budget spent, or an error to report): the I/O thread takes over. */
static void conn_kick(conn_t *c)
{
    atomic_store(&c->kick, true);
    xo__io_wake();
}

/* Counts us in without waiting for rx_lock (the I/O thread may hold it for a long drain of large frames): whoever
 * holds it may then arm the channel once more (a doorbell too many), never less. Disarms the wake-up now if the lock
 * is free, else at our first receive (poll_one). Takes no frame: those are for poll_one. */
static void poll_register(conn_t *c)
{
    atomic_fetch_add(&c->pollers, 1);
    if (pthread_mutex_trylock(&c->rx_lock) != 0) return;
    xo_frame_t fr = {0};
    xo_status_t st = atomic_load(&c->dead) ? XO_ECLOSED : xo__channel_recv_nowait(c->ch, XO_RECV_NOFRAME, &fr);
    pthread_mutex_unlock(&c->rx_lock);
    if (st != XO_ETIMEDOUT && st != XO_EAGAIN && st != XO_ECLOSED) conn_kick(c); /* an error for the I/O thread */
}

/* The last poller to leave arms the wake-up, so that from now on the fd signals frames to the I/O thread; frames
 * already waiting are handed to the I/O thread too (the poller leaves for work of its own). */
void xo__poll_unregister(conn_t *c)
{
    pthread_mutex_lock(&c->rx_lock);
    xo_status_t st = XO_ETIMEDOUT;
    if (atomic_fetch_sub(&c->pollers, 1) == 1 && !atomic_load(&c->dead)) {
        xo_frame_t fr = {0};
        st = xo__channel_recv_nowait(c->ch, XO_RECV_ARM | XO_RECV_NOFRAME, &fr);
    }
    pthread_mutex_unlock(&c->rx_lock);
    if (st != XO_ETIMEDOUT) conn_kick(c);
}

static void poll_release_all(poller_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        xo__poll_unregister(p->conns[i]);
        xo__conn_release(p->conns[i]);
    }
    p->n = 0;
    p->active = false;
    p->partial = false;
}

static bool wants(const conn_t *c, xo_pool_t *pool)
{
    if (!c->pollable || c->closing || atomic_load(&c->dead)) return false;
    return c->kind == CONN_OUTBOUND || (c->kind == CONN_INBOUND && pool && c->pool == pool);
}

/* Takes a new snapshot of the connections to poll. The ones held already stay registered (a connection in both
 * snapshots never drops to no poller, which would hand its frames to the I/O thread); the others are registered, and
 * the ones no longer wanted are let go. */
static void poll_start(poller_t *p, xo_pool_t *pool)
{
    conn_t *old[POLL_MAX];
    size_t n_old = p->active ? p->n : 0;
    memcpy(old, p->conns, n_old * sizeof *old);
    p->n = 0;
    pthread_mutex_lock(&xo__io.lock);
    p->gen = atomic_load(&xo__io.poll_gen);
    for (conn_t *c = xo__io.conns; c && p->n < POLL_MAX; c = c->next)
        if (wants(c, pool)) {
            xo__conn_retain(c);
            p->conns[p->n++] = c;
        }
    pthread_mutex_unlock(&xo__io.lock);
    p->pool = pool;
    p->active = true;
    p->partial = false;
    for (size_t i = 0; i < p->n; i++) {
        bool held = false;
        for (size_t j = 0; j < n_old && !held; j++)
            if (old[j] == p->conns[i]) {
                held = true;
                old[j] = NULL;
                xo__conn_release(p->conns[i]); /* the old snapshot's ref: the new one holds its own */
            }
        if (!held) poll_register(p->conns[i]);
    }
    for (size_t j = 0; j < n_old; j++)
        if (old[j]) {
            xo__poll_unregister(old[j]);
            xo__conn_release(old[j]);
        }
}

/* Takes up to POLL_BUDGET frames from c when it has some and nobody else is receiving. True when it took any. */
static bool poll_one(conn_t *c)
{
    if (!xo__channel_ready(c->ch) || atomic_load_explicit(&c->dead, memory_order_relaxed)) return false;
    if (pthread_mutex_trylock(&c->rx_lock) != 0) return false; /* the I/O thread or another poller has it */
    bool took = false, ok = true;
    size_t bytes = 0;
    for (int i = 0; i < POLL_BUDGET && bytes < POLL_BYTES && !atomic_load(&c->dead) && xo__channel_ready(c->ch); i++) {
        xo_frame_t fr = {0};
        xo_status_t st = xo__channel_recv_nowait(c->ch, 0, &fr);
        if (st == XO_ETIMEDOUT) break;
        if (st != XO_OK) {
            xo__conn_lost(c, st == XO_ECLOSED ? "connection closed" : xo_last_error());
            ok = false;
            break;
        }
        bytes += xo__frame_size(&fr);
        xo__conn_handle_frame(c, &fr);
        took = true;
    }
    pthread_mutex_unlock(&c->rx_lock);
    if (!ok) conn_kick(c); /* the I/O thread unregisters it */
    return took;
}

bool xo__remote_poll(xo_pool_t *pool)
{
    poller_t *p = &tls_poller;
    if (p->busy || !atomic_load_explicit(&xo__io.started, memory_order_acquire)) return false;
    p->busy = true;
    xo__poll_resume(p);
    if (!p->active || p->partial || p->pool != pool ||
        atomic_load_explicit(&xo__io.poll_gen, memory_order_relaxed) != p->gen)
        poll_start(p, pool);
    bool took = false;
    for (size_t i = 0; i < p->n; i++) took |= poll_one(p->conns[i]);
    p->busy = false;
    return took;
}

void xo__remote_poll_stop(void)
{
    poller_t *p = &tls_poller;
    if (p->busy) return;
    xo__poll_resume(p);
    if (!p->active) return;
    p->busy = true;
    poll_release_all(p);
    p->busy = false;
}
