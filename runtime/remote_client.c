/* Requests to pools in other processes: connecting, sending, the senders' cache, and the replies. See
 * remote_impl.h. */
#include "runtime/remote_impl.h"

#include <unistd.h>

#include "runtime/auth.h"

#define CONNECT_TIMEOUT_MS 3000

/* ---- replies to our requests (I/O thread) ------------------------------------------------------------------- */

static char *dup_text(xo_str_t s) { return s.ptr ? strndup(s.ptr, s.len) : NULL; }

void xo__client_reply(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l)
{
    pthread_mutex_lock(&c->lock);
    xo_future_t *f = xo__idmap_take(&c->calls, m->call_id);
    pthread_mutex_unlock(&c->lock);
    if (!f) return; /* nobody waits any more (a told call, or the connection was failed) */
    if (m->type == XO_WIRE_REPLY) {
        xo_result_t *r = NULL;
        if (m->status == XO_OK) r = xo__lend_result(l, m->has_payload ? m->payload : (xo_bytes_t){0});
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
                if (st[i] == XO_OK) rs[i] = xo__lend_result(l, m->item_has[i] ? m->items[i] : (xo_bytes_t){0});
            }
            xo__future_complete_batch(f, n, st, rs, errs);
        }
    }
    xo__future_unref(f); /* the pending map's ref */
}

/* ---- sending requests ----------------------------------------------------------------------------------------- */

static conn_t *find_peer(const char *address)
{
    for (conn_t *c = xo__io.conns; c; c = c->next)
        if (c->kind == CONN_OUTBOUND && !c->closing && !atomic_load(&c->dead) && strcmp(c->address, address) == 0) {
            xo__conn_retain(c);
            return c;
        }
    return NULL;
}

const char *xo__remote_path(const char *address)
{
    if (xo__pool_find(address)) return "inproc";
    if (!atomic_load(&xo__io.started)) return NULL;
    pthread_mutex_lock(&xo__io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&xo__io.lock);
    if (!c) return NULL;
    const char *scheme = c->ch ? xo__channel_scheme(c->ch) : NULL;
    xo__conn_release(c);
    return scheme;
}

static xo_status_t peer_get(const char *address, conn_t **c_p)
{
    xo_pool_addr_t a;
    if (!xo__pool_addr_parse(address, &a))
        return xo__error_set(XO_EUNREACHABLE, "\"%s\" is not a pool address (host:port or host:port/N)", address);
    xo_status_t st = xo__io_start();
    if (st != XO_OK) return st;
    pthread_mutex_lock(&xo__io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&xo__io.lock);
    if (c) {
        *c_p = c;
        return XO_OK;
    }
    /* One connect at a time per process: two callers of a new peer share one connection. */
    pthread_mutex_lock(&xo__io.connect_lock);
    pthread_mutex_lock(&xo__io.lock);
    c = find_peer(address);
    pthread_mutex_unlock(&xo__io.lock);
    if (c) {
        pthread_mutex_unlock(&xo__io.connect_lock);
        *c_p = c;
        return XO_OK;
    }
    char urls[XO_ROUTE_MAX][XO_URL_MAX];
    size_t n = xo__route_connect(&a, urls, XO_ROUTE_MAX);
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
            pthread_mutex_unlock(&xo__io.connect_lock);
            return xo__error_set(st == XO_EAUTH ? XO_EAUTH : XO_EUNREACHABLE, "cannot reach pool %s: %s via %s", address,
                                why, urls[i]);
        }
    }
    if (!ch) {
        pthread_mutex_unlock(&xo__io.connect_lock);
        return xo__error_set(XO_EUNREACHABLE, "cannot reach pool %s (%s)", address, last);
    }
    c = xo__conn_new(CONN_OUTBOUND);
    char *addr_copy = c ? strdup(address) : NULL;
    if (!addr_copy) {
        if (c) xo__conn_release(c);
        xo__channel_close(ch);
        pthread_mutex_unlock(&xo__io.connect_lock);
        return xo__error_set(XO_ENOMEM, "out of memory");
    }
    c->ch = ch;
    c->address = addr_copy;
    xo__conn_retain(c); /* one for the I/O thread, one for the caller */
    xo__io_adopt(c);
    pthread_mutex_unlock(&xo__io.connect_lock);
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
    if (!atomic_load(&p->conn->dead)) xo__conn_send(p->conn, &w);
    xo__wire_out_free(&w);
}

static void pending_free(void *arg)
{
    pending_t *p = arg;
    xo__conn_release(p->conn);
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
    xo__conn_retain(c);
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
 * tells to one pool neither looks the peer up under xo__io.lock (nor parses its address) nor allocates a header per
 * message. The ref must not keep a dead connection (and its fds) alive after the thread stops sending: the cache is
 * listed in xo__io.senders, and when the I/O thread lets a dead outbound connection go (sync_conns) it takes it out of
 * every cache. The slot is a pointer that whoever uses it takes by exchange: the owner while it sends, the I/O
 * thread (under xo__io.lock) to drop a dead connection; so exactly one of them holds the ref at a time. */
#define SENDER_BUF_KEEP ((size_t)64 << 10) /* larger header buffers are freed after the send */

typedef struct sender {
    _Atomic(conn_t *) conn; /* the ref, or NULL while the owner uses it */
    xo_buf_t hdr;           /* owner only */
    struct sender *next;    /* xo__io.senders (xo__io.lock) */
} sender_t;

static _Thread_local sender_t *tls_sender;

/* xo__io.lock held: drops c (dead) from every thread's cache. */
void xo__senders_forget(conn_t *c)
{
    for (sender_t *s = xo__io.senders; s; s = s->next) {
        conn_t *expected = c;
        if (atomic_compare_exchange_strong(&s->conn, &expected, NULL)) xo__conn_release(c);
    }
}

/* pthread key destructor: the thread exits. */
void xo__sender_exit(void *arg)
{
    sender_t *s = arg;
    if (tls_sender == s) tls_sender = NULL; /* a later key destructor that sends gets a new one */
    pthread_mutex_lock(&xo__io.lock);
    for (sender_t **pp = &xo__io.senders; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&xo__io.lock);
    conn_t *c = atomic_exchange(&s->conn, NULL);
    if (c) xo__conn_release(c);
    xo__buf_free(&s->hdr);
    free(s);
}

/* The calling thread's cache, created on first use (io started). NULL when out of memory: callers do without. */
static sender_t *sender_get(void)
{
    if (tls_sender) return tls_sender;
    sender_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_setspecific(xo__io.sender_key, s) != 0) {
        free(s);
        return NULL;
    }
    pthread_mutex_lock(&xo__io.lock);
    s->next = xo__io.senders;
    xo__io.senders = s;
    pthread_mutex_unlock(&xo__io.lock);
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
    if (c) xo__conn_release(c);
    return peer_get(address, c_p);
}

/* Hands the caller's ref on c back to the cache (or drops it). A connection found dead afterwards is dropped here,
 * since the I/O thread may have looked for it while we held it (see xo__senders_forget). */
static void sender_keep(sender_t *s, conn_t *c)
{
    if (!s) {
        xo__conn_release(c);
        return;
    }
    atomic_store(&s->conn, c);
    if (atomic_load(&c->dead) && (c = atomic_exchange(&s->conn, NULL)) != NULL) xo__conn_release(c);
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
    xo_status_t st = xo__io_start();
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
    uint64_t id = atomic_fetch_add(&xo__io.next_call_id, 1) + 1;
    xo_future_t *f = NULL;
    if (want_reply) {
        st = pending_new(c, id, &f);
        if (st != XO_OK) {
            xo_args_free(args);
            sender_keep(snd, c);
            return st;
        }
    }
    /* Lent binaries ('B') go out as pieces of the arguments' segment, gathered by the channel where it copies
     * anyway (into the shm segment, into the socket): the caller's bytes are copied once, here, before we return. */
    xo_seg_t pieces[2 * XO_ARGS_MAX_LENT + 1];
    size_t np = type == XO_WIRE_CALL ? xo__args_pieces(args, pieces, sizeof pieces / sizeof pieces[0]) : 0;
    if (!np && args && args->n_lent && (st = xo__args_settle(args)) != XO_OK) { /* args freed */
        if (f) {
            pthread_mutex_lock(&c->lock);
            xo_future_t *mine = xo__idmap_take(&c->calls, id); /* the map's ref */
            pthread_mutex_unlock(&c->lock);
            if (mine) xo__future_unref(mine);
        }
        xo__future_unref(f);
        sender_keep(snd, c);
        return st;
    }
    size_t len = 0, total = 0;
    for (size_t i = 0; i < np; i++) total += pieces[i].len;
    const char *data = args ? xo__args_data(args, &len) : NULL;
    xo_wire_out_t w;
    sender_out_init(snd, &w);
    switch (type) {
    case XO_WIRE_CALL:
        st = np ? xo__wire_call_pieces(&w, id, chain, want_reply, uid, name, pieces, np, total)
                : xo__wire_call(&w, id, chain, want_reply, uid, name, data, len);
        break;
    case XO_WIRE_CREATE: st = xo__wire_create(&w, id, chain, uid, name, data, len); break;
    case XO_WIRE_RECOVERING: st = xo__wire_recovering(&w, id, chain, data, len); break;
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
    uint64_t id = atomic_fetch_add(&xo__io.next_call_id, 1) + 1;
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
    if (c) xo__conn_release(c);
    if (st != XO_OK) {
        xo__future_unref(f);
        return st;
    }
    *f_p = f;
    return XO_OK;
}

void xo__remote_peer_died(const char *address, const char *why)
{
    if (xo__io_start() != XO_OK) return;
    pthread_mutex_lock(&xo__io.lock);
    conn_t *c = find_peer(address);
    pthread_mutex_unlock(&xo__io.lock);
    if (!c) return;
    xo__conn_lost(c, why);
    /* The I/O thread unregisters it and lets it go; pollers and senders' caches drop it too. Wait for them (briefly:
     * each only has to notice), so that the last reference is ours and the connection's fds are closed when this
     * returns: a host's stop promises nothing left behind, and a test counting fds after it saw three still open. */
    for (int i = 0; i < 200 && atomic_load(&c->refs) > 1; i++) {
        xo__io_wake();
        usleep(1000);
    }
    xo__conn_release(c);
}
