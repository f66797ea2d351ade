/* The process's I/O thread and its connections to pools in other processes. See remote.h. */
#include "runtime/remote.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/auth.h"
#include "base/futex.h"
#include "runtime/idmap.h"
#include "base/log.h"
#include "xoscar/gpu.h"

#define CONNECT_TIMEOUT_MS 3000
#define POLL_PAUSE_NS 200000 /* a paused scheduler's time before the I/O thread may take over (see "pausing") */
#define PAUSE_GRACE_NS 1000000 /* the I/O thread's look period while no pause is on but one was lately */
#define PAUSE_QUIET_ROUNDS 8
#define DRAIN_BUDGET 256
#define UID_MAX 512

typedef enum { CONN_LISTENER = 1, CONN_INBOUND, CONN_OUTBOUND } conn_kind_t;

typedef struct conn {
    conn_kind_t kind;
    _Atomic int refs;
    xo_channel_t *ch;
    xo_listener_t *listener;
    xo_pool_t *pool;         /* the local pool a listener or an inbound connection serves */
    char *address;           /* outbound: the peer pool's address */
    pthread_mutex_t lock;    /* guards calls */
    xo_idmap_t calls;        /* outbound: pending replies; inbound: calls in flight (for cancel) */
    _Atomic bool dead;
    bool closing;            /* asked to close (io.lock) */
    bool pollable;           /* the channel can be polled by spinning threads (set before it is shared) */
    /* The receiving side: the I/O thread or a poller (see "polling" below), one at a time. Guards the channel's
     * receive calls, authed and zone. Taken before lock, never while holding it. */
    pthread_mutex_t rx_lock;
    _Atomic int pollers;     /* threads registered to poll this connection (decremented under rx_lock) */
    _Atomic bool kick;       /* a poller left frames behind: the I/O thread should drain (see conn_kick) */
    bool authed;             /* inbound: the peer proved the secret */
    msgpack_zone zone;       /* decoding scratch */
    unsigned char nonce[32]; /* inbound: the challenge sent */
    bool in_epoll;           /* I/O thread only */
    bool ready;              /* I/O thread only: on the ready list (not fully drained) */
    struct conn *next;       /* io.conns (io.lock) */
    struct conn *next_ready; /* I/O thread only */
} conn_t;

static struct {
    pthread_once_t once;
    xo_status_t init_st;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int epfd, wakefd;
    pthread_t thread;
    conn_t *conns;           /* every connection and listener not yet closed */
    uint64_t close_gen;      /* bumped each time the I/O thread has processed close requests */
    _Atomic uint64_t poll_gen; /* bumped when the set of connections changes: pollers take a new snapshot */
    _Atomic bool started;    /* the I/O thread runs (pollers have nothing to do before) */
    _Atomic uint64_t next_call_id;
    pthread_mutex_t connect_lock;
    pthread_once_t timers_once;
    xo_timers_t *timers;
    struct sender *senders;  /* every thread's sender cache (io.lock): see "sending requests" */
    struct pauser *pausers;  /* every scheduler thread that has paused (io.lock): see "polling" */
    _Atomic bool pause_watch; /* the I/O thread wakes every pause_wait_ns to look at paused pollers */
    long pause_wait_ns;       /* I/O thread only: POLL_PAUSE_NS while a pause is on, else PAUSE_GRACE_NS */
    pthread_key_t sender_key; /* frees a thread's sender cache when it exits */
    pthread_key_t pause_key;  /* frees a scheduler thread's pauser when it exits */
} io = {.once = PTHREAD_ONCE_INIT, .timers_once = PTHREAD_ONCE_INIT, .connect_lock = PTHREAD_MUTEX_INITIALIZER,
        .pause_wait_ns = POLL_PAUSE_NS};

/* ---- addresses ------------------------------------------------------------------------------------------------ */

typedef struct {
    char host[128];
    unsigned port;
    unsigned index;
} addr_t;

static bool parse_address(const char *address, addr_t *a)
{
    if (!address || strstr(address, "://")) return false;
    const char *colon = strrchr(address, ':');
    if (address[0] == '[') colon = strstr(address, "]:") ? strstr(address, "]:") + 1 : NULL;
    if (!colon || colon == address) return false;
    size_t hlen = (size_t)(colon - address);
    if (hlen >= sizeof a->host) return false;
    memcpy(a->host, address, hlen);
    a->host[hlen] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || port > 65535) return false;
    a->port = (unsigned)port;
    a->index = 0;
    if (*end == '/') {
        char *end2;
        unsigned long idx = strtoul(end + 1, &end2, 10);
        if (end2 == end + 1 || *end2 || idx > 1000000) return false;
        a->index = (unsigned)idx;
    } else if (*end) {
        return false;
    }
    return true;
}

bool xo__remote_address_ok(const char *address)
{
    addr_t a;
    return parse_address(address, &a);
}

/* Same host: a loopback address, this machine's name, or the host part of a pool of this process. */
static bool is_local_host(const char *host)
{
    if (strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
        strcmp(host, "::1") == 0)
        return true;
    char me[256];
    if (gethostname(me, sizeof me) == 0 && strcmp(me, host) == 0) return true;
    return false;
}

/* The name shared by a pool's shm and unix listeners: derived from its address, unique per host. */
static void local_name(const addr_t *a, char *buf, size_t len)
{
    snprintf(buf, len, "xo-%s-%u-%u", a->host, a->port, a->index);
    for (char *p = buf; *p; p++)
        if (*p == '/' || *p == '[' || *p == ']' || *p == ':') *p = '_';
}

/* The URLs to try for a peer, in order. XO_TRANSPORT=shm|unix|tcp picks one. */
/* UCX listeners sit XO_UCX_PORT_OFFSET above the TCP ones: main pool at port + 500, sub pool N at port + 500 + N. */
#define XO_UCX_PORT_OFFSET 500

/* UCX is opt-in (XO_UCX=1, or XO_TRANSPORT=ucx): on the machines we measured, our TCP channel was faster than UCX
 * over its tcp transport (bench notes), and UCX needs RDMA hardware to pay off. */
static bool ucx_enabled(void)
{
    const char *u = getenv("XO_UCX"), *t = getenv("XO_TRANSPORT");
    return (u && strcmp(u, "1") == 0) || (t && strcmp(t, "ucx") == 0);
}

static size_t peer_urls(const addr_t *a, char urls[4][XO_URL_MAX])
{
    const char *force = getenv("XO_TRANSPORT");
    char name[200];
    local_name(a, name, sizeof name);
    size_t n = 0;
    bool local = is_local_host(a->host);
    if (a->port != 0 && xo__transport_find("ucx") && ucx_enabled() && (force ? strcmp(force, "ucx") == 0 : !local))
        snprintf(urls[n++], XO_URL_MAX, "ucx://%s:%u", a->host, a->port + XO_UCX_PORT_OFFSET + a->index);
    if (local && (!force || strcmp(force, "shm") == 0)) snprintf(urls[n++], XO_URL_MAX, "shm://%s", name);
    if (local && (!force || strcmp(force, "unix") == 0)) snprintf(urls[n++], XO_URL_MAX, "unix://@%s.u", name);
    /* Sub pool N of a main pool at port P listens on TCP port P + N (when P is not 0). */
    if ((a->index == 0 || a->port != 0) && (!force || strcmp(force, "tcp") == 0 || !local))
        snprintf(urls[n++], XO_URL_MAX, "tcp://%s:%u", a->host, a->port + a->index);
    return n;
}

/* ---- connections ---------------------------------------------------------------------------------------------- */

static void senders_forget(conn_t *c);

static conn_t *conn_new(conn_kind_t kind)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    atomic_init(&c->refs, 1);
    if (!msgpack_zone_init(&c->zone, 4096)) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->rx_lock, NULL);
    xo__idmap_init(&c->calls);
    return c;
}

static void conn_retain(conn_t *c) { atomic_fetch_add(&c->refs, 1); }

static void conn_release(conn_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    if (c->ch) xo__channel_close(c->ch);
    if (c->listener) xo__listener_close(c->listener);
    xo__idmap_free(&c->calls);
    msgpack_zone_destroy(&c->zone);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->rx_lock);
    free(c->address);
    free(c);
}

static void wake_io(void)
{
    uint64_t one = 1;
    ssize_t n = write(io.wakefd, &one, sizeof one);
    (void)n;
}

/* Links c into io.conns (caller holds io.lock) and tells pollers to take a new snapshot. */
static void link_conn(conn_t *c)
{
    c->pollable = c->ch && xo__channel_has_poll(c->ch);
    c->next = io.conns;
    io.conns = c;
    atomic_fetch_add(&io.poll_gen, 1);
}

/* Hands c (and one ref) to the I/O thread. */
static void io_adopt(conn_t *c)
{
    pthread_mutex_lock(&io.lock);
    link_conn(c);
    pthread_mutex_unlock(&io.lock);
    wake_io();
}

/* ---- replies to requests we serve --------------------------------------------------------------------------- */

typedef struct {
    conn_t *conn;
    uint64_t call_id;
} inflight_t;

static void send_frame(conn_t *c, xo_wire_out_t *w)
{
    xo_frame_t fr = xo__wire_frame(w);
    xo_status_t st = xo__channel_send(c->ch, &fr);
    if (st != XO_OK) xo_log_debug("reply on a closed connection dropped: %s", xo_last_error());
}

static void send_error(conn_t *c, uint64_t call_id, xo_status_t st, const char *text)
{
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    xo__wire_reply(&w, call_id, st, text, NULL, 0);
    send_frame(c, &w);
    xo__wire_out_free(&w);
}

/* on_done of a future standing for a remote caller: runs on the thread that completed it. */
static void reply_done(xo_future_t *f, void *arg)
{
    inflight_t *in = arg;
    conn_t *c = in->conn;
    pthread_mutex_lock(&c->lock);
    xo__idmap_take(&c->calls, in->call_id);
    pthread_mutex_unlock(&c->lock);
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    if (f->n_items || f->item_status) {
        xo__wire_reply_batch(&w, in->call_id, f->status, f->error, f->n_items, f->item_status, f->item_errors,
                            f->item_results);
    } else {
        size_t len = 0;
        const char *bytes = f->result ? xo__result_bytes(f->result, &len) : NULL;
        xo__wire_reply(&w, in->call_id, f->status, f->error, bytes, len);
    }
    send_frame(c, &w);
    xo__wire_out_free(&w);
}

static void inflight_free(void *arg)
{
    inflight_t *in = arg;
    conn_release(in->conn);
    free(in);
}

/* A future whose completion goes back over c as the reply to call_id. The caller owns one ref. */
static xo_future_t *reply_future(conn_t *c, uint64_t call_id)
{
    xo_future_t *f = xo__future_new();
    inflight_t *in = f ? malloc(sizeof *in) : NULL;
    if (!in) {
        xo__future_unref(f);
        return NULL;
    }
    conn_retain(c);
    in->conn = c;
    in->call_id = call_id;
    f->on_done = reply_done;
    f->on_free = inflight_free;
    f->hook_arg = in;
    pthread_mutex_lock(&c->lock);
    xo__idmap_put(&c->calls, call_id, f); /* no ref: reply_done removes it before the message drops its ref */
    pthread_mutex_unlock(&c->lock);
    return f;
}

/* ---- serving requests (I/O thread) -------------------------------------------------------------------------- */

static bool copy_str(xo_str_t s, char *buf, size_t len)
{
    if (!s.ptr || s.len >= len) return false;
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return true;
}

static xo_actor_t *find_actor(conn_t *c, const xo_wire_msg_t *m, char *uid)
{
    if (!copy_str(m->uid, uid, UID_MAX)) {
        send_error(c, m->call_id, XO_EINVAL, "bad or too long uid");
        return NULL;
    }
    xo_actor_t *a = xo__pool_table_lookup(c->pool, uid);
    if (!a) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "no actor \"%s\" at %s", uid, c->pool->address);
        send_error(c, m->call_id, XO_ENOACTOR, text);
    }
    return a;
}

static void serve_call(conn_t *c, const xo_wire_msg_t *m)
{
    char uid[UID_MAX], method[256];
    xo_actor_t *a = find_actor(c, m, uid);
    if (!a) return;
    int index = copy_str(m->method, method, sizeof method) ? xo__class_method_index(a->cls, method) : -1;
    if (index < 0) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "actor \"%.200s\" (class %s) has no method \"%.*s\"", uid, a->cls->name,
                 (int)m->method.len, m->method.ptr ? m->method.ptr : "");
        if (m->want_reply) send_error(c, m->call_id, XO_ENOMETHOD, text);
        xo__actor_release(a);
        return;
    }
    xo_msg_t *msg = calloc(1, sizeof *msg);
    if (msg && m->type == XO_WIRE_BATCH) {
        if (!(a->cls->methods[index].flags & XO_METHOD_EXTENSIBLE)) {
            free(msg);
            send_error(c, m->call_id, XO_EBATCH, "method is not extensible (it cannot be batched)");
            xo__actor_release(a);
            return;
        }
        msg->kind = XO_MSG_BATCH;
        msg->n_calls = m->n_items;
        msg->batch_args = calloc(m->n_items ? m->n_items : 1, sizeof *msg->batch_args);
        for (size_t i = 0; msg->batch_args && i < m->n_items; i++)
            msg->batch_args[i] = xo__args_from_bytes(m->items[i].ptr, m->items[i].len);
    } else if (msg) {
        msg->kind = XO_MSG_CALL;
        msg->args = m->has_payload ? xo__args_from_bytes(m->payload.ptr, m->payload.len) : NULL;
    }
    if (msg) {
        msg->method = (uint32_t)index;
        msg->chain = m->chain;
        if (m->want_reply) msg->reply = reply_future(c, m->call_id);
    }
    if (!msg || (m->want_reply && !msg->reply)) {
        if (msg) xo__msg_free(msg);
        send_error(c, m->call_id, XO_ENOMEM, "out of memory in the target pool");
        xo__actor_release(a);
        return;
    }
    xo__actor_post(a, msg);
    xo__actor_release(a);
}

static void serve_create(conn_t *c, const xo_wire_msg_t *m)
{
    char uid[UID_MAX], cls_name[256];
    if ((m->uid.ptr && !copy_str(m->uid, uid, sizeof uid)) || !copy_str(m->class_name, cls_name, sizeof cls_name)) {
        send_error(c, m->call_id, XO_EINVAL, "bad uid or class name");
        return;
    }
    const xo_actor_class_t *cls = xo__class_find(cls_name);
    if (!cls) {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "no class \"%s\" in pool %s (is its module loaded there?)", cls_name,
                 c->pool->address);
        send_error(c, m->call_id, XO_ENOCLASS, text);
        return;
    }
    xo_future_t *f = reply_future(c, m->call_id);
    xo_args_t *args = m->has_payload ? xo__args_from_bytes(m->payload.ptr, m->payload.len) : NULL;
    if (!f) {
        xo_args_free(args);
        send_error(c, m->call_id, XO_ENOMEM, "out of memory in the target pool");
        return;
    }
    /* Created under the requester's chain, so its after_create may call back into the requester. */
    xo_status_t st = xo__create_start(c->pool, cls, args, m->uid.ptr ? uid : NULL, f);
    if (st != XO_OK) xo__future_complete(f, st, strdup(xo_last_error()), NULL);
    xo__future_unref(f);
}

static void serve_destroy(conn_t *c, const xo_wire_msg_t *m)
{
    char uid[UID_MAX];
    xo_actor_t *a = find_actor(c, m, uid);
    if (!a) return;
    xo_msg_t *msg = calloc(1, sizeof *msg);
    if (msg) {
        msg->kind = XO_MSG_DESTROY;
        msg->chain = m->chain;
        msg->reply = reply_future(c, m->call_id);
    }
    if (!msg || !msg->reply) {
        free(msg);
        send_error(c, m->call_id, XO_ENOMEM, "out of memory in the target pool");
    } else {
        xo__actor_post(a, msg);
    }
    xo__actor_release(a);
}

static void serve_value(conn_t *c, uint64_t call_id, xo_args_t *value)
{
    size_t len;
    const char *data = xo__args_data(value, &len); /* an array of one: skip its header byte */
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    xo__wire_reply(&w, call_id, XO_OK, NULL, data + 1, len - 1);
    send_frame(c, &w);
    xo__wire_out_free(&w);
    xo_args_free(value);
}

/* Requests from other processes that pool has received and not yet answered (queued or running): the sizes of
 * its inbound connections' in-flight maps, which exist for cancellation anyway, so counting costs the call path
 * nothing. Connections are retained under io.lock and counted after it, so io.lock never nests c->lock. */
static uint64_t inbound_in_flight(xo_pool_t *pool)
{
    uint64_t n = 0;
    pthread_mutex_lock(&io.lock);
    size_t k = 0, cap = 0;
    for (conn_t *c = io.conns; c; c = c->next) cap += c->kind == CONN_INBOUND && c->pool == pool;
    conn_t **mine = malloc((cap ? cap : 1) * sizeof *mine); /* ours until released below */
    for (conn_t *c = io.conns; mine && c && k < cap; c = c->next)
        if (c->kind == CONN_INBOUND && c->pool == pool) {
            conn_retain(c);
            mine[k++] = c;
        }
    pthread_mutex_unlock(&io.lock);
    for (size_t i = 0; i < k; i++) {
        pthread_mutex_lock(&mine[i]->lock);
        n += mine[i]->calls.n;
        pthread_mutex_unlock(&mine[i]->lock);
        conn_release(mine[i]);
    }
    free(mine);
    return n;
}

static void serve_query(conn_t *c, const xo_wire_msg_t *m)
{
    char uid[UID_MAX];
    if (m->type == XO_WIRE_INFO) {
        /* The layout is in wire.h (XO_WIRE_INFO); older readers take the first fields and skip the rest. */
        xo_device_mem_info_t mi = {0};
        if (c->pool->device) xo_device_mem_info(c->pool->device, &mi);
        serve_value(c, m->call_id,
                    xo_args("[iuuuuuuu]", (int)getpid(), (uint64_t)xo_pool_actor_count(c->pool), mi.free, mi.total,
                            (uint64_t)xo__pool_user_actor_count(c->pool), inbound_in_flight(c->pool),
                            (uint64_t)xo__pool_busy_threads(c->pool), (uint64_t)c->pool->n_sched));
        return;
    }
    if (!copy_str(m->uid, uid, sizeof uid)) {
        send_error(c, m->call_id, XO_EINVAL, "bad or too long uid");
        return;
    }
    xo_actor_t *a = xo__pool_table_lookup(c->pool, uid);
    bool alive = a && atomic_load(&a->life) != XO_LIFE_DEAD;
    if (a) xo__actor_release(a);
    char elsewhere[256];
    if (m->type == XO_WIRE_HAS) {
        serve_value(c, m->call_id, xo_args("t", (int)alive));
    } else if (alive) {
        serve_value(c, m->call_id, xo_args("s", c->pool->address));
    } else if (c->pool->locate && c->pool->locate(c->pool->locate_arg, uid, elsewhere, sizeof elsewhere)) {
        serve_value(c, m->call_id, xo_args("s", elsewhere)); /* a main pool points into its sub pool */
    } else {
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "no actor \"%.200s\" at %s", uid, c->pool->address);
        send_error(c, m->call_id, XO_ENOACTOR, text);
    }
}

static void serve_cancel(conn_t *c, const xo_wire_msg_t *m)
{
    pthread_mutex_lock(&c->lock);
    xo_future_t *f = xo__idmap_get(&c->calls, m->call_id);
    if (f) xo__future_ref(f);
    pthread_mutex_unlock(&c->lock);
    if (!f) return; /* already answered */
    xo__future_request_cancel(f);
    xo__future_unref(f);
}

static void handle_request(conn_t *c, const xo_wire_msg_t *m)
{
    switch (m->type) {
    case XO_WIRE_CALL:
    case XO_WIRE_BATCH: serve_call(c, m); break;
    case XO_WIRE_CREATE: serve_create(c, m); break;
    case XO_WIRE_DESTROY: serve_destroy(c, m); break;
    case XO_WIRE_HAS:
    case XO_WIRE_LOOKUP:
    case XO_WIRE_INFO: serve_query(c, m); break;
    case XO_WIRE_CANCEL: serve_cancel(c, m); break;
    default: send_error(c, m->call_id, XO_EPROTO, "a reply sent as a request"); break;
    }
}

/* ---- replies to our requests (I/O thread) ------------------------------------------------------------------- */

static char *dup_text(xo_str_t s) { return s.ptr ? strndup(s.ptr, s.len) : NULL; }

static void handle_reply(conn_t *c, const xo_wire_msg_t *m)
{
    pthread_mutex_lock(&c->lock);
    xo_future_t *f = xo__idmap_take(&c->calls, m->call_id);
    pthread_mutex_unlock(&c->lock);
    if (!f) return; /* nobody waits any more (a told call, or the connection was failed) */
    if (m->type == XO_WIRE_REPLY) {
        xo_result_t *r = NULL;
        if (m->status == XO_OK) r = xo__result_from_bytes(m->has_payload ? m->payload.ptr : NULL, m->payload.len);
        xo__future_complete(f, (xo_status_t)m->status, dup_text(m->error), r);
    } else if (m->status != XO_OK) {
        xo__future_complete(f, (xo_status_t)m->status, dup_text(m->error), NULL);
    } else {
        size_t n = m->n_items, nn = n ? n : 1;
        xo_status_t *st = calloc(nn, sizeof *st);
        xo_result_t **rs = calloc(nn, sizeof *rs);
        char **errs = calloc(nn, sizeof *errs);
        if (!st || !rs || !errs) {
            free(st);
            free(rs);
            free(errs);
            xo__future_complete(f, XO_ENOMEM, strdup("out of memory for a batch reply"), NULL);
        } else {
            for (size_t i = 0; i < n; i++) {
                st[i] = (xo_status_t)m->item_status[i];
                errs[i] = dup_text(m->item_error[i]);
                if (st[i] == XO_OK) rs[i] = xo__result_from_bytes(m->item_has[i] ? m->items[i].ptr : NULL,
                                                                 m->items[i].len);
            }
            xo__future_complete_batch(f, n, st, rs, errs);
        }
    }
    xo__future_unref(f); /* the pending map's ref */
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
static void conn_lost(conn_t *c, const char *why)
{
    if (atomic_exchange(&c->dead, true)) return;
    atomic_fetch_add(&io.poll_gen, 1); /* pollers drop it */
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

static void handle_frame(conn_t *c, xo_frame_t *fr)
{
    if (c->kind == CONN_INBOUND && !c->authed) {
        /* Nothing is decoded before the peer has proved the secret. */
        if (xo__auth_check(c->ch, fr, c->nonce) == XO_OK) {
            c->authed = true;
        } else {
            xo_log_warn("pool %s: refusing a connection: %s", c->pool->address, xo_last_error());
            conn_lost(c, "authentication failed");
        }
        xo__frame_release(fr);
        return;
    }
    xo_wire_msg_t m;
    msgpack_zone_clear(&c->zone);
    if (xo__wire_decode(fr, &c->zone, &m) != XO_OK) {
        xo_log_error("dropping a connection that sent a malformed message: %s", xo_last_error());
        conn_lost(c, "malformed message");
    } else if (c->kind == CONN_OUTBOUND) {
        if (m.type == XO_WIRE_REPLY || m.type == XO_WIRE_REPLY_BATCH) handle_reply(c, &m);
        else xo_log_warn("ignoring a request on an outbound connection to %s", c->address);
    } else {
        handle_request(c, &m);
    }
    xo__frame_release(fr);
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
            conn_lost(c, st == XO_ECLOSED ? "connection closed" : xo_last_error());
            return true;
        }
        handle_frame(c, &fr);
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

static void accept_all(conn_t *l)
{
    for (;;) {
        xo_channel_t *ch = NULL;
        xo_status_t st = xo__listener_accept(l->listener, 0, &ch);
        if (st == XO_ETIMEDOUT) return;
        if (st != XO_OK) {
            xo_log_debug("accept on %s failed: %s", xo__listener_url(l->listener), xo_last_error());
            continue; /* a failed handshake; the listener goes on */
        }
        conn_t *c = conn_new(CONN_INBOUND);
        if (!c) {
            xo__channel_close(ch);
            continue;
        }
        c->ch = ch;
        c->pool = l->pool;
        if (xo__auth_challenge(ch, c->nonce) != XO_OK) {
            xo_log_debug("authentication challenge on %s failed: %s", xo__listener_url(l->listener), xo_last_error());
            conn_release(c);
            continue;
        }
        pthread_mutex_lock(&io.lock);
        link_conn(c);
        pthread_mutex_unlock(&io.lock);
        /* registered by the caller's next scan of io.conns */
    }
}

static void unlink_conn(conn_t *c)
{
    for (conn_t **pp = &io.conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* Registers new connections with epoll, and closes the ones asked to close or found dead. */
static void sync_conns(conn_t **ready)
{
    pthread_mutex_lock(&io.lock);
    conn_t *c = io.conns, *gone = NULL;
    while (c) {
        conn_t *next = c->next;
        if (c->closing || atomic_load(&c->dead)) {
            if (c->in_epoll) epoll_ctl(io.epfd, EPOLL_CTL_DEL, c->listener ? xo__listener_fd(c->listener)
                                                                           : xo__channel_fd(c->ch), NULL);
            c->in_epoll = false;
            if (!c->ready) {
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
        } else if (!c->in_epoll) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            int fd = c->listener ? xo__listener_fd(c->listener) : xo__channel_fd(c->ch);
            if (epoll_ctl(io.epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
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
        if (g->kind == CONN_OUTBOUND) senders_forget(g);
    pthread_mutex_unlock(&io.lock);
    while (gone) {
        conn_t *next = gone->next;
        if (gone->kind != CONN_LISTENER) {
            conn_lost(gone, "closed");
            /* A poller may be handling one of its frames: wait for it, so that once unlisten returns no thread
             * serves this pool from this connection (pollers check dead under rx_lock). */
            pthread_mutex_lock(&gone->rx_lock);
            pthread_mutex_unlock(&gone->rx_lock);
        }
        conn_release(gone); /* the I/O thread's ref */
        gone = next;
    }
    /* Only now: unlisten waits for this, and promises that its listeners are closed (their fds with them) and that
     * no poller serves its connections any more. (Bumped before the releases, it let unlisten return while they
     * were still open: a test counting fds after a host stop saw the main pool's three listener sockets.) */
    pthread_mutex_lock(&io.lock);
    io.close_gen++;
    pthread_cond_broadcast(&io.cond);
    pthread_mutex_unlock(&io.lock);
}

enum { PAUSES_NONE, PAUSES_LATELY, PAUSES_ON };
static int pausers_check(void);

/* epoll_wait, with a timeout of io.pause_wait_ns while schedulers pause (none when ready: 0). */
static int io_wait(struct epoll_event *evs, int max, bool ready)
{
    if (ready || !atomic_load(&io.pause_watch)) return epoll_wait(io.epfd, evs, max, ready ? 0 : -1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    static _Atomic bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {io.pause_wait_ns / 1000000000, io.pause_wait_ns % 1000000000};
        int n = epoll_pwait2(io.epfd, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed); /* a kernel before 5.11 */
    }
#endif
    return epoll_wait(io.epfd, evs, max, (int)((io.pause_wait_ns + 999999) / 1000000));
}

static void *io_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "xo-io");
    struct epoll_event evs[64];
    conn_t *ready = NULL;
    unsigned quiet = 0; /* looks at the pausers since one last paused */
    for (;;) {
        int n = io_wait(evs, 64, ready != NULL);
        if (n < 0 && errno != EINTR) {
            xo_log_error("epoll_wait: %s", strerror(errno));
            continue;
        }
        bool sync = false;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                uint64_t v;
                ssize_t r = read(io.wakefd, &v, sizeof v);
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
        if (sync) sync_conns(&ready);
        if (atomic_load(&io.pause_watch)) {
            /* Dekker with xo__remote_poll_pause: off first, then look; a pause we miss sees the watch off. The watch
             * stays on for PAUSE_QUIET_ROUNDS looks after the last pause, so that a pool answering calls one by
             * one (each a pause of a microsecond, rarely on when we look) does not ring us at each; those looks
             * come every PAUSE_GRACE_NS, so that such a pool is not woken 5000 times a second either. */
            atomic_store(&io.pause_watch, false);
            int seen = pausers_check();
            if (seen != PAUSES_NONE) quiet = 0;
            io.pause_wait_ns = seen == PAUSES_ON ? POLL_PAUSE_NS : PAUSE_GRACE_NS;
            if (quiet++ < PAUSE_QUIET_ROUNDS) atomic_store(&io.pause_watch, true);
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
#define POLL_MAX 32    /* connections one thread polls; the I/O thread serves any others */

typedef struct {
    conn_t *conns[POLL_MAX]; /* retained */
    size_t n;
    uint64_t gen;    /* io.poll_gen when taken */
    xo_pool_t *pool; /* the scheduler's pool (its inbound connections), or NULL */
    bool active;
    bool partial;    /* paused: only the pool's inbound connections are held (the next poll takes the rest again) */
    bool busy;       /* inside poll or stop: a frame handler that waits must not re-enter */
    struct pauser *pz; /* created at the first pause */
} poller_t;

static _Thread_local poller_t tls_poller;

/* A poller stopped with frames left (budget spent, or an error to report): the I/O thread takes over. */
static void conn_kick(conn_t *c)
{
    atomic_store(&c->kick, true);
    wake_io();
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
static void poll_unregister(conn_t *c)
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
        poll_unregister(p->conns[i]);
        conn_release(p->conns[i]);
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
    pthread_mutex_lock(&io.lock);
    p->gen = atomic_load(&io.poll_gen);
    for (conn_t *c = io.conns; c && p->n < POLL_MAX; c = c->next)
        if (wants(c, pool)) {
            conn_retain(c);
            p->conns[p->n++] = c;
        }
    pthread_mutex_unlock(&io.lock);
    p->pool = pool;
    p->active = true;
    p->partial = false;
    for (size_t i = 0; i < p->n; i++) {
        bool held = false;
        for (size_t j = 0; j < n_old && !held; j++)
            if (old[j] == p->conns[i]) {
                held = true;
                old[j] = NULL;
                conn_release(p->conns[i]); /* the old snapshot's ref: the new one holds its own */
            }
        if (!held) poll_register(p->conns[i]);
    }
    for (size_t j = 0; j < n_old; j++)
        if (old[j]) {
            poll_unregister(old[j]);
            conn_release(old[j]);
        }
}

/* ---- pausing: a scheduler that leaves to run work it found ----
 *
 * A scheduler that took frames goes to run them and will be back to poll within microseconds. Were it to unregister
 * (the frames still waiting go to the I/O thread, and the next one rings it), the I/O thread would take the rest of
 * a stream of tells at the same time, fighting it over rx_lock and malloc's arena (measured: 8 B tells ran at half
 * the rate, 1 KiB ones at a quarter). So it pauses instead: it stays registered with its pool's inbound connections
 * (requests for its pool, which only its pool's schedulers run anyway) and lets go of the rest at once (replies,
 * which other threads wait for). If it is not back within POLL_PAUSE_NS, the I/O thread takes its registrations
 * over and unregisters them (arming the wake-up, handing waiting frames over). The I/O thread looks every 0.2 ms
 * while a pause is on and every 1 ms for a while after the last one, so a frame waits about a millisecond at most
 * behind a scheduler that runs something long. Not used when another scheduler of the pool sleeps: a request must
 * wake that one at once. */
enum { PAUSE_NONE = 0, PAUSE_ON, PAUSE_TAKING, PAUSE_TAKEN };

typedef struct pauser {
    _Atomic int state;         /* NONE -> ON (owner) -> NONE (owner resumes) or TAKING -> TAKEN (I/O thread) */
    _Atomic uint64_t deadline; /* ns (xo__now_ns) after which the I/O thread takes over */
    _Atomic uint64_t count;    /* pauses so far (owner) */
    uint64_t seen;             /* count at the I/O thread's last look (I/O thread only) */
    poller_t *p;               /* the owner's poller: the I/O thread reads it between TAKING and TAKEN only */
    struct pauser *next;       /* io.pausers (io.lock) */
} pauser_t;

/* Owner: ends a pause. When the I/O thread took the registrations over, the refs it left are dropped. */
static void poll_resume(poller_t *p)
{
    pauser_t *z = p->pz;
    if (!z || atomic_load_explicit(&z->state, memory_order_relaxed) == PAUSE_NONE) return;
    int expected = PAUSE_ON;
    if (atomic_compare_exchange_strong(&z->state, &expected, PAUSE_NONE)) return; /* still ours */
    while (atomic_load_explicit(&z->state, memory_order_acquire) != PAUSE_TAKEN) xo_cpu_relax();
    for (size_t i = 0; i < p->n; i++) conn_release(p->conns[i]);
    p->n = 0;
    p->active = false;
    p->partial = false;
    atomic_store_explicit(&z->state, PAUSE_NONE, memory_order_relaxed);
}

/* I/O thread: takes over the registrations of pausers whose time is up. PAUSES_ON while a pause is still on,
 * PAUSES_LATELY when a thread paused since the last look. */
static int pausers_check(void)
{
    pauser_t *due[64];
    size_t n_due = 0;
    bool any_on = false, lately = false;
    uint64_t now = xo__now_ns();
    pthread_mutex_lock(&io.lock);
    for (pauser_t *z = io.pausers; z; z = z->next) {
        uint64_t count = atomic_load_explicit(&z->count, memory_order_relaxed);
        if (count != z->seen) lately = true;
        z->seen = count;
        if (atomic_load(&z->state) != PAUSE_ON) continue;
        int expected = PAUSE_ON;
        if (n_due < 64 && atomic_load(&z->deadline) <= now &&
            atomic_compare_exchange_strong(&z->state, &expected, PAUSE_TAKING))
            due[n_due++] = z; /* its owner waits for TAKEN before it touches its poller or exits */
        else if (expected == PAUSE_ON)
            any_on = true;
    }
    pthread_mutex_unlock(&io.lock);
    for (size_t i = 0; i < n_due; i++) {
        poller_t *p = due[i]->p;
        for (size_t k = 0; k < p->n; k++) poll_unregister(p->conns[k]);
        atomic_store_explicit(&due[i]->state, PAUSE_TAKEN, memory_order_release);
    }
    return any_on ? PAUSES_ON : lately ? PAUSES_LATELY : PAUSES_NONE;
}

/* pthread key destructor of a scheduler thread that paused: it exits. */
static void pauser_exit(void *arg)
{
    pauser_t *z = arg;
    pthread_mutex_lock(&io.lock);
    for (pauser_t **pp = &io.pausers; *pp; pp = &(*pp)->next)
        if (*pp == z) {
            *pp = z->next;
            break;
        }
    pthread_mutex_unlock(&io.lock);
    poll_resume(z->p); /* normally a no-op: the thread stopped polling before it exited */
    z->p->pz = NULL;
    free(z);
}

static bool pool_has_sleeper(xo_pool_t *pool)
{
    xo_sched_t *me = xo__sched_current();
    for (unsigned i = 0; i < pool->n_sched; i++)
        if (&pool->sched[i] != me && atomic_load_explicit(&pool->sched[i].sleeping, memory_order_relaxed))
            return true;
    return false;
}

void xo__remote_poll_pause(void)
{
    poller_t *p = &tls_poller;
    if (p->busy) return;
    if (p->pz && atomic_load(&p->pz->state) != PAUSE_NONE) {
        /* Not back to poll since the last pause (it found more work at once): that pause's deadline stands, so a
         * scheduler that never runs dry cannot hold its connections forever. Taken over: drop what is left. */
        if (atomic_load(&p->pz->state) != PAUSE_ON) poll_resume(p);
        return;
    }
    if (!p->active) return;
    if (!p->pool || !p->pz || pool_has_sleeper(p->pool)) {
        if (p->pool && !p->pz) { /* the first pause of this thread: make its pauser */
            pauser_t *z = calloc(1, sizeof *z);
            if (z && pthread_setspecific(io.pause_key, z) == 0) {
                z->p = p;
                pthread_mutex_lock(&io.lock);
                z->next = io.pausers;
                io.pausers = z;
                pthread_mutex_unlock(&io.lock);
                p->pz = z;
            } else {
                free(z);
            }
        }
        if (!p->pz || pool_has_sleeper(p->pool)) {
            xo__remote_poll_stop();
            return;
        }
    }
    p->busy = true;
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++) {
        conn_t *c = p->conns[i];
        if (c->kind == CONN_INBOUND) {
            p->conns[k++] = c;
        } else {
            poll_unregister(c);
            conn_release(c);
        }
    }
    p->n = k;
    p->partial = true;
    if (k) {
        atomic_store(&p->pz->deadline, xo__now_ns() + POLL_PAUSE_NS);
        atomic_store_explicit(&p->pz->count, atomic_load_explicit(&p->pz->count, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        /* Dekker with the I/O thread's pausers_check after it clears pause_watch: it sees us ON, or we see the
         * watch off and wake it. */
        atomic_store(&p->pz->state, PAUSE_ON);
        if (!atomic_load(&io.pause_watch) && !atomic_exchange(&io.pause_watch, true)) wake_io();
    } else {
        p->active = false;
        p->partial = false;
    }
    p->busy = false;
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
            conn_lost(c, st == XO_ECLOSED ? "connection closed" : xo_last_error());
            ok = false;
            break;
        }
        bytes += xo__frame_size(&fr);
        handle_frame(c, &fr);
        took = true;
    }
    pthread_mutex_unlock(&c->rx_lock);
    if (!ok) conn_kick(c); /* the I/O thread unregisters it */
    return took;
}

bool xo__remote_poll(xo_pool_t *pool)
{
    poller_t *p = &tls_poller;
    if (p->busy || !atomic_load_explicit(&io.started, memory_order_acquire)) return false;
    p->busy = true;
    poll_resume(p);
    if (!p->active || p->partial || p->pool != pool ||
        atomic_load_explicit(&io.poll_gen, memory_order_relaxed) != p->gen)
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
    poll_resume(p);
    if (!p->active) return;
    p->busy = true;
    poll_release_all(p);
    p->busy = false;
}

static void sender_exit(void *arg);

static void io_init(void)
{
    pthread_mutex_init(&io.lock, NULL);
    pthread_cond_init(&io.cond, NULL);
    io.epfd = epoll_create1(EPOLL_CLOEXEC);
    io.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io.epfd < 0 || io.wakefd < 0) {
        io.init_st = xo__error_set(XO_ESYS, "cannot create the I/O thread's epoll: %s", strerror(errno));
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(io.epfd, EPOLL_CTL_ADD, io.wakefd, &ev);
    int krc = pthread_key_create(&io.sender_key, sender_exit);
    if (krc == 0) krc = pthread_key_create(&io.pause_key, pauser_exit);
    if (krc != 0) {
        io.init_st = xo__error_set(XO_ESYS, "cannot create the I/O thread's thread keys: %s", strerror(krc));
        return;
    }
    uint64_t seed = (uint64_t)getpid() << 40;
    atomic_store(&io.next_call_id, seed);
    int rc = pthread_create(&io.thread, NULL, io_main, NULL);
    if (rc != 0) {
        io.init_st = xo__error_set(XO_ESYS, "cannot start the I/O thread: %s", strerror(rc));
        return;
    }
    pthread_detach(io.thread); /* lives as long as the process */
    io.init_st = XO_OK;
    atomic_store_explicit(&io.started, true, memory_order_release);
}

static xo_status_t io_start(void)
{
    pthread_once(&io.once, io_init);
    return io.init_st;
}

static void timers_init(void)
{
    if (xo__timers_start(&io.timers, "xo-rtimer") != XO_OK) io.timers = NULL;
}

xo_timers_t *xo__remote_timers(void)
{
    pthread_once(&io.timers_once, timers_init);
    return io.timers;
}

/* ---- listening ------------------------------------------------------------------------------------------------ */

/* Hands listener l (consumed) to the I/O thread, serving pool. */
static xo_status_t adopt_listener(xo_pool_t *pool, xo_listener_t *l)
{
    conn_t *c = conn_new(CONN_LISTENER);
    if (!c) {
        xo__listener_close(l);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    c->listener = l;
    c->pool = pool;
    io_adopt(c);
    return XO_OK;
}

static xo_status_t add_listener(xo_pool_t *pool, const char *url)
{
    xo_listener_t *l = NULL;
    xo_status_t st = xo__listen(url, NULL, &l);
    return st == XO_OK ? adopt_listener(pool, l) : st;
}

/* The host part network listeners bind: the pool's own host, or with XO_LISTEN_ANY=1 every interface ("0.0.0.0",
 * "[::]" for an IPv6 address) while the pool keeps its address as the one it advertises (NAT, several interfaces,
 * containers). */
static const char *bind_host(const addr_t *a)
{
    const char *any = getenv("XO_LISTEN_ANY");
    if (!any || strcmp(any, "1") != 0) return a->host;
    return a->host[0] == '[' ? "[::]" : "0.0.0.0";
}

xo_status_t xo__remote_listen(xo_pool_t *pool)
{
    addr_t a;
    if (!parse_address(pool->address, &a))
        return xo__error_set(XO_EINVAL, "bad pool address \"%s\" (expected host:port or host:port/N)", pool->address);
    xo_status_t st = io_start();
    if (st != XO_OK) return st;
    char url[XO_URL_MAX];
    if (a.index == 0) {
        snprintf(url, sizeof url, "tcp://%s:%u", bind_host(&a), a.port);
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
    if (a.index > 0 && a.port != 0) {
        /* Best effort: other hosts reach this sub pool over TCP at port + index; on this host shm and unix do. */
        snprintf(url, sizeof url, "tcp://%s:%u", bind_host(&a), a.port + a.index);
        if (add_listener(pool, url) != XO_OK)
            xo_log_warn("sub pool %s: no TCP listener (%s); only this host can reach it", pool->address,
                        xo_last_error());
    }
    if (a.port != 0 && ucx_enabled() && xo__transport_find("ucx")) {
        snprintf(url, sizeof url, "ucx://%s:%u", bind_host(&a), a.port + XO_UCX_PORT_OFFSET + a.index);
        if (add_listener(pool, url) != XO_OK)
            xo_log_warn("pool %s: no UCX listener (%s)", pool->address, xo_last_error());
    }
    char name[200];
    local_name(&a, name, sizeof name);
    snprintf(url, sizeof url, "shm://%s", name);
    st = add_listener(pool, url);
    if (st == XO_OK) {
        snprintf(url, sizeof url, "unix://@%s.u", name);
        st = add_listener(pool, url);
    }
    if (st != XO_OK) xo__remote_unlisten(pool);
    return st;
}

void xo__remote_unlisten(xo_pool_t *pool)
{
    if (io_start() != XO_OK) return;
    pthread_mutex_lock(&io.lock);
    bool any = false;
    for (conn_t *c = io.conns; c; c = c->next)
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
        for (conn_t *c = io.conns; c && !any; c = c->next)
            any = c->pool == pool && (c->kind == CONN_LISTENER || c->kind == CONN_INBOUND);
        uint64_t gen = io.close_gen;
        wake_io();
        while (io.close_gen == gen) pthread_cond_wait(&io.cond, &io.lock);
    }
    pthread_mutex_unlock(&io.lock);
}

/* ---- sending requests ----------------------------------------------------------------------------------------- */

static conn_t *find_peer(const char *address)
{
    for (conn_t *c = io.conns; c; c = c->next)
        if (c->kind == CONN_OUTBOUND && !c->closing && !atomic_load(&c->dead) && strcmp(c->address, address) == 0) {
            conn_retain(c);
            return c;
        }
    return NULL;
}

const char *xo__remote_path(const char *address)
{
    if (xo__pool_find(address)) return "inproc";
    if (!atomic_load(&io.started)) return NULL;
    pthread_mutex_lock(&io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&io.lock);
    if (!c) return NULL;
    const char *scheme = c->ch ? xo__channel_scheme(c->ch) : NULL;
    conn_release(c);
    return scheme;
}

static xo_status_t peer_get(const char *address, conn_t **c_p)
{
    addr_t a;
    if (!parse_address(address, &a))
        return xo__error_set(XO_EUNREACHABLE, "\"%s\" is not a pool address (host:port or host:port/N)", address);
    xo_status_t st = io_start();
    if (st != XO_OK) return st;
    pthread_mutex_lock(&io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&io.lock);
    if (c) {
        *c_p = c;
        return XO_OK;
    }
    /* One connect at a time per process: two callers of a new peer share one connection. */
    pthread_mutex_lock(&io.connect_lock);
    pthread_mutex_lock(&io.lock);
    c = find_peer(address);
    pthread_mutex_unlock(&io.lock);
    if (c) {
        pthread_mutex_unlock(&io.connect_lock);
        *c_p = c;
        return XO_OK;
    }
    char urls[4][XO_URL_MAX];
    size_t n = peer_urls(&a, urls);
    xo_channel_t *ch = NULL;
    char last[XO_ERROR_TEXT_MAX] = "no transport reaches it from here";
    for (size_t i = 0; i < n && !ch; i++) {
        if (xo__connect(urls[i], NULL, CONNECT_TIMEOUT_MS, &ch) != XO_OK) {
            snprintf(last, sizeof last, "%s: %s", urls[i], xo_last_error());
            ch = NULL;
        } else if ((st = xo__auth_connect(ch)) != XO_OK) {
            char why[XO_ERROR_TEXT_MAX];
            snprintf(why, sizeof why, "%s", xo_last_error());
            xo__channel_close(ch);
            pthread_mutex_unlock(&io.connect_lock);
            return xo__error_set(st == XO_EAUTH ? XO_EAUTH : XO_EUNREACHABLE, "cannot reach pool %s: %s via %s", address,
                                why, urls[i]);
        }
    }
    if (!ch) {
        pthread_mutex_unlock(&io.connect_lock);
        return xo__error_set(XO_EUNREACHABLE, "cannot reach pool %s (%s)", address, last);
    }
    c = conn_new(CONN_OUTBOUND);
    char *addr_copy = c ? strdup(address) : NULL;
    if (!addr_copy) {
        if (c) conn_release(c);
        xo__channel_close(ch);
        pthread_mutex_unlock(&io.connect_lock);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    c->ch = ch;
    c->address = addr_copy;
    conn_retain(c); /* one for the I/O thread, one for the caller */
    io_adopt(c);
    pthread_mutex_unlock(&io.connect_lock);
    *c_p = c;
    return XO_OK;
}

typedef struct {
    conn_t *conn;
    uint64_t call_id;
} pending_t;

static void cancel_remote(xo_future_t *f, void *arg)
{
    pending_t *p = arg;
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    xo__wire_simple(&w, XO_WIRE_CANCEL, p->call_id, 0, NULL);
    if (!atomic_load(&p->conn->dead)) send_frame(p->conn, &w);
    xo__wire_out_free(&w);
}

static void pending_free(void *arg)
{
    pending_t *p = arg;
    conn_release(p->conn);
    free(p);
}

/* Registers a pending reply for call_id on c: a future with one ref for the caller and one for the map. */
static xo_status_t pending_new(conn_t *c, uint64_t call_id, xo_future_t **f_p)
{
    xo_future_t *f = xo__future_new();
    pending_t *p = f ? malloc(sizeof *p) : NULL;
    if (!p) {
        xo__future_unref(f);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    conn_retain(c);
    p->conn = c;
    p->call_id = call_id;
    f->on_cancel = cancel_remote;
    f->on_free = pending_free;
    f->hook_arg = p;
    xo__future_ref(f);
    pthread_mutex_lock(&c->lock);
    bool ok = !atomic_load(&c->dead) && xo__idmap_put(&c->calls, call_id, f);
    pthread_mutex_unlock(&c->lock);
    if (!ok) {
        xo__future_unref(f);
        xo__future_unref(f);
        return xo__error_set(XO_EPOOLDIED, "pool %s died: connection lost", c->address);
    }
    *f_p = f;
    return XO_OK;
}

static xo_status_t send_request(conn_t *c, xo_wire_out_t *w, uint64_t call_id, xo_future_t *f)
{
    xo_frame_t fr = xo__wire_frame(w);
    xo_status_t st = xo__channel_send(c->ch, &fr);
    if (st == XO_OK) return XO_OK;
    st = xo__error_set(st == XO_EMSGSIZE ? XO_EMSGSIZE : XO_EPOOLDIED, "cannot send to pool %s: %s", c->address,
                      xo_last_error());
    if (f) {
        pthread_mutex_lock(&c->lock);
        xo_future_t *mine = xo__idmap_take(&c->calls, call_id);
        pthread_mutex_unlock(&c->lock);
        if (mine) xo__future_unref(mine);
    }
    return st;
}

/* Each thread that sends keeps the connection it last sent on (one ref) and its header buffer, so that a stream of
 * tells to one pool neither looks the peer up under io.lock (nor parses its address) nor allocates a header per
 * message. The ref must not keep a dead connection (and its fds) alive after the thread stops sending: the cache is
 * listed in io.senders, and when the I/O thread lets a dead outbound connection go (sync_conns) it takes it out of
 * every cache. The slot is a pointer that whoever uses it takes by exchange: the owner while it sends, the I/O
 * thread (under io.lock) to drop a dead connection; so exactly one of them holds the ref at a time. */
#define SENDER_BUF_KEEP ((size_t)64 << 10) /* larger header buffers are freed after the send */

typedef struct sender {
    _Atomic(conn_t *) conn; /* the ref, or NULL while the owner uses it */
    xo_buf_t hdr;           /* owner only */
    struct sender *next;    /* io.senders (io.lock) */
} sender_t;

static _Thread_local sender_t *tls_sender;

/* io.lock held: drops c (dead) from every thread's cache. */
static void senders_forget(conn_t *c)
{
    for (sender_t *s = io.senders; s; s = s->next) {
        conn_t *expected = c;
        if (atomic_compare_exchange_strong(&s->conn, &expected, NULL)) conn_release(c);
    }
}

/* pthread key destructor: the thread exits. */
static void sender_exit(void *arg)
{
    sender_t *s = arg;
    if (tls_sender == s) tls_sender = NULL; /* a later key destructor that sends gets a new one */
    pthread_mutex_lock(&io.lock);
    for (sender_t **pp = &io.senders; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&io.lock);
    conn_t *c = atomic_exchange(&s->conn, NULL);
    if (c) conn_release(c);
    xo__buf_free(&s->hdr);
    free(s);
}

/* The calling thread's cache, created on first use (io started). NULL when out of memory: callers do without. */
static sender_t *sender_get(void)
{
    if (tls_sender) return tls_sender;
    sender_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_setspecific(io.sender_key, s) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&io.lock);
    s->next = io.senders;
    io.senders = s;
    pthread_mutex_unlock(&io.lock);
    tls_sender = s;
    return s;
}

/* The connection to address with one ref for the caller: the thread's cached one when it is still alive, else
 * peer_get's. */
static xo_status_t sender_peer(sender_t *s, const char *address, conn_t **c_p)
{
    conn_t *c = s ? atomic_exchange(&s->conn, NULL) : NULL;
    if (c && !atomic_load(&c->dead) && strcmp(c->address, address) == 0) {
        *c_p = c;
        return XO_OK;
    }
    if (c) conn_release(c);
    return peer_get(address, c_p);
}

/* Hands the caller's ref on c back to the cache (or drops it). A connection found dead afterwards is dropped here,
 * since the I/O thread may have looked for it while we held it (see senders_forget). */
static void sender_keep(sender_t *s, conn_t *c)
{
    if (!s) {
        conn_release(c);
        return;
    }
    atomic_store(&s->conn, c);
    if (atomic_load(&c->dead) && (c = atomic_exchange(&s->conn, NULL)) != NULL) conn_release(c);
}

/* Starts w on the thread's kept header buffer (empty, its capacity reused). */
static void sender_out_init(sender_t *s, xo_wire_out_t *w)
{
    xo__wire_out_init(w);
    if (!s) return;
    w->header = s->hdr; /* moved: a nested send on this thread would find it empty and allocate its own */
    w->header.size = 0;
    s->hdr = (xo_buf_t){0};
}

static void sender_out_free(sender_t *s, xo_wire_out_t *w)
{
    if (s && !s->hdr.data && w->header.cap <= SENDER_BUF_KEEP) s->hdr = w->header;
    else xo__wire_out_free(w);
}

xo_status_t xo__remote_send(const char *address, int type, uint64_t chain, const char *uid, const char *name,
                           xo_args_t *args, bool want_reply, xo_future_t **f_p)
{
    xo_status_t st = io_start();
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    sender_t *snd = sender_get();
    conn_t *c = NULL;
    st = sender_peer(snd, address, &c);
    if (st != XO_OK) {
        xo_args_free(args);
        return st;
    }
    uint64_t id = atomic_fetch_add(&io.next_call_id, 1) + 1;
    xo_future_t *f = NULL;
    if (want_reply) {
        st = pending_new(c, id, &f);
        if (st != XO_OK) {
            xo_args_free(args);
            sender_keep(snd, c);
            return st;
        }
    }
    size_t len = 0;
    const char *data = args ? xo__args_data(args, &len) : NULL;
    xo_wire_out_t w;
    sender_out_init(snd, &w);
    switch (type) {
    case XO_WIRE_CALL: st = xo__wire_call(&w, id, chain, want_reply, uid, name, data, len); break;
    case XO_WIRE_CREATE: st = xo__wire_create(&w, id, chain, uid, name, data, len); break;
    default: st = xo__wire_simple(&w, type, id, chain, uid); break;
    }
    if (st == XO_OK) st = send_request(c, &w, id, f);
    sender_out_free(snd, &w);
    xo_args_free(args);
    sender_keep(snd, c);
    if (st != XO_OK) {
        xo__future_unref(f);
        return st;
    }
    if (f_p) *f_p = f;
    else xo__future_unref(f);
    return XO_OK;
}

xo_status_t xo__remote_send_batch(const char *address, uint64_t chain, const char *uid, const char *method, size_t n,
                                 xo_args_t **args, xo_future_t **f_p)
{
    conn_t *c = NULL;
    const void **data = calloc(n ? n : 1, sizeof *data);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    xo_status_t st = (data && lens) ? peer_get(address, &c) : xo__error_set(XO_ENOMEM, "out of memory");
    uint64_t id = atomic_fetch_add(&io.next_call_id, 1) + 1;
    xo_future_t *f = NULL;
    if (st == XO_OK) st = pending_new(c, id, &f);
    if (st == XO_OK) {
        for (size_t i = 0; i < n; i++) data[i] = xo__args_data(args[i], &lens[i]);
        xo_wire_out_t w;
        xo__wire_out_init(&w);
        st = xo__wire_batch(&w, id, chain, uid, method, n, data, lens);
        if (st == XO_OK) st = send_request(c, &w, id, f);
        xo__wire_out_free(&w);
    }
    for (size_t i = 0; i < n; i++) xo_args_free(args[i]);
    free(data);
    free(lens);
    if (c) conn_release(c);
    if (st != XO_OK) {
        xo__future_unref(f);
        return st;
    }
    *f_p = f;
    return XO_OK;
}

void xo__remote_peer_died(const char *address, const char *why)
{
    if (io_start() != XO_OK) return;
    pthread_mutex_lock(&io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&io.lock);
    if (!c) return;
    conn_lost(c, why);
    /* The I/O thread unregisters it and lets it go; pollers and senders' caches drop it too. Wait for them (briefly:
     * each only has to notice), so that the last reference is ours and the connection's fds are closed when this
     * returns: a host's stop promises nothing left behind, and a test counting fds after it saw three still open. */
    for (int i = 0; i < 200 && atomic_load(&c->refs) > 1; i++) {
        wake_io();
        usleep(1000);
    }
    conn_release(c);
}
