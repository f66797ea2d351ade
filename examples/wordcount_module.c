/* An actor module for the host example: a word count spread over processes.
 *
 *   Mapper (stateless)  count(text) -> {word: n}, counted in whatever sub pool it lives in; pid() -> getpid()
 *   Reducer (stateful)  merge({word: n}); top(k) -> [[word, n]...]; total() -> words seen
 *
 * A module is a shared library exporting xo_module_v1 (XO_MODULE_DEFINE); it does not link the runtime: the
 * process that loads it (xoscar-pool, or a program that exports the runtime) provides it. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xoscar/module.h"

/* ---- Mapper ---- */

typedef struct {
    const char *ptr;
    size_t len;
    int64_t n;
} word_t;

static int cmp_word(const void *a, const void *b)
{
    const word_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static xo_status_t mapper_count(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t text;
    xo_status_t st = xo_unpack(args, "s", &text);
    if (st != XO_OK) return st;
    word_t *words = malloc((text.len / 2 + 1) * sizeof *words);
    if (!words) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory for %zu bytes of text", text.len);
    size_t n = 0;
    for (size_t i = 0; i < text.len;) {
        while (i < text.len && !isalpha((unsigned char)text.ptr[i])) i++;
        size_t start = i;
        while (i < text.len && isalpha((unsigned char)text.ptr[i])) i++;
        if (i > start) words[n++] = (word_t){text.ptr + start, i - start, 1};
    }
    qsort(words, n, sizeof *words, cmp_word);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (distinct && cmp_word(&words[distinct - 1], &words[i]) == 0) words[distinct - 1].n++;
        else words[distinct++] = words[i];
    }
    msgpack_pack_map(out, distinct);
    for (size_t i = 0; i < distinct; i++) {
        msgpack_pack_str_with_body(out, words[i].ptr, words[i].len);
        msgpack_pack_int64(out, words[i].n);
    }
    free(words);
    return XO_OK;
}

static xo_status_t mapper_pid(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "i", (int)getpid());
}

static const xo_method_t mapper_methods[] = {{.name = "count", .fn = mapper_count}, {.name = "pid", .fn = mapper_pid}};
static const xo_actor_class_t mapper_class = {.abi_version = XO_CLASS_ABI_V1,
                                              .flags = XO_ACTOR_STATELESS,
                                              .name = "Mapper",
                                              .methods = mapper_methods,
                                              .n_methods = 2};

/* ---- Reducer ---- */

typedef struct {
    char **words;
    int64_t *counts;
    size_t n, cap;
    int64_t total;
} reducer_t;

static void reducer_fini(void *state)
{
    reducer_t *r = state;
    for (size_t i = 0; i < r->n; i++) free(r->words[i]);
    free(r->words);
    free(r->counts);
}

static xo_status_t reducer_add(xo_ctx_t *ctx, reducer_t *r, const char *w, size_t len, int64_t n)
{
    r->total += n;
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->words[i]) == len && memcmp(r->words[i], w, len) == 0) {
            r->counts[i] += n;
            return XO_OK;
        }
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        char **nw = realloc(r->words, ncap * sizeof *nw);
        if (nw) r->words = nw;
        int64_t *nc = nw ? realloc(r->counts, ncap * sizeof *nc) : NULL;
        if (!nc) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
        r->counts = nc;
        r->cap = ncap;
    }
    r->words[r->n] = strndup(w, len);
    r->counts[r->n++] = n;
    return XO_OK;
}

static xo_status_t reducer_merge(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    const msgpack_object *m;
    xo_status_t st = xo_unpack(args, "o", &m);
    if (st != XO_OK) return st;
    if (m->type != MSGPACK_OBJECT_MAP) return xo_ctx_error(ctx, XO_EBADARGS, "merge expects a map of word counts");
    for (uint32_t i = 0; i < m->via.map.size && st == XO_OK; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return xo_ctx_error(ctx, XO_EBADARGS, "entry %u is not word: count", i);
        st = reducer_add(ctx, state, kv->key.via.str.ptr, kv->key.via.str.size, (int64_t)kv->val.via.u64);
    }
    return st;
}

static xo_status_t reducer_top(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    reducer_t *r = state;
    int k = 5;
    xo_status_t st = xo_unpack(args, "|i", &k);
    if (st != XO_OK) return st;
    size_t n = (size_t)k < r->n ? (size_t)k : r->n;
    size_t *idx = malloc((r->n + 1) * sizeof *idx);
    if (!idx) return xo_ctx_error(ctx, XO_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n; i++) idx[i] = i;
    for (size_t i = 0; i < n; i++) /* partial selection sort: k is small */
        for (size_t j = i + 1; j < r->n; j++)
            if (r->counts[idx[j]] > r->counts[idx[i]]) {
                size_t t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
    msgpack_pack_array(out, n);
    for (size_t i = 0; i < n; i++) xo_pack(out, "[sl]", r->words[idx[i]], r->counts[idx[i]]);
    free(idx);
    return XO_OK;
}

static xo_status_t reducer_total(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "l", ((reducer_t *)state)->total);
}

static const xo_method_t reducer_methods[] = {
    {.name = "merge", .fn = reducer_merge}, {.name = "top", .fn = reducer_top}, {.name = "total", .fn = reducer_total}};
static const xo_actor_class_t reducer_class = {.abi_version = XO_CLASS_ABI_V1,
                                               .name = "Reducer",
                                               .state_size = sizeof(reducer_t),
                                               .fini = reducer_fini,
                                               .methods = reducer_methods,
                                               .n_methods = 3};

XO_MODULE_DEFINE("wordcount", &mapper_class, &reducer_class);
