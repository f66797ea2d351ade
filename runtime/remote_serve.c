/* Serving requests from other processes to this process's pools, and sending their replies. See remote_impl.h. */
#include "runtime/remote_impl.h"

#include <unistd.h>

#include "xoscar/gpu.h"

#define UID_MAX 512

/* ---- replies to requests we serve --------------------------------------------------------------------------- */

typedef struct {
    conn_t *conn;
    uint64_t call_id;
} inflight_t;

xo_status_t xo__conn_send(conn_t *c, xo_wire_out_t *w)
{
    xo_frame_t fr = xo__wire_frame(w);
    xo_status_t st = xo__channel_send(c->ch, &fr);
    if (st == XO_ECLOSED) xo_log_debug("reply on a closed connection dropped: %s", xo_last_error());
    return st;
}

static void send_error(conn_t *c, uint64_t call_id, xo_status_t st, const char *text)
{
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    xo__wire_reply(&w, call_id, st, text, NULL, 0);
    xo__conn_send(c, &w);
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
    xo_seg_t pieces[2 * XO_ARGS_MAX_LENT + 1]; /* borrowed by w until it is sent */
    xo__wire_out_init(&w);
    if (f->n_items || f->item_status) {
        xo__wire_reply_batch(&w, in->call_id, f->status, f->error, f->n_items, f->item_status, f->item_errors,
                            f->item_results);
    } else {
        size_t len = 0;
        size_t n = f->result ? xo__result_pieces(f->result, pieces, 2 * XO_ARGS_MAX_LENT + 1, &len) : 0;
        if (n) {
            xo__wire_reply_pieces(&w, in->call_id, f->status, f->error, pieces, n, len);
        } else {
            const char *bytes = f->result ? xo__result_bytes(f->result, &len) : NULL;
            xo__wire_reply(&w, in->call_id, f->status, f->error, bytes, len);
        }
    }
    xo_status_t sent = xo__conn_send(c, &w);
    xo__wire_out_free(&w);
    if (sent != XO_OK && sent != XO_ECLOSED) {
        /* Nothing went out (a result larger than the peer accepts, say) and the connection is fine: the caller
         * would wait for its timeout on a reply that never comes. Tell it why instead. */
        char text[XO_ERROR_TEXT_MAX];
        snprintf(text, sizeof text, "the reply could not be sent: %s", xo_last_error());
        xo_log_warn("call %llu: %s", (unsigned long long)in->call_id, text);
        send_error(c, in->call_id, sent, text);
    }
    /* Sent: nobody reads the result of a remote caller's future, and it may be lent (hook_takes_result). */
    xo_result_free(f->result);
    f->result = NULL;
}

static void inflight_free(void *arg)
{
    inflight_t *in = arg;
    xo__conn_release(in->conn);
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
    xo__conn_retain(c);
    in->conn = c;
    in->call_id = call_id;
    f->on_done = reply_done;
    f->hook_takes_result = true;
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
        xo_status_t st = xo__pool_missing_actor(c->pool, uid, text, sizeof text);
        send_error(c, m->call_id, st, text);
    }
    return a;
}

static void serve_call(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l)
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
            msg->batch_args[i] = xo__lend_args(l, m->items[i]);
    } else if (msg) {
        msg->kind = XO_MSG_CALL;
        msg->args = m->has_payload ? xo__lend_args(l, m->payload) : NULL;
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

static void serve_create(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l)
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
    xo_args_t *args = m->has_payload ? xo__lend_args(l, m->payload) : NULL;
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
    xo__conn_send(c, &w);
    xo__wire_out_free(&w);
    xo_args_free(value);
}

/* Requests from other processes that pool has received and not yet answered (queued or running): the sizes of
 * its inbound connections' in-flight maps, which exist for cancellation anyway, so counting costs the call path
 * nothing. Connections are retained under xo__io.lock and counted after it, so xo__io.lock never nests c->lock. */
static uint64_t inbound_in_flight(xo_pool_t *pool)
{
    uint64_t n = 0;
    pthread_mutex_lock(&xo__io.lock);
    size_t k = 0, cap = 0;
    for (conn_t *c = xo__io.conns; c; c = c->next) cap += c->kind == CONN_INBOUND && c->pool == pool;
    conn_t **mine = malloc((cap ? cap : 1) * sizeof *mine); /* ours until released below */
    for (conn_t *c = xo__io.conns; mine && c && k < cap; c = c->next)
        if (c->kind == CONN_INBOUND && c->pool == pool) {
            xo__conn_retain(c);
            mine[k++] = c;
        }
    pthread_mutex_unlock(&xo__io.lock);
    for (size_t i = 0; i < k; i++) {
        pthread_mutex_lock(&mine[i]->lock);
        n += mine[i]->calls.n;
        pthread_mutex_unlock(&mine[i]->lock);
        xo__conn_release(mine[i]);
    }
    free(mine);
    return n;
}

static void serve_list(conn_t *c, const xo_wire_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    xo__pool_pack_actors(c->pool, &pk);
    if (!sb.data) {
        send_error(c, m->call_id, XO_ENOMEM, "out of memory listing the actors");
        return;
    }
    xo_wire_out_t w;
    xo__wire_out_init(&w);
    xo__wire_reply(&w, m->call_id, XO_OK, NULL, sb.data, sb.size);
    xo__conn_send(c, &w);
    xo__wire_out_free(&w);
    msgpack_sbuffer_destroy(&sb);
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
        xo_status_t st = xo__pool_missing_actor(c->pool, uid, text, sizeof text);
        send_error(c, m->call_id, st, text);
    }
}

/* The host's word on what its restarted sub pool gets back (runtime/recovery.c). */
static void serve_recovering(conn_t *c, const xo_wire_msg_t *m)
{
    xo_status_t st = XO_OK;
    if (!m->has_payload) {
        st = xo__pool_recovery_set(c->pool, NULL);
    } else {
        msgpack_zone zone;
        msgpack_object args;
        if (!msgpack_zone_init(&zone, 4096)) {
            send_error(c, m->call_id, XO_ENOMEM, "out of memory");
            return;
        }
        st = xo__decode(m->payload.ptr, m->payload.len, &zone, &args);
        if (st == XO_OK && (args.type != MSGPACK_OBJECT_ARRAY || args.via.array.size != 1))
            st = xo__error_set(XO_EPROTO, "recovering: not one list of uids");
        if (st == XO_OK) st = xo__pool_recovery_set(c->pool, &args.via.array.ptr[0]);
        msgpack_zone_destroy(&zone);
    }
    if (st != XO_OK) send_error(c, m->call_id, st, xo_last_error());
    else serve_value(c, m->call_id, xo_args("n"));
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

void xo__serve_request(conn_t *c, const xo_wire_msg_t *m, xo_lender_t *l)
{
    switch (m->type) {
    case XO_WIRE_CALL:
    case XO_WIRE_BATCH: serve_call(c, m, l); break;
    case XO_WIRE_CREATE: serve_create(c, m, l); break;
    case XO_WIRE_DESTROY: serve_destroy(c, m); break;
    case XO_WIRE_HAS:
    case XO_WIRE_LOOKUP:
    case XO_WIRE_INFO: serve_query(c, m); break;
    case XO_WIRE_CANCEL: serve_cancel(c, m); break;
    case XO_WIRE_RECOVERING: serve_recovering(c, m); break;
    case XO_WIRE_LIST: serve_list(c, m); break;
    default: send_error(c, m->call_id, XO_EPROTO, "a reply sent as a request"); break;
    }
}
