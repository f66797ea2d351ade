#include "runtime/wire.h"

#include <string.h>

#include "base/error.h"

void xo__wire_out_init(xo_wire_out_t *w)
{
    /* Not the segment tables (2 KiB, on every call): an entry is written when its segment is packed. */
    w->header = (xo_buf_t){0};
    w->nsegs = 0;
    w->gathered = false;
    msgpack_packer_init(&w->pk, &w->header, xo__buf_write);
}

void xo__wire_out_free(xo_wire_out_t *w) { xo__buf_free(&w->header); }

xo_frame_t xo__wire_frame(xo_wire_out_t *w)
{
    xo_frame_t f = {.header = w->header.data, .header_len = w->header.size, .segs = w->nsegs ? w->segs : NULL,
                    .nsegs = w->nsegs, .gather = w->gathered ? w->gather : NULL};
    return f;
}

void xo__wire_pack_bytes(xo_wire_out_t *w, const void *data, size_t len)
{
    if (!data) {
        msgpack_pack_nil(&w->pk);
        return;
    }
    if (len >= XO_WIRE_SEG_MIN && w->nsegs < XO_WIRE_MAX_SEGS) {
        w->segs[w->nsegs].data = (void *)data;
        w->segs[w->nsegs].len = len;
        w->gather[w->nsegs] = (xo_seg_pieces_t){0};
        msgpack_pack_uint32(&w->pk, (uint32_t)w->nsegs);
        w->nsegs++;
        return;
    }
    msgpack_pack_bin_with_body(&w->pk, data, len);
}

void xo__wire_pack_pieces(xo_wire_out_t *w, const xo_seg_t *pieces, size_t n, size_t total)
{
    if (total >= XO_WIRE_SEG_MIN && w->nsegs < XO_WIRE_MAX_SEGS) {
        w->segs[w->nsegs] = (xo_seg_t){.data = NULL, .len = total};
        w->gather[w->nsegs] = (xo_seg_pieces_t){.pieces = pieces, .n = n};
        w->gathered = true;
        msgpack_pack_uint32(&w->pk, (uint32_t)w->nsegs);
        w->nsegs++;
        return;
    }
    msgpack_pack_bin(&w->pk, total);
    for (size_t i = 0; i < n; i++) msgpack_pack_bin_body(&w->pk, pieces[i].data, pieces[i].len);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    if (s) msgpack_pack_str_with_body(pk, s, strlen(s));
    else msgpack_pack_nil(pk);
}

static void head(xo_wire_out_t *w, size_t n_fields, int type, uint64_t call_id)
{
    msgpack_pack_array(&w->pk, n_fields);
    msgpack_pack_int(&w->pk, XO_WIRE_VERSION);
    msgpack_pack_int(&w->pk, type);
    msgpack_pack_uint64(&w->pk, call_id);
}

static xo_status_t done(xo_wire_out_t *w)
{
    return w->header.data ? XO_OK : xo__error_set(XO_ENOMEM, "out of memory encoding a message");
}

xo_status_t xo__wire_call(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, bool want_reply, const char *uid,
                         const char *method, const void *args, size_t args_len)
{
    head(w, 8, XO_WIRE_CALL, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    if (want_reply) msgpack_pack_true(&w->pk);
    else msgpack_pack_false(&w->pk);
    pack_str(&w->pk, uid);
    pack_str(&w->pk, method);
    xo__wire_pack_bytes(w, args, args_len);
    return done(w);
}

xo_status_t xo__wire_call_pieces(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, bool want_reply, const char *uid,
                                const char *method, const xo_seg_t *pieces, size_t n, size_t total)
{
    head(w, 8, XO_WIRE_CALL, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    if (want_reply) msgpack_pack_true(&w->pk);
    else msgpack_pack_false(&w->pk);
    pack_str(&w->pk, uid);
    pack_str(&w->pk, method);
    xo__wire_pack_pieces(w, pieces, n, total);
    return done(w);
}

xo_status_t xo__wire_batch(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const char *uid, const char *method,
                          size_t n, const void *const *args, const size_t *args_len)
{
    head(w, 8, XO_WIRE_BATCH, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    msgpack_pack_true(&w->pk);
    pack_str(&w->pk, uid);
    pack_str(&w->pk, method);
    msgpack_pack_array(&w->pk, n);
    for (size_t i = 0; i < n; i++) xo__wire_pack_bytes(w, args[i], args_len[i]);
    return done(w);
}

xo_status_t xo__wire_create(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const char *uid,
                           const char *class_name, const void *args, size_t args_len)
{
    head(w, 7, XO_WIRE_CREATE, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    pack_str(&w->pk, uid);
    pack_str(&w->pk, class_name);
    xo__wire_pack_bytes(w, args, args_len);
    return done(w);
}

xo_status_t xo__wire_recovering(xo_wire_out_t *w, uint64_t call_id, uint64_t chain, const void *uids, size_t len)
{
    head(w, 5, XO_WIRE_RECOVERING, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    xo__wire_pack_bytes(w, uids, len);
    return done(w);
}

xo_status_t xo__wire_simple(xo_wire_out_t *w, int type, uint64_t call_id, uint64_t chain, const char *uid)
{
    head(w, 5, type, call_id);
    msgpack_pack_uint64(&w->pk, chain);
    pack_str(&w->pk, uid);
    return done(w);
}

xo_status_t xo__wire_reply(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error, const void *result,
                          size_t result_len)
{
    head(w, 6, XO_WIRE_REPLY, call_id);
    msgpack_pack_int32(&w->pk, st);
    pack_str(&w->pk, error);
    xo__wire_pack_bytes(w, result, result_len);
    return done(w);
}

xo_status_t xo__wire_reply_pieces(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error,
                                 const xo_seg_t *pieces, size_t n, size_t total)
{
    head(w, 6, XO_WIRE_REPLY, call_id);
    msgpack_pack_int32(&w->pk, st);
    pack_str(&w->pk, error);
    xo__wire_pack_pieces(w, pieces, n, total);
    return done(w);
}

xo_status_t xo__wire_reply_batch(xo_wire_out_t *w, uint64_t call_id, xo_status_t st, const char *error, size_t n,
                                const xo_status_t *item_st, char *const *item_err, xo_result_t *const *item_results)
{
    head(w, 6, XO_WIRE_REPLY_BATCH, call_id);
    msgpack_pack_int32(&w->pk, st);
    pack_str(&w->pk, error);
    msgpack_pack_array(&w->pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&w->pk, 3);
        msgpack_pack_int32(&w->pk, item_st[i]);
        pack_str(&w->pk, item_err ? item_err[i] : NULL);
        size_t len = 0;
        const char *bytes = item_results && item_results[i] ? xo__result_bytes(item_results[i], &len) : NULL;
        xo__wire_pack_bytes(w, bytes, len);
    }
    return done(w);
}

/* ---- decoding ------------------------------------------------------------------------------------------------- */

static xo_status_t bad(const char *what) { return xo__error_set(XO_EPROTO, "malformed envelope: %s", what); }

static bool get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    *v = o->via.u64;
    return true;
}

static bool get_i32(const msgpack_object *o, int32_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX) *v = (int32_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN) *v = (int32_t)o->via.i64;
    else return false;
    return true;
}

static bool get_str(const msgpack_object *o, xo_str_t *s)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        s->ptr = NULL;
        s->len = 0;
        return true;
    }
    if (o->type != MSGPACK_OBJECT_STR) return false;
    s->ptr = o->via.str.ptr;
    s->len = o->via.str.size;
    return true;
}

/* A byte string: inline bin, nil, or a segment index. */
static bool get_bytes(const msgpack_object *o, const xo_frame_t *f, xo_bytes_t *b, bool *present)
{
    *present = true;
    if (o->type == MSGPACK_OBJECT_NIL) {
        *present = false;
        b->ptr = NULL;
        b->len = 0;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        b->ptr = o->via.bin.ptr;
        b->len = o->via.bin.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < f->nsegs) {
        b->ptr = f->segs[o->via.u64].data;
        b->len = f->segs[o->via.u64].len;
        return true;
    }
    return false;
}

xo_status_t xo__wire_decode(const xo_frame_t *frame, msgpack_zone *zone, xo_wire_msg_t *m)
{
    memset(m, 0, sizeof *m);
    msgpack_object root;
    if (xo__decode(frame->header, frame->header_len, zone, &root) != XO_OK) return bad("not one msgpack value");
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size < 3) return bad("not an array of 3+ fields");
    const msgpack_object *f = root.via.array.ptr;
    size_t n = root.via.array.size;
    uint64_t version, type;
    if (!get_u64(&f[0], &version) || version != XO_WIRE_VERSION)
        return xo__error_set(XO_EPROTO, "unsupported envelope version (this runtime speaks %d)", XO_WIRE_VERSION);
    if (!get_u64(&f[1], &type) || !get_u64(&f[2], &m->call_id)) return bad("type or call id");
    m->type = (int)type;
    bool present;
    switch (m->type) {
    case XO_WIRE_CALL:
        if (n != 8 || !get_u64(&f[3], &m->chain) || f[4].type != MSGPACK_OBJECT_BOOLEAN || !get_str(&f[5], &m->uid) ||
            !get_str(&f[6], &m->method) || !get_bytes(&f[7], frame, &m->payload, &m->has_payload))
            return bad("call fields");
        m->want_reply = f[4].via.boolean;
        return XO_OK;
    case XO_WIRE_BATCH: {
        if (n != 8 || !get_u64(&f[3], &m->chain) || f[4].type != MSGPACK_OBJECT_BOOLEAN || !get_str(&f[5], &m->uid) ||
            !get_str(&f[6], &m->method) || f[7].type != MSGPACK_OBJECT_ARRAY)
            return bad("batch fields");
        m->want_reply = f[4].via.boolean;
        m->n_items = f[7].via.array.size;
        m->items = msgpack_zone_malloc(zone, (m->n_items ? m->n_items : 1) * sizeof *m->items);
        if (!m->items) return xo__error_set(XO_ENOMEM, "out of memory decoding a batch");
        for (size_t i = 0; i < m->n_items; i++)
            if (!get_bytes(&f[7].via.array.ptr[i], frame, &m->items[i], &present)) return bad("batch item");
        return XO_OK;
    }
    case XO_WIRE_CREATE:
        if (n != 7 || !get_u64(&f[3], &m->chain) || !get_str(&f[4], &m->uid) || !get_str(&f[5], &m->class_name) ||
            !get_bytes(&f[6], frame, &m->payload, &m->has_payload))
            return bad("create fields");
        return XO_OK;
    case XO_WIRE_RECOVERING:
        if (n != 5 || !get_u64(&f[3], &m->chain) || !get_bytes(&f[4], frame, &m->payload, &m->has_payload))
            return bad("recovering fields");
        return XO_OK;
    case XO_WIRE_DESTROY:
    case XO_WIRE_HAS:
    case XO_WIRE_CANCEL:
    case XO_WIRE_LOOKUP:
    case XO_WIRE_INFO:
    case XO_WIRE_LIST:
        if (n != 5 || !get_u64(&f[3], &m->chain) || !get_str(&f[4], &m->uid)) return bad("request fields");
        return XO_OK;
    case XO_WIRE_REPLY:
        if (n != 6 || !get_i32(&f[3], &m->status) || !get_str(&f[4], &m->error) ||
            !get_bytes(&f[5], frame, &m->payload, &m->has_payload))
            return bad("reply fields");
        return XO_OK;
    case XO_WIRE_REPLY_BATCH: {
        if (n != 6 || !get_i32(&f[3], &m->status) || !get_str(&f[4], &m->error) || f[5].type != MSGPACK_OBJECT_ARRAY)
            return bad("batch reply fields");
        size_t k = f[5].via.array.size;
        m->n_items = k;
        size_t kk = k ? k : 1;
        m->items = msgpack_zone_malloc(zone, kk * sizeof *m->items);
        m->item_status = msgpack_zone_malloc(zone, kk * sizeof *m->item_status);
        m->item_error = msgpack_zone_malloc(zone, kk * sizeof *m->item_error);
        m->item_has = msgpack_zone_malloc(zone, kk * sizeof *m->item_has);
        if (!m->items || !m->item_status || !m->item_error || !m->item_has)
            return xo__error_set(XO_ENOMEM, "out of memory decoding a batch reply");
        for (size_t i = 0; i < k; i++) {
            const msgpack_object *it = &f[5].via.array.ptr[i];
            if (it->type != MSGPACK_OBJECT_ARRAY || it->via.array.size != 3 ||
                !get_i32(&it->via.array.ptr[0], &m->item_status[i]) ||
                !get_str(&it->via.array.ptr[1], &m->item_error[i]) ||
                !get_bytes(&it->via.array.ptr[2], frame, &m->items[i], &m->item_has[i]))
                return bad("batch reply item");
        }
        return XO_OK;
    }
    default: return xo__error_set(XO_EPROTO, "unknown envelope type %d", m->type);
    }
}
