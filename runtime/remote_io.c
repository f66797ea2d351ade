/* Connections, the I/O thread's loop, and listening. See remote.h and remote_impl.h. */
#include "runtime/remote_impl.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log_limit.h"
#include "runtime/auth.h"

#define PAUSE_GRACE_NS 1000000 /* the I/O thread's look period while no pause is on but one was lately */
#define PAUSE_QUIET_ROUNDS 8
#define DRAIN_BUDGET 256
#define ACCEPT_BUDGET 64 /* connections one look at a listener accepts: the I/O thread has other work too */
/* A listener that cannot accept (no fd left, and no stranger to refuse for one) is left alone this long: retrying at
 * once would spin, since the queued connection keeps it readable (nginx waits 500 ms, libuv closes a spare fd). */
#define ACCEPT_PAUSE_NS 100000000
/* Before the peer has proved the secret, a frame may be this large: the authentication response is 38 bytes. */
#define AUTH_FRAME_MAX 256
#define AUTH_MAX_PENDING_DEFAULT 64

xo__io_t xo__io = {.once = PTHREAD_ONCE_INIT, .timers_once = PTHREAD_ONCE_INIT, .connect_lock = PTHREAD_MUTEX_INITIALIZER,
        .pause_wait_ns = POLL_PAUSE_NS};

bool xo__remote_address_ok(const char *address)
{
    xo_pool_addr_t a;
    return xo__pool_addr_parse(address, &a);
}

/* ---- connections ---------------------------------------------------------------------------------------------- */

conn_t *xo__conn_new(conn_kind_t kind)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    atomic_init(&c->refs, 1);
    /* An inbound connection gets its zone once the peer has proved the secret (xo__conn_handle_frame). */
    if (kind == CONN_OUTBOUND) {
        if (!msgpack_zone_init(&c->zone, 4096)) {
            free(c);
            return NULL;
        }
        c->zone_ready = true;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->rx_lock, NULL);
    xo__idmap_init(&c->calls);
    return c;
}

void xo__conn_release(conn_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->ch) xo__channel_close(c->ch);
    if (c->listener) xo__listener_close(c->listener);
    xo__idmap_free(&c->calls);
    if (c->zone_ready) msgpack_zone_destroy(&c->zone);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->rx_lock);
    free(c->address);
    free(c);
}

void xo__io_wake(void)
{
    uint64_t one = 1;
    ssize_t n = write(xo__io.wakefd, &one, sizeof one);
    (void)n;
}

/* Links c into xo__io.conns (caller holds xo__io.lock) and tells pollers to take a new snapshot. */
static void link_conn(conn_t *c)
{
    c->pollable = c->ch && xo__channel_has_poll(c->ch);
    c->next = xo__io.conns;
    xo__io.conns = c;
    atomic_fetch_add(&xo__io.poll_gen, 1);
}

/* Hands c (and one ref) to the I/O thread. */
void xo__io_adopt(conn_t *c)
{
    pthread_mutex_lock(&xo__io.lock);
    link_conn(c);
    pthread_mutex_unlock(&xo__io.lock);
    xo__io_wake();
}

/* ---- the I/O loop --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *why;
} fail_ctx_t;

static void fail_pending(void *val, void *arg)
{
    xo_future_t *f = val;
    const char *why = arg;
    xo__future_complete(f, XO_EPOOLDIED, strdup(why), NULL);
    xo__future_unref(f);
}

static void cancel_inflight(void *val, void *arg)
{
    (void)arg;
    xo__future_request_cancel((xo_future_t *)val); /* the caller is gone: do not run what has not started */
}

/* The connection is gone: fail what waits on it, and let it go. I/O thread, or a supervisor via peer_died. */
void xo__conn_lost(conn_t *c, const char *why)
{
    if (atomic_exchange(&c->dead, true)) return;
    atomic_fetch_add(&xo__io.poll_gen, 1); /* pollers drop it */
    if (c->ch) xo__channel_shutdown(c->ch);
    pthread_mutex_lock(&c->lock);
    xo_idmap_t calls = c->calls;
    xo__idmap_init(&c->calls);
    pthread_mutex_unlock(&c->lock);
    if (c->kind == CONN_OUTBOUND) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "pool %s died: %s", c->address, why);
        xo__idmap_drain(&calls, fail_pending, text);
        if (calls.cap) xo_log_debug("%s", text);
    } else {
        xo__idmap_drain(&calls, cancel_inflight, NULL);
    }
    xo__idmap_free(&calls);
}

/* A received frame that messages borrow from: freed (its pooled segment handed back) by the last of them. */
typedef struct frame_hold {
    _Atomic uint32_t refs;
    xo_frame_t fr;
} frame_hold_t;

static void hold_release(void *arg)
{
    frame_hold_t *h = arg;
    /* acq_rel: the last holder (any thread) sees the others' reads of the frame done before it frees it. */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
        xo__frame_release(&h->fr);
        free(h);
    }
}

/* One more reference to l's frame for a borrower, the frame moved into a hold at the first loan. NULL when out of
 * memory (the caller copies instead). */
static frame_hold_t *lend(xo_lender_t *l)
{
    if (!l->hold) {
        frame_hold_t *h = malloc(sizeof *h);
        if (!h) return NULL;
        atomic_init(&h->refs, 1); /* the handler's, dropped by xo__conn_handle_frame */
        h->fr = *l->fr;           /* the struct moves; the memory it points to stays where it is */
        memset(l->fr, 0, sizeof *l->fr);
        l->hold = h;
    }
    atomic_fetch_add_explicit(&l->hold->refs, 1, memory_order_relaxed);
    return l->hold;
}

xo_args_t *xo__lend_args(xo_lender_t *l, xo_bytes_t b)
{
    frame_hold_t *h = b.len >= XO_LEND_MIN ? lend(l) : NULL;
    return h ? xo__args_borrow(b.ptr, b.len, hold_release, h) : xo__args_from_bytes(b.ptr, b.len);
}

xo_result_t *xo__lend_result(xo_lender_t *l, xo_bytes_t b)
{
    frame_hold_t *h = b.ptr && b.len >= XO_LEND_MIN ? lend(l) : NULL;
    return h ? xo__result_borrow((const char *)b.ptr, b.len, hold_release, h)
             : xo__result_from_bytes((const char *)b.ptr, b.ptr ? b.len : 0);
}

void xo__conn_handle_frame(conn_t *c, xo_frame_t *fr)
{
    if (c->kind == CONN_INBOUND && !atomic_load_explicit(&c->authed, memory_order_relaxed)) {
        /* Nothing is decoded, and nothing beyond the handshake's bytes allocated, before the peer has proved the
         * secret. */
        if (xo__auth_check(c->ch, fr, c->nonce) == XO_OK && msgpack_zone_init(&c->zone, 4096)) {
            c->zone_ready = true;
            xo__channel_set_max_frame(c->ch, 0);
            atomic_store_explicit(&c->authed, true, memory_order_release);
        } else {
            xo_log_limited(XO_LOG_WARN, "pool %s: refusing a connection: %s", c->pool->address, xo_last_error());
            xo__conn_lost(c, "authentication failed");
        }
        xo__frame_release(fr);
        return;
    }
    xo_wire_msg_t m;
    xo_lender_t l = {.fr = fr};
    msgpack_zone_clear(&c->zone);
    if (xo__wire_decode(fr, &c->zone, &m) != XO_OK) {
        xo_log_error("dropping a connection that sent a malformed message: %s", xo_last_error());
        xo__conn_lost(c, "malformed message");
    } else if (c->kind == CONN_OUTBOUND) {
        if (m.type == XO_WIRE_REPLY || m.type == XO_WIRE_REPLY_BATCH) xo__client_reply(c, &m, &l);
        else xo_log_warn("ignoring a request on an outbound connection to %s", c->address);
    } else {
        xo__serve_request(c, &m, &l);
    }
    if (l.hold) hold_release(l.hold); /* the borrowers free it */
    else xo__frame_release(fr);
}

/* Receives and handles what is there, up to a budget; caller holds rx_lock. flags as xo__channel_recv_nowait (a
 * channel that cannot be polled is always drained as recv(0) does). True when nothing is left: with XO_RECV_ARM
 * the fd signals the next frame. */
static bool drain_locked(conn_t *c, unsigned flags)
{
    for (int i = 0; i < DRAIN_BUDGET; i++) {
        if (atomic_load(&c->dead)) return true;
        /* A poller came along (it registers without waiting for rx_lock): the rest is its to take. */
        if (i && (flags & XO_RECV_ARM) && atomic_load(&c->pollers)) return true;
        xo_frame_t fr = {0};
        xo_status_t st = c->pollable ? xo__channel_recv_nowait(c->ch, flags, &fr) : xo__channel_recv(c->ch, 0, &fr);
        if (st == XO_ETIMEDOUT || st == XO_EAGAIN) return true;
        if (st != XO_OK) {
            xo__conn_lost(c, st == XO_ECLOSED ? "connection closed" : xo_last_error());
            return true;
        }
        xo__conn_handle_frame(c, &fr);
    }
    return false;
}

/* I/O thread: drains c. While threads poll c, the frames are theirs (they spin to take them): it only empties the fd
 * that woke it (a stale doorbell) and arms nothing. True when c is drained (its fd may be waited on again). */
static bool drain(conn_t *c)
{
    pthread_mutex_lock(&c->rx_lock);
    unsigned flags = XO_RECV_FD | (c->pollable && atomic_load(&c->pollers) ? XO_RECV_NOFRAME : XO_RECV_ARM);
    bool drained = drain_locked(c, flags);
    pthread_mutex_unlock(&c->rx_lock);
    return drained;
}

/* ---- strangers: inbound connections whose peer has not proved the secret yet (I/O thread only) ----
 *
 * Anyone who reaches a port can open connections and say nothing. Each gets a deadline (XO_AUTH_DEADLINE_MS,
 * default XO_AUTH_TIMEOUT_MS, the connector's own limit) and each pool at most XO_AUTH_MAX_PENDING of them (default
 * 64); past the cap, and when accept runs out of file descriptors, the oldest is refused to make room, so that
 * idle strangers cannot keep a real client out. They sit in accept order in xo__io.unauthed. */

static uint64_t auth_deadline_ns(void)
{
    static uint64_t ns;
    if (!ns) {
        const char *e = getenv("XO_AUTH_DEADLINE_MS");
        long ms = e ? strtol(e, NULL, 10) : 0;
        ns = (uint64_t)(ms > 0 ? ms : XO_AUTH_TIMEOUT_MS) * 1000000u;
    }
    return ns;
}

static unsigned auth_max_pending(void)
{
    static unsigned n;
    if (!n) {
        const char *e = getenv("XO_AUTH_MAX_PENDING");
        long v = e ? strtol(e, NULL, 10) : 0;
        n = v > 0 && v < 1000000 ? (unsigned)v : AUTH_MAX_PENDING_DEFAULT;
    }
    return n;
}

static void unauthed_push(conn_t *c)
{
    c->auth_deadline_ns = xo__now_ns() + auth_deadline_ns();
    c->next_unauthed = NULL;
    c->in_unauthed = true;
    if (xo__io.unauthed_tail) xo__io.unauthed_tail->next_unauthed = c;
    else xo__io.unauthed = c;
    xo__io.unauthed_tail = c;
}

static void unauthed_remove(conn_t *c)
{
    if (!c->in_unauthed) return;
    conn_t *prev = NULL;
    for (conn_t *u = xo__io.unauthed; u; prev = u, u = u->next_unauthed)
        if (u == c) {
            if (prev) prev->next_unauthed = c->next_unauthed;
            else xo__io.unauthed = c->next_unauthed;
            if (xo__io.unauthed_tail == c) xo__io.unauthed_tail = prev;
            break;
        }
    c->in_unauthed = false;
}

static void refuse(conn_t *c, const char *why)
{
    xo_log_limited(XO_LOG_WARN, "pool %s: refusing a connection: %s", c->pool->address, why);
    unauthed_remove(c);
    xo__conn_lost(c, why);
    xo__io.refused = true;
}

/* Lets go of the connections that authenticated or died, and refuses the ones past their deadline. The earliest
 * deadline left (xo__now_ns time), 0 when there is none. */
static uint64_t unauthed_sweep(void)
{
    if (!xo__io.unauthed) return 0;
    uint64_t now = xo__now_ns();
    for (conn_t *u = xo__io.unauthed, *next; u; u = next) {
        next = u->next_unauthed;
        if (atomic_load_explicit(&u->authed, memory_order_acquire) || atomic_load(&u->dead)) unauthed_remove(u);
        else if (u->auth_deadline_ns <= now) refuse(u, "no authentication in time (XO_AUTH_DEADLINE_MS)");
    }
    return xo__io.unauthed ? xo__io.unauthed->auth_deadline_ns : 0; /* accept order is deadline order */
}

/* Refuses the oldest stranger of pool (any pool when NULL). False when there is none. */
static bool unauthed_evict(xo_pool_t *pool, const char *why)
{
    for (conn_t *u = xo__io.unauthed; u; u = u->next_unauthed)
        if ((!pool || u->pool == pool) && !atomic_load_explicit(&u->authed, memory_order_acquire) &&
            !atomic_load(&u->dead)) {
            refuse(u, why);
            return true;
        }
    return false;
}

static unsigned unauthed_count(xo_pool_t *pool)
{
    unsigned n = 0;
    for (conn_t *u = xo__io.unauthed; u; u = u->next_unauthed)
        n += u->pool == pool && !atomic_load_explicit(&u->authed, memory_order_relaxed) && !atomic_load(&u->dead);
    return n;
}

/* Takes l out of epoll for ACCEPT_PAUSE_NS; io_main puts it back. */
static void listener_pause(conn_t *l)
{
    if (l->in_epoll) epoll_ctl(xo__io.epfd, EPOLL_CTL_DEL, xo__listener_fd(l->listener), NULL);
    l->in_epoll = false;
    l->paused_until_ns = xo__now_ns() + ACCEPT_PAUSE_NS;
    if (!xo__io.accept_resume_ns || l->paused_until_ns < xo__io.accept_resume_ns)
        xo__io.accept_resume_ns = l->paused_until_ns;
}

/* Accepts what waits on l, up to ACCEPT_BUDGET. The caller syncs the connection list afterwards (registers the new
 * ones, closes the refused ones: their fds come back then). */
static void accept_all(conn_t *l)
{
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        xo_channel_t *ch = NULL;
        xo_status_t st = xo__listener_accept(l->listener, 0, &ch);
        if (st == XO_ETIMEDOUT) return;
        if (st == XO_EPROTO || st == XO_ECLOSED) {
            xo_log_limited(XO_LOG_WARN, "pool %s: refusing a connection on %s: %s", l->pool->address,
                           xo__listener_url(l->listener), xo_last_error());
            continue; /* a failed setup (shm); the listener goes on */
        }
        if (st != XO_OK) {
            /* Out of file descriptors (or memory): the connection stays queued. Refuse the oldest stranger for its
             * fd (closed when the caller syncs; the listener is still readable, so the next round accepts), or, with
             * none, leave the listener alone for a while; connections already accepted are served meanwhile. */
            xo_log_limited(XO_LOG_WARN, "pool %s: cannot accept on %s: %s", l->pool->address,
                           xo__listener_url(l->listener), xo_last_error());
            if (!unauthed_evict(NULL, "making room: out of file descriptors")) listener_pause(l);
            return;
        }
        if (unauthed_count(l->pool) >= auth_max_pending())
            unauthed_evict(l->pool, "too many unauthenticated connections (XO_AUTH_MAX_PENDING)");
        conn_t *c = xo__conn_new(CONN_INBOUND);
        if (!c) {
            xo__channel_close(ch);
            continue;
        }
        c->ch = ch;
        c->pool = l->pool;
        xo__channel_set_max_frame(ch, AUTH_FRAME_MAX);
        if (xo__auth_challenge(ch, c->nonce) != XO_OK) {
            xo_log_debug("authentication challenge on %s failed: %s", xo__listener_url(l->listener), xo_last_error());
            xo__conn_release(c);
            continue;
        }
        pthread_mutex_lock(&xo__io.lock);
        link_conn(c);
        pthread_mutex_unlock(&xo__io.lock);
        unauthed_push(c);
        /* registered by the caller's next scan of xo__io.conns */
    }
}

/* Puts paused listeners whose time is up back (the next sync registers them). True when one was. */
static bool listeners_resume(void)
{
    if (!xo__io.accept_resume_ns || xo__now_ns() < xo__io.accept_resume_ns) return false;
    uint64_t now = xo__now_ns(), next = 0;
    pthread_mutex_lock(&xo__io.lock);
    for (conn_t *c = xo__io.conns; c; c = c->next)
        if (c->kind == CONN_LISTENER && c->paused_until_ns) {
            if (c->paused_until_ns <= now) c->paused_until_ns = 0;
            else if (!next || c->paused_until_ns < next) next = c->paused_until_ns;
        }
    pthread_mutex_unlock(&xo__io.lock);
    xo__io.accept_resume_ns = next;
    return true;
}

static void unlink_conn(conn_t *c)
{
    for (conn_t **pp = &xo__io.conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* Registers new connections with epoll, and closes the ones asked to close or found dead. */
static void sync_conns(conn_t **ready)
{
    pthread_mutex_lock(&xo__io.lock);
    conn_t *c = xo__io.conns, *gone = NULL;
    while (c) {
        conn_t *next = c->next;
        if (c->closing || atomic_load(&c->dead)) {
            if (c->in_epoll) epoll_ctl(xo__io.epfd, EPOLL_CTL_DEL, c->listener ? xo__listener_fd(c->listener)
                                                                           : xo__channel_fd(c->ch), NULL);
            c->in_epoll = false;
            if (!c->ready) {
                unauthed_remove(c);
                unlink_conn(c);
                c->next = gone;
                gone = c;
            }
        } else if (c->in_epoll && atomic_exchange(&c->kick, false)) {
            if (!c->ready) {
                c->ready = true;
                c->next_ready = *ready;
                *ready = c;
            }
        } else if (!c->in_epoll && !c->paused_until_ns) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            int fd = c->listener ? xo__listener_fd(c->listener) : xo__channel_fd(c->ch);
            if (epoll_ctl(xo__io.epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
                c->in_epoll = true;
                if (!c->ready && c->kind != CONN_LISTENER) { /* drain once: the fd only signals after a recv said
                                                              * "nothing more" */
                    c->ready = true;
                    c->next_ready = *ready;
                    *ready = c;
                }
            } else {
                xo_log_error("epoll_ctl add: %s", strerror(errno));
            }
        }
        c = next;
    }
    for (conn_t *g = gone; g; g = g->next)
        if (g->kind == CONN_OUTBOUND) xo__senders_forget(g);
    pthread_mutex_unlock(&xo__io.lock);
    while (gone) {
        conn_t *next = gone->next;
        if (gone->kind != CONN_LISTENER) {
            xo__conn_lost(gone, "closed");
            /* A poller may be handling one of its frames: wait for it, so that once unlisten returns no thread
             * serves this pool from this connection (pollers check dead under rx_lock). */
            pthread_mutex_lock(&gone->rx_lock);
            pthread_mutex_unlock(&gone->rx_lock);
        }
        xo__conn_release(gone); /* the I/O thread's ref */
        gone = next;
    }
    /* Only now: unlisten waits for this, and promises that its listeners are closed (their fds with them) and that
     * no poller serves its connections any more. (Bumped before the releases, it let unlisten return while they
     * were still open: a test counting fds after a host stop saw the main pool's three listener sockets.) */
    pthread_mutex_lock(&xo__io.lock);
    xo__io.close_gen++;
    pthread_cond_broadcast(&xo__io.cond);
    pthread_mutex_unlock(&xo__io.lock);
}

/* epoll_wait, with a timeout of xo__io.pause_wait_ns while schedulers pause, and none past until_ns (xo__now_ns
 * time, 0: no limit); none at all when ready. */
static int io_wait(struct epoll_event *evs, int max, bool ready, uint64_t until_ns)
{
    long wait_ns = atomic_load(&xo__io.pause_watch) ? xo__io.pause_wait_ns : -1;
    if (until_ns && !ready) {
        uint64_t now = xo__now_ns();
        long left = until_ns > now ? (long)(until_ns - now) : 0;
        if (wait_ns < 0 || left < wait_ns) wait_ns = left;
    }
    if (ready || wait_ns < 0) return epoll_wait(xo__io.epfd, evs, max, ready ? 0 : -1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    static _Atomic bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {wait_ns / 1000000000, wait_ns % 1000000000};
        int n = epoll_pwait2(xo__io.epfd, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed); /* a kernel before 5.11 */
    }
#endif
    return epoll_wait(xo__io.epfd, evs, max, (int)((wait_ns + 999999) / 1000000));
}

static void *io_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "xo-io");
    struct epoll_event evs[64];
    conn_t *ready = NULL;
    unsigned quiet = 0; /* looks at the pausers since one last paused */
    uint64_t until = 0; /* the next stranger's deadline, or a paused listener's return */
    for (;;) {
        int n = io_wait(evs, 64, ready != NULL, until);
        if (n < 0 && errno != EINTR) {
            xo_log_error("epoll_wait: %s", strerror(errno));
            continue;
        }
        bool sync = false;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                uint64_t v;
                ssize_t r = read(xo__io.wakefd, &v, sizeof v);
                (void)r;
                sync = true;
                continue;
            }
            if (c->kind == CONN_LISTENER) {
                accept_all(c);
                sync = true;
            } else if (!c->ready) {
                c->ready = true;
                c->next_ready = ready;
                ready = c;
            }
        }
        if (listeners_resume()) sync = true;
        uint64_t first = unauthed_sweep();
        if (xo__io.refused) { /* their fds are closed by the sync */
            xo__io.refused = false;
            sync = true;
        }
        if (sync) sync_conns(&ready);
        until = first;
        if (xo__io.accept_resume_ns && (!until || xo__io.accept_resume_ns < until)) until = xo__io.accept_resume_ns;
        if (atomic_load(&xo__io.pause_watch)) {
            /* Dekker with xo__remote_poll_pause: off first, then look; a pause we miss sees the watch off. The watch
             * stays on for PAUSE_QUIET_ROUNDS looks after the last pause, so that a pool answering calls one by
             * one (each a pause of a microsecond, rarely on when we look) does not ring us at each; those looks
             * come every PAUSE_GRACE_NS, so that such a pool is not woken 5000 times a second either. */
            atomic_store(&xo__io.pause_watch, false);
            int seen = xo__pausers_check();
            if (seen != PAUSES_NONE) quiet = 0;
            xo__io.pause_wait_ns = seen == PAUSES_ON ? POLL_PAUSE_NS : PAUSE_GRACE_NS;
            if (quiet++ < PAUSE_QUIET_ROUNDS) atomic_store(&xo__io.pause_watch, true);
        }
        /* Drain every ready connection once per round: fair between busy peers. */
        conn_t *again = NULL;
        bool any_dead = false;
        while (ready) {
            conn_t *c = ready;
            ready = c->next_ready;
            bool drained = atomic_load(&c->dead) || drain(c);
            if (atomic_load(&c->dead)) any_dead = true;
            if (drained) {
                c->ready = false;
            } else {
                c->next_ready = again;
                again = c;
            }
        }
        ready = again;
        if (any_dead) sync_conns(&ready);
    }
    return NULL;
}

static void io_init(void)
{
    pthread_mutex_init(&xo__io.lock, NULL);
    pthread_cond_init(&xo__io.cond, NULL);
    xo__io.epfd = epoll_create1(EPOLL_CLOEXEC);
    xo__io.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (xo__io.epfd < 0 || xo__io.wakefd < 0) {
        xo__io.init_st = xo__error_set(XO_ESYS, "cannot create the I/O thread's epoll: %s", strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(xo__io.epfd, EPOLL_CTL_ADD, xo__io.wakefd, &ev);
    int krc = pthread_key_create(&xo__io.sender_key, xo__sender_exit);
    if (krc == 0) krc = pthread_key_create(&xo__io.pause_key, xo__pauser_exit);
    if (krc != 0) {
        xo__io.init_st = xo__error_set(XO_ESYS, "cannot create the I/O thread's thread keys: %s", strerror(krc));
        return;
    }
    uint64_t seed = (uint64_t)getpid() << 40;
    atomic_store(&xo__io.next_call_id, seed);
    int rc = pthread_create(&xo__io.thread, NULL, io_main, NULL);
    if (rc != 0) {
        xo__io.init_st = xo__error_set(XO_ESYS, "cannot start the I/O thread: %s", strerror(rc));
        return;
    }
    pthread_detach(xo__io.thread); /* lives as long as the process */
    xo__io.init_st = XO_OK;
    atomic_store_explicit(&xo__io.started, true, memory_order_release);
}

xo_status_t xo__io_start(void)
{
    pthread_once(&xo__io.once, io_init);
    return xo__io.init_st;
}

static void timers_init(void)
{
    if (xo__timers_start(&xo__io.timers, "xo-rtimer") != XO_OK) xo__io.timers = NULL;
}

xo_timers_t *xo__remote_timers(void)
{
    pthread_once(&xo__io.timers_once, timers_init);
    return xo__io.timers;
}

/* ---- listening ------------------------------------------------------------------------------------------------ */

/* Hands listener l (consumed) to the I/O thread, serving pool. */
static xo_status_t adopt_listener(xo_pool_t *pool, xo_listener_t *l)
{
    conn_t *c = xo__conn_new(CONN_LISTENER);
    if (!c) {
        xo__listener_close(l);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    c->listener = l;
    c->pool = pool;
    xo__io_adopt(c);
    return XO_OK;
}

static xo_status_t add_listener(xo_pool_t *pool, const char *url)
{
    xo_listener_t *l = NULL;
    xo_status_t st = xo__listen(url, NULL, &l);
    return st == XO_OK ? adopt_listener(pool, l) : st;
}

xo_status_t xo__remote_listen(xo_pool_t *pool)
{
    xo_pool_addr_t a;
    if (!xo__pool_addr_parse(pool->address, &a))
        return xo__error_set(XO_EINVAL, "bad pool address \"%s\" (expected host:port or host:port/N)", pool->address);
    xo_status_t st = xo__io_start();
    if (st != XO_OK) return st;
    char url[XO_URL_MAX];
    if (xo__route_listen_primary(&a, url)) {
        xo_listener_t *l = NULL;
        st = xo__listen(url, NULL, &l);
        if (st != XO_OK) return st;
        if (a.port == 0) { /* learn the port, and name the pool by it */
            const char *bound = xo__listener_url(l);
            const char *colon = strrchr(bound, ':');
            a.port = (unsigned)atoi(colon + 1);
            char addr[200];
            snprintf(addr, sizeof addr, "%s:%u", a.host, a.port);
            char *na = strdup(addr);
            if (!na) {
                xo__listener_close(l);
                return xo__error_set(XO_ENOMEM, "out of memory");
            }
            free(pool->address);
            pool->address = na;
        }
        st = adopt_listener(pool, l);
        if (st != XO_OK) return st;
    }
    xo_route_listen_t ls[XO_ROUTE_MAX];
    size_t n = xo__route_listen(&a, ls, XO_ROUTE_MAX);
    for (size_t i = 0; i < n && st == XO_OK; i++) {
        xo_status_t lst = add_listener(pool, ls[i].url);
        if (lst == XO_OK) continue;
        if (ls[i].required) st = lst;
        else
            xo_log_warn("pool %s: no %s listener (%s)%s", pool->address, ls[i].scheme, xo_last_error(),
                        ls[i].other_hosts_need_it ? "; only this host can reach it" : "");
    }
    if (st != XO_OK) xo__remote_unlisten(pool);
    return st;
}

void xo__remote_unlisten(xo_pool_t *pool)
{
    if (xo__io_start() != XO_OK) return;
    pthread_mutex_lock(&xo__io.lock);
    bool any = false;
    for (conn_t *c = xo__io.conns; c; c = c->next)
        if (c->pool == pool && (c->kind == CONN_LISTENER || c->kind == CONN_INBOUND)) {
            c->closing = true;
            any = true;
        }
    /* One sweep of the I/O thread is not always enough: it leaves a connection with frames still to handle for the
     * next one (a test counting fds after a host stop found the three listener sockets open, 13 times in 60 under
     * load). So sweep until none of the pool's connections is left, then once more: the sweep that took the last
     * ones signals only after it has closed them. */
    while (any) {
        any = false;
        for (conn_t *c = xo__io.conns; c && !any; c = c->next)
            any = c->pool == pool && (c->kind == CONN_LISTENER || c->kind == CONN_INBOUND);
        uint64_t gen = xo__io.close_gen;
        xo__io_wake();
        while (xo__io.close_gen == gen) pthread_cond_wait(&xo__io.cond, &xo__io.lock);
    }
    pthread_mutex_unlock(&xo__io.lock);
}
