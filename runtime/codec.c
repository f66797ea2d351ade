#include "runtime/codec.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "transport/warm_blocks.h"

/* ---- growable buffers ----------------------------------------------------------------------------------------- */

static int grow(char **data, size_t *cap, size_t need, char *inline_buf)
{
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    char *nd;
    if (inline_buf && *data == inline_buf) {
        nd = malloc(ncap);
        if (nd) memcpy(nd, inline_buf, *cap);
    } else {
        nd = realloc(*data, ncap);
    }
    if (!nd) return -1;
    *data = nd;
    *cap = ncap;
    return 0;
}

int xo__buf_write(void *p, const char *data, size_t len)
{
    xo_buf_t *b = p;
    if (len == 0) return 0;
    if (b->size + len > b->cap && grow(&b->data, &b->cap, b->size + len, NULL) != 0) return -1;
    memcpy(b->data + b->size, data, len);
    b->size += len;
    return 0;
}

void xo__buf_reset(xo_buf_t *b) { b->size = 0; }

/* 'B' into a result buffer that lends: the bin header is written, the body recorded. Past XO_ARGS_MAX_LENT the
 * body is copied like 'b'. -1 when out of memory. */
static int buf_lend(msgpack_packer *pk, xo_buf_t *b, const void *ptr, size_t len)
{
    if (len == 0 || b->lend->n == XO_ARGS_MAX_LENT) return msgpack_pack_bin_with_body(pk, ptr, len);
    if (msgpack_pack_bin(pk, len) != 0) return -1;
    b->lend->at[b->lend->n++] = (xo_args_lent_t){.at = b->size, .ptr = ptr, .len = len};
    return 0;
}

void xo__buf_free(xo_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->size = b->cap = 0;
}

/* ---- arguments ------------------------------------------------------------------------------------------------ */

static void args_data_free(xo_args_t *a)
{
    if (a->data_warm) xo__warm_give(a->data);
    else if (a->data != a->inline_buf) free(a->data);
}

/* Room for need bytes. A large list moves into a warm block (transport/warm_blocks.h): a 64 MiB 'b' argument packed
 * into fresh pages cost about twice its copy. Growth stays geometric, so appending many small values is linear. */
static int args_grow(xo_args_t *a, size_t need)
{
    if (need < XO_WARM_MIN) return grow(&a->data, &a->cap, need, a->inline_buf);
    size_t want = a->cap * 2 > need ? a->cap * 2 : need, cap;
    char *nd = xo__warm_take(want, &cap);
    if (!nd) return -1;
    memcpy(nd, a->data, a->size);
    args_data_free(a);
    a->data = nd;
    a->cap = cap;
    a->data_warm = true;
    return 0;
}

static int args_write(void *p, const char *data, size_t len)
{
    xo_args_t *a = p;
    if (len == 0) return 0; /* a NULL, 0 bin: memcpy must not see the NULL */
    if (a->release) return -1; /* lent bytes are read-only */
    if (a->size + len > a->cap && args_grow(a, a->size + len) != 0) return -1;
    memcpy(a->data + a->size, data, len);
    a->size += len;
    return 0;
}

static xo_args_t *args_alloc(void)
{
    xo_args_t *a = malloc(sizeof *a);
    if (!a) return NULL;
    a->data = a->inline_buf;
    a->size = 0;
    a->cap = sizeof a->inline_buf;
    a->error = NULL;
    a->release = NULL;
    a->release_arg = NULL;
    a->lent = NULL;
    a->n_lent = 0;
    a->data_warm = false;
    /* Only xo_args() vouches for its bytes; peers' bytes (xo__args_from_bytes, xo__args_borrow) and user packers
     * get the structural check. (malloc leaves it unset: a peer's arguments could skip the check at random.) */
    a->well_formed = false;
    msgpack_packer_init(&a->pk, a, args_write);
    return a;
}

/* 'B': the bin header goes into data, the body is recorded as lent. -1 when out of memory. */
static int args_lend(xo_args_t *a, const void *ptr, size_t len)
{
    if (a->release) return -1;
    if (msgpack_pack_bin(&a->pk, len) != 0) return -1;
    if (len == 0) return 0;
    if ((a->n_lent & (a->n_lent - 1)) == 0) { /* 0, 1, 2, 4...: grow to the next power of two */
        xo_args_lent_t *l = realloc(a->lent, (a->n_lent ? 2 * a->n_lent : 1) * sizeof *l);
        if (!l) return -1;
        a->lent = l;
    }
    a->lent[a->n_lent++] = (xo_args_lent_t){.at = a->size, .ptr = ptr, .len = len};
    return 0;
}

/* data[0..size) with the lent binaries spliced in at their offsets, as pieces in order (borrowed), and their total
 * in *total_p. 0 when more than max pieces would be needed. Shared by lent arguments and lent results. */
static size_t splice_pieces(const char *data, size_t size, const xo_args_lent_t *lent, size_t n_lent, xo_seg_t *out,
                            size_t max, size_t *total_p)
{
    size_t n = 0, from = 0, total = size;
    for (size_t i = 0; i < n_lent; i++) {
        if (n + 2 > max) return 0;
        if (lent[i].at > from) out[n++] = (xo_seg_t){.data = (void *)(data + from), .len = lent[i].at - from};
        out[n++] = (xo_seg_t){.data = (void *)lent[i].ptr, .len = lent[i].len};
        from = lent[i].at;
        total += lent[i].len;
    }
    if (size > from) {
        if (n + 1 > max) return 0;
        out[n++] = (xo_seg_t){.data = (void *)(data + from), .len = size - from};
    }
    *total_p = total;
    return n;
}

size_t xo__args_pieces(const xo_args_t *a, xo_seg_t *out, size_t max)
{
    size_t total;
    return a && a->n_lent ? splice_pieces(a->data, a->size, a->lent, a->n_lent, out, max, &total) : 0;
}

xo_status_t xo__args_settle(xo_args_t *a)
{
    if (!a || !a->n_lent) return XO_OK;
    size_t total = a->size;
    for (size_t i = 0; i < a->n_lent; i++) total += a->lent[i].len;
    size_t cap = total;
    bool warm = total >= XO_WARM_MIN;
    char *d = warm ? xo__warm_take(total, &cap) : malloc(total ? total : 1);
    if (!d) {
        xo_args_free(a);
        return xo__error_set(XO_ENOMEM, "out of memory copying %zu bytes of lent arguments", total);
    }
    size_t from = 0, out = 0;
    for (size_t i = 0; i < a->n_lent; i++) {
        memcpy(d + out, a->data + from, a->lent[i].at - from);
        out += a->lent[i].at - from;
        memcpy(d + out, a->lent[i].ptr, a->lent[i].len);
        out += a->lent[i].len;
        from = a->lent[i].at;
    }
    memcpy(d + out, a->data + from, a->size - from);
    args_data_free(a);
    free(a->lent);
    a->lent = NULL;
    a->n_lent = 0;
    a->data = d;
    a->data_warm = warm;
    a->size = total;
    a->cap = cap;
    return XO_OK;
}

static int refuse_write(void *p, const char *data, size_t len) { return -1; }

/* What xo_args() returns when it cannot even allocate its refusal: never freed, packing into it fails. Returning
 * NULL instead would send the call with no arguments. */
static xo_args_t oom_args = {.pk = {.data = NULL, .callback = refuse_write},
                             .error = "out of memory building call arguments (xo_args)"};

xo_status_t xo__args_refuse(xo_args_t *args)
{
    xo_status_t st = xo__args_refuse_keep_lent(args);
    return st == XO_OK ? xo__args_settle(args) : st;
}

xo_status_t xo__args_refuse_keep_lent(xo_args_t *args)
{
    if (!args || !args->error) return XO_OK;
    xo_status_t st = xo__error_set(args == &oom_args ? XO_ENOMEM : XO_EINVAL, "%s", args->error);
    xo_args_free(args);
    return st;
}

xo_args_t *xo_args_new(uint32_t n)
{
    xo_args_t *a = args_alloc();
    if (a && msgpack_pack_array(&a->pk, n) != 0) {
        xo_args_free(a);
        return NULL;
    }
    return a;
}

xo_args_t *xo__args_from_bytes(const void *data, size_t len)
{
    xo_args_t *a = args_alloc();
    if (a && args_write(a, data, len) != 0) {
        xo_args_free(a);
        return NULL;
    }
    return a;
}

xo_args_t *xo__args_borrow(const void *data, size_t len, void (*release)(void *), void *arg)
{
    xo_args_t *a = args_alloc();
    if (!a) {
        release(arg);
        return NULL;
    }
    a->data = (char *)data; /* never written: args_write refuses lent arguments */
    a->size = a->cap = len;
    a->release = release;
    a->release_arg = arg;
    return a;
}

msgpack_packer *xo_args_packer(xo_args_t *args)
{
    if (!args || args == &oom_args) return args ? &args->pk : NULL;
    args->well_formed = false; /* whoever has the packer may write any counts */
    return &args->pk;
}

void xo_args_free(xo_args_t *a)
{
    if (!a || a == &oom_args) return;
    if (a->release) a->release(a->release_arg);
    else args_data_free(a);
    free(a->lent);
    free(a->error);
    free(a);
}

const char *xo__args_data(const xo_args_t *args, size_t *len_p)
{
    static const char empty_array[1] = {(char)0x90};
    if (!args) {
        *len_p = 1;
        return empty_array;
    }
    *len_p = args->size;
    return args->data;
}

/* ---- packing by format ---------------------------------------------------------------------------------------- */

/* Counts the values of one level of fmt starting at fmt, up to the closing bracket (or the end at level 0). A
 * bracketed group counts as one value; '|' and '*' (unpack's markers) are not values. -1 on unbalanced brackets. */
static long count_level(const char *fmt, char close)
{
    long n = 0;
    int depth = 0;
    for (const char *p = fmt; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '|' || c == '*') continue;
        if (c == '[' || c == '{') {
            if (depth == 0) n++;
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0) return c == close ? n : -1;
            depth--;
        } else if (depth == 0) {
            n++;
        }
    }
    return (depth == 0 && close == '\0') ? n : -1;
}

static xo_status_t pack_level(msgpack_packer *pk, const char **fmtp, char close, va_list *ap)
{
    const char *p = *fmtp;
    int rc = 0;
    for (; *p && *p != close; p++) {
        switch (*p) {
        case ' ': break;
        case 'i': rc = msgpack_pack_int(pk, va_arg(*ap, int)); break;
        case 'l': rc = msgpack_pack_int64(pk, va_arg(*ap, int64_t)); break;
        case 'u': rc = msgpack_pack_uint64(pk, va_arg(*ap, uint64_t)); break;
        case 'd': rc = msgpack_pack_double(pk, va_arg(*ap, double)); break;
        case 't': rc = va_arg(*ap, int) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
        case 'n': rc = msgpack_pack_nil(pk); break;
        case 's': {
            const char *s = va_arg(*ap, const char *);
            rc = s ? msgpack_pack_str_with_body(pk, s, strlen(s)) : msgpack_pack_nil(pk);
            break;
        }
        case 'S': {
            xo_str_t s = va_arg(*ap, xo_str_t);
            rc = msgpack_pack_str_with_body(pk, s.ptr, s.len);
            break;
        }
        case 'b': {
            const void *b = va_arg(*ap, const void *);
            size_t len = va_arg(*ap, size_t);
            rc = msgpack_pack_bin_with_body(pk, b, len);
            break;
        }
        case 'B': {
            /* Lent into call arguments, and into a method's result for another process; anywhere else (a result for
             * this process, a packer of the caller's) copied like 'b'. */
            const void *b = va_arg(*ap, const void *);
            size_t len = va_arg(*ap, size_t);
            if (pk->callback == args_write) rc = args_lend(pk->data, b, len);
            else if (pk->callback == xo__buf_write && ((xo_buf_t *)pk->data)->lend) rc = buf_lend(pk, pk->data, b, len);
            else rc = msgpack_pack_bin_with_body(pk, b, len);
            break;
        }
        case 'o': rc = msgpack_pack_object(pk, *va_arg(*ap, const msgpack_object *)); break;
        case '[':
        case '{': {
            char sub_close = *p == '[' ? ']' : '}';
            long n = count_level(p + 1, sub_close);
            if (n < 0 || (sub_close == '}' && n % 2)) return xo__error_set(XO_EINVAL, "bad pack format near '%s'", p);
            rc = sub_close == ']' ? msgpack_pack_array(pk, (size_t)n) : msgpack_pack_map(pk, (size_t)n / 2);
            if (rc) break;
            const char *q = p + 1;
            xo_status_t st = pack_level(pk, &q, sub_close, ap);
            if (st != XO_OK) return st;
            p = q; /* at the closing bracket */
            break;
        }
        default: return xo__error_set(XO_EINVAL, "bad pack format character '%c'", *p);
        }
        if (rc != 0) return xo__error_set(XO_ENOMEM, "out of memory while packing");
    }
    if (*p != close) return xo__error_set(XO_EINVAL, "unbalanced brackets in pack format");
    *fmtp = p;
    return XO_OK;
}

xo_status_t xo__vpack(msgpack_packer *pk, const char *fmt, va_list *ap)
{
    if (count_level(fmt, '\0') < 0) return xo__error_set(XO_EINVAL, "unbalanced brackets in pack format \"%s\"", fmt);
    const char *p = fmt;
    return pack_level(pk, &p, '\0', ap);
}

xo_status_t xo_pack(msgpack_packer *pk, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    xo_status_t st = xo__vpack(pk, fmt, &ap);
    va_end(ap);
    return st;
}

/* An argument list that consuming calls refuse with why (xo__args_refuse). Owned like xo_args()'s result. */
static xo_args_t *refused(const char *fmt, const char *why)
{
    xo_args_t *a = args_alloc();
    char *text = a ? malloc(XO_ERROR_TEXT_MAX) : NULL;
    if (!text) {
        free(a);
        return &oom_args;
    }
    snprintf(text, XO_ERROR_TEXT_MAX, "xo_args(\"%.200s\"): %s", fmt ? fmt : "(null)", why);
    a->error = text;
    return a;
}

xo_args_t *xo_args(const char *fmt, ...)
{
    if (!fmt) return refused(fmt, "NULL format");
    long n = count_level(fmt, '\0');
    if (n < 0) return refused(fmt, "unbalanced brackets");
    xo_args_t *a = xo_args_new((uint32_t)n);
    if (!a) return &oom_args;
    va_list ap;
    va_start(ap, fmt);
    xo_status_t st = xo__vpack(&a->pk, fmt, &ap);
    va_end(ap);
    if (st != XO_OK) {
        xo_args_free(a);
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return st == XO_ENOMEM ? &oom_args : refused(fmt, why);
    }
    a->well_formed = true;
    return a;
}

/* ---- unpacking by format -------------------------------------------------------------------------------------- */

static const char *type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

static xo_status_t mismatch(const char *path, size_t i, const char *want, const msgpack_object *o)
{
    return xo__error_set(XO_EBADARGS, "argument %s%zu: expected %s, got %s", path, i + 1, want, type_name(o->type));
}

static bool as_int64(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

/* Skips a bracketed group in fmt starting at its opening bracket; returns the pointer at its closing bracket. */
static const char *skip_group(const char *p)
{
    int depth = 0;
    for (; *p; p++) {
        if (*p == '[' || *p == '{') depth++;
        if (*p == ']' || *p == '}') {
            if (--depth == 0) return p;
        }
    }
    return p;
}

/* "arguments" for the top level, "argument 2.1" for a nested one (path "2.1."). */
static const char *level_name(const char *path, char *buf, size_t len)
{
    if (!path[0]) return "arguments";
    snprintf(buf, len, "argument %.*s", (int)strlen(path) - 1, path);
    return buf;
}

/* Too few values for the level of fmt at fmt: says how many it takes, in values ("i|i": 1 to 2). */
static xo_status_t arity_error(const char *fmt, char close, const char *path, size_t got)
{
    long need = 0, most = 0;
    bool optional = false, more = false;
    int depth = 0;
    for (const char *p = fmt; *p && !(depth == 0 && *p == close); p++) {
        char c = *p;
        if (c == ' ') continue;
        if (depth == 0 && c == '|') optional = true;
        else if (depth == 0 && c == '*') more = true;
        else if (c == '[' || c == '{') depth++ == 0 ? (most++, need += !optional) : 0;
        else if (c == ']' || c == '}') depth--;
        else if (depth == 0) most++, need += !optional;
    }
    char want[96];
    if (more) snprintf(want, sizeof want, "at least %ld value%s", need, need == 1 ? "" : "s");
    else if (need < most) snprintf(want, sizeof want, "%ld to %ld values", need, most);
    else snprintf(want, sizeof want, "%ld value%s", need, need == 1 ? "" : "s");
    char at[80];
    return xo__error_set(XO_EBADARGS, "%s: expected %s, got %zu", level_name(path, at, sizeof at), want, got);
}

static xo_status_t unpack_level(const msgpack_object *arr, const char **fmtp, char close, va_list *ap,
                                const char *path)
{
    if (arr->type != MSGPACK_OBJECT_ARRAY)
        return xo__error_set(XO_EBADARGS, "arguments %s: expected an array, got %s", path, type_name(arr->type));
    const msgpack_object *items = arr->via.array.ptr;
    size_t n = arr->via.array.size, i = 0;
    bool optional = false, extra_ok = false;
    const char *p = *fmtp;
    for (; *p && *p != close; p++) {
        char c = *p;
        if (c == ' ') continue;
        if (c == '|') {
            optional = true;
            continue;
        }
        if (c == '*') {
            extra_ok = true;
            continue;
        }
        const msgpack_object *o = i < n ? &items[i] : NULL;
        bool skip = !o || (optional && o->type == MSGPACK_OBJECT_NIL && c != 'n' && c != 'o');
        if (!o && !optional) return arity_error(*fmtp, close, path, n);
        switch (c) {
        case 'i': {
            int *out = va_arg(*ap, int *);
            if (skip) break;
            int64_t v;
            if (!as_int64(o, &v) || v < INT_MIN || v > INT_MAX) return mismatch(path, i, "int (32-bit)", o);
            *out = (int)v;
            break;
        }
        case 'l': {
            int64_t *out = va_arg(*ap, int64_t *);
            if (skip) break;
            if (!as_int64(o, out)) return mismatch(path, i, "int (64-bit)", o);
            break;
        }
        case 'u': {
            uint64_t *out = va_arg(*ap, uint64_t *);
            if (skip) break;
            if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return mismatch(path, i, "unsigned int", o);
            *out = o->via.u64;
            break;
        }
        case 'd': {
            double *out = va_arg(*ap, double *);
            if (skip) break;
            if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) *out = o->via.f64;
            else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) *out = (double)o->via.u64;
            else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *out = (double)o->via.i64;
            else return mismatch(path, i, "number", o);
            break;
        }
        case 't': {
            bool *out = va_arg(*ap, bool *);
            if (skip) break;
            if (o->type != MSGPACK_OBJECT_BOOLEAN) return mismatch(path, i, "bool", o);
            *out = o->via.boolean;
            break;
        }
        case 's': {
            xo_str_t *out = va_arg(*ap, xo_str_t *);
            if (skip) break;
            if (o->type != MSGPACK_OBJECT_STR) return mismatch(path, i, "string", o);
            out->ptr = o->via.str.ptr;
            out->len = o->via.str.size;
            break;
        }
        case 'b': {
            xo_bytes_t *out = va_arg(*ap, xo_bytes_t *);
            if (skip) break;
            if (o->type != MSGPACK_OBJECT_BIN && o->type != MSGPACK_OBJECT_STR) return mismatch(path, i, "binary", o);
            out->ptr = o->via.bin.ptr;
            out->len = o->via.bin.size;
            break;
        }
        case 'o': {
            const msgpack_object **out = va_arg(*ap, const msgpack_object **);
            if (o) *out = o;
            break;
        }
        case 'n':
            if (o && o->type != MSGPACK_OBJECT_NIL) return mismatch(path, i, "nil", o);
            break;
        case '[': {
            if (skip) {
                /* consume the group's pointers without touching them */
                const char *end = skip_group(p);
                for (const char *q = p + 1; q < end; q++) {
                    if (strchr("ilmudtsbo", *q)) (void)va_arg(*ap, void *);
                }
                p = end;
                break;
            }
            char sub[64];
            snprintf(sub, sizeof sub, "%s%zu.", path, i + 1);
            const char *q = p + 1;
            xo_status_t st = unpack_level(o, &q, ']', ap, sub);
            if (st != XO_OK) return st;
            p = q;
            break;
        }
        default: return xo__error_set(XO_EINVAL, "bad unpack format character '%c'", c);
        }
        i++;
    }
    if (*p != close) return xo__error_set(XO_EINVAL, "unbalanced brackets in unpack format");
    char at[80];
    if (i < n && !extra_ok)
        return xo__error_set(XO_EBADARGS, "%s: expected at most %zu value%s, got %zu", level_name(path, at, sizeof at),
                             i, i == 1 ? "" : "s", n);
    *fmtp = p;
    return XO_OK;
}

xo_status_t xo__vunpack(const msgpack_object *args, const char *fmt, va_list *ap)
{
    const char *p = fmt;
    return unpack_level(args, &p, '\0', ap, "");
}

xo_status_t xo_unpack(const msgpack_object *args, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    xo_status_t st = xo__vunpack(args, fmt, &ap);
    va_end(ap);
    return st;
}

bool xo_str_eq(xo_str_t s, const char *c) { return strlen(c) == s.len && memcmp(s.ptr, c, s.len) == 0; }

/* ---- decoding and results ------------------------------------------------------------------------------------- */

bool xo__encoded_is_container(const char *data, size_t len)
{
    if (len == 0) return false;
    unsigned char b = (unsigned char)data[0];
    return (b & 0xf0) == 0x90 || (b & 0xf0) == 0x80 || (b >= 0xdc && b <= 0xdf);
}

/* Big-endian reads for the scalar decoder below. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Decodes a top-level scalar without a zone. msgpack-c's msgpack_unpack allocates a zone of its own when given
 * none (and leaks it), and a zone costs a malloc; a call's result is most often one scalar, so this path keeps
 * result decoding allocation-free. Returns false for anything it does not handle (the caller then uses msgpack-c). */
static bool decode_scalar(const char *data, size_t len, msgpack_object *o)
{
    const unsigned char *p = (const unsigned char *)data;
    unsigned char b = p[0];
    size_t need = 1, body = 0;
    memset(o, 0, sizeof *o);
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
    } else if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
    } else if (b == 0xc0) {
        o->type = MSGPACK_OBJECT_NIL;
    } else if (b == 0xc2 || b == 0xc3) {
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
    } else if (b >= 0xcc && b <= 0xcf) { /* uint 8..64 */
        int n = 1 << (b - 0xcc);
        need = 1 + (size_t)n;
        if (len < need) return false;
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = be(p + 1, n);
    } else if (b >= 0xd0 && b <= 0xd3) { /* int 8..64 */
        int n = 1 << (b - 0xd0);
        need = 1 + (size_t)n;
        if (len < need) return false;
        uint64_t u = be(p + 1, n);
        int64_t v = n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u : (int64_t)u;
        o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (v < 0) o->via.i64 = v;
        else o->via.u64 = (uint64_t)v;
    } else if (b == 0xca || b == 0xcb) {
        need = b == 0xca ? 5 : 9;
        if (len < need) return false;
        uint64_t u = be(p + 1, (int)need - 1);
        if (b == 0xca) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, sizeof f);
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = f;
        } else {
            double d;
            memcpy(&d, &u, sizeof d);
            o->type = MSGPACK_OBJECT_FLOAT64;
            o->via.f64 = d;
        }
    } else if ((b & 0xe0) == 0xa0 || b == 0xd9 || b == 0xda || b == 0xdb || b == 0xc4 || b == 0xc5 || b == 0xc6) {
        int lenbytes = (b & 0xe0) == 0xa0 ? 0 : (b == 0xd9 || b == 0xc4) ? 1 : (b == 0xda || b == 0xc5) ? 2 : 4;
        if (len < 1 + (size_t)lenbytes) return false;
        body = lenbytes ? (size_t)be(p + 1, lenbytes) : (size_t)(b & 0x1f);
        need = 1 + (size_t)lenbytes + body;
        if (len < need) return false;
        bool is_bin = b >= 0xc4 && b <= 0xc6;
        o->type = is_bin ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR;
        o->via.str.size = (uint32_t)body;
        o->via.str.ptr = data + 1 + lenbytes;
    } else {
        return false; /* ext types */
    }
    return need == len;
}

/* Walks one encoded value without allocating and checks that every container's declared element count fits in the
 * bytes that remain (each element needs at least one byte) and that nesting stays shallow. msgpack-c allocates a
 * container's element array from its declared count before reading the elements, so without this check a 5-byte
 * message announcing 2^32 elements asks for 64 GiB (found by tests/fuzz/wire_fuzz). */
#define XO_MAX_DEPTH 64

static bool sane(const unsigned char *p, size_t len)
{
    uint64_t pending[XO_MAX_DEPTH + 1]; /* values still to read at each open level */
    int depth = 0;
    pending[0] = 1;
    size_t i = 0;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (i >= len) return false;
        unsigned char b = p[i++];
        uint64_t n = 0, skip = 0;
        bool container = false, is_map = false;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        } else if ((b & 0xf0) == 0x80) {
            n = b & 0x0f, container = true, is_map = true;
        } else if ((b & 0xf0) == 0x90) {
            n = b & 0x0f, container = true;
        } else if ((b & 0xe0) == 0xa0) {
            skip = b & 0x1f;
        } else {
            int w = 0;
            switch (b) {
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xc4: case 0xd9: w = 1; break; /* bin8 / str8 */
            case 0xc5: case 0xda: w = 2; break;
            case 0xc6: case 0xdb: w = 4; break;
            case 0xc7: w = -1; break;           /* ext8/16/32: length, then type, then data */
            case 0xc8: w = -2; break;
            case 0xc9: w = -4; break;
            case 0xdc: w = 2, container = true; break;
            case 0xdd: w = 4, container = true; break;
            case 0xde: w = 2, container = true, is_map = true; break;
            case 0xdf: w = 4, container = true, is_map = true; break;
            default: return false; /* 0xc1: never used */
            }
            int bytes = w < 0 ? -w : w;
            if (bytes) {
                if (len - i < (size_t)bytes) return false;
                for (int k = 0; k < bytes; k++) n = (n << 8) | p[i + k];
                i += (size_t)bytes;
                if (w < 0) skip = n + 1;
                else if (!container) skip = n;
            }
        }
        if (container) {
            uint64_t values = is_map ? n * 2 : n;
            if (values > len - i) return false; /* cannot hold that many values */
            if (depth == XO_MAX_DEPTH) return false;
            pending[++depth] = values;
        } else {
            if (skip > len - i) return false;
            i += (size_t)skip;
        }
    }
    return i == len;
}

static xo_status_t decode(const char *data, size_t len, msgpack_zone *zone, msgpack_object *obj, bool checked)
{
    if (len == 0) return xo__error_set(XO_EPROTO, "empty msgpack value");
    if (!xo__encoded_is_container(data, len) && decode_scalar(data, len, obj)) return XO_OK;
    if (!zone) return xo__error_set(XO_EPROTO, "malformed msgpack scalar (%zu bytes)", len);
    if (!checked && !sane((const unsigned char *)data, len))
        return xo__error_set(XO_EPROTO, "malformed msgpack value (%zu bytes: truncated, oversized counts or nested "
                                       "deeper than %d)", len, XO_MAX_DEPTH);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack(data, len, &off, zone, obj);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return xo__error_set(XO_EPROTO, "malformed msgpack value (%zu bytes, decoder said %d at %zu)", len, (int)r, off);
    return XO_OK;
}

xo_status_t xo__decode(const char *data, size_t len, msgpack_zone *zone, msgpack_object *obj)
{
    return decode(data, len, zone, obj, false);
}

xo_status_t xo__args_decode(const xo_args_t *args, msgpack_zone *zone, msgpack_object *obj)
{
    size_t len;
    const char *data = xo__args_data(args, &len); /* NULL: the empty array */
    return decode(data, len, zone, obj, !args || args->well_formed);
}

/* Decoding is lazy (a caller may only want to know that the call succeeded); a result is not shared between
 * threads, so the const cast in xo_result_value is a cache fill, not a visible mutation. */
struct xo_result {
    size_t len;
    bool decoded;
    bool has_zone;
    msgpack_zone zone;
    msgpack_object obj;
    const char *data;           /* inline_data, or bytes lent (xo__result_borrow) */
    void (*release)(void *arg); /* lent bytes: called by xo_result_free (NULL: nothing to hand back) */
    void *release_arg;
    const xo_buf_lend_t *lend;  /* binaries spliced into data when it is sent (xo__result_borrow_lent), or NULL */
    char inline_data[];
};

static xo_result_t *result_alloc(size_t inline_len)
{
    xo_result_t *r = malloc(sizeof *r + inline_len);
    if (!r) return NULL;
    r->decoded = false;
    r->has_zone = false;
    r->data = r->inline_data;
    r->release = NULL;
    r->release_arg = NULL;
    r->lend = NULL;
    return r;
}

xo_result_t *xo__result_from_bytes(const char *data, size_t len)
{
    static const char nil = (char)0xc0;
    if (len == 0) {
        data = &nil;
        len = 1;
    }
    if (len >= XO_WARM_MIN) { /* a large result goes into pages already mapped (transport/warm_blocks.h) */
        size_t cap;
        char *block = xo__warm_take(len, &cap);
        if (!block) return NULL;
        memcpy(block, data, len);
        return xo__result_borrow(block, len, xo__warm_give, block);
    }
    xo_result_t *r = result_alloc(len);
    if (!r) return NULL;
    r->len = len;
    memcpy(r->inline_data, data, len);
    return r;
}

xo_result_t *xo__result_borrow(const char *data, size_t len, void (*release)(void *), void *arg)
{
    xo_result_t *r = result_alloc(0);
    if (!r) {
        if (release) release(arg);
        return NULL;
    }
    r->len = len;
    r->data = data;
    r->release = release;
    r->release_arg = arg;
    return r;
}

xo_result_t *xo__result_borrow_lent(const char *data, size_t len, const xo_buf_lend_t *lend)
{
    xo_result_t *r = xo__result_borrow(data, len, NULL, NULL);
    if (r) r->lend = lend;
    return r;
}

size_t xo__result_pieces(const xo_result_t *r, xo_seg_t *out, size_t max, size_t *total_p)
{
    if (!r || !r->lend || !r->lend->n) return 0;
    return splice_pieces(r->data, r->len, r->lend->at, r->lend->n, out, max, total_p);
}

const char *xo__result_bytes(const xo_result_t *r, size_t *len_p)
{
    *len_p = r->len;
    return r->data;
}

const msgpack_object *xo_result_value(const xo_result_t *cr)
{
    static const msgpack_object nil_obj = {.type = MSGPACK_OBJECT_NIL};
    xo_result_t *r = (xo_result_t *)cr;
    if (!r) return &nil_obj;
    if (!r->decoded) {
        msgpack_zone *zone = NULL;
        if (xo__encoded_is_container(r->data, r->len) || !decode_scalar(r->data, r->len, &r->obj)) {
            if (!msgpack_zone_init(&r->zone, 256)) return &nil_obj;
            r->has_zone = true;
            zone = &r->zone;
            if (xo__decode(r->data, r->len, zone, &r->obj) != XO_OK) r->obj = nil_obj;
        }
        r->decoded = true;
    }
    return &r->obj;
}

xo_status_t xo_result_unpack(const xo_result_t *r, const char *fmt, ...)
{
    msgpack_object one = {.type = MSGPACK_OBJECT_ARRAY};
    one.via.array.size = 1;
    one.via.array.ptr = (msgpack_object *)xo_result_value(r);
    va_list ap;
    va_start(ap, fmt);
    xo_status_t st = xo__vunpack(&one, fmt, &ap);
    va_end(ap);
    return st;
}

void xo_result_free(xo_result_t *r)
{
    if (!r) return;
    if (r->has_zone) msgpack_zone_destroy(&r->zone);
    if (r->release) r->release(r->release_arg);
    free(r);
}
