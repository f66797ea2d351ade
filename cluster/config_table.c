/* The cluster file's table engine (cluster/config_table.h): the YAML walk that parses a document with the key
 * tables, the generic kinds of value, the dump and the key reference. A default is YAML text parsed by the same row
 * as a value from the file would be, so a default cannot disagree with what the parser accepts. */
#include "cluster/config_table.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "xoscar/module.h"

/* Values visited, aliases expanded, before a file is refused: anchors and aliases may make a small file describe
 * a huge tree ("billion laughs"), and the walk follows aliases. A real cluster file has a few hundred values. */
#define VISIT_BUDGET 100000

/* ---- arena and errors ----------------------------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    max_align_t data[];
} chunk_t;

void *xo__cluster_alloc(void **arena, size_t size)
{
    if (size > SIZE_MAX / 2) return NULL;
    chunk_t *ch = calloc(1, sizeof *ch + size);
    if (!ch) return NULL;
    ch->next = *arena;
    *arena = ch;
    return ch->data;
}

char *xo__cluster_strndup(void **arena, const char *s, size_t len)
{
    char *d = xo__cluster_alloc(arena, len + 1);
    if (d) memcpy(d, s, len);
    return d;
}

void xo__cluster_arena_free(void *arena)
{
    while (arena) {
        chunk_t *ch = arena;
        arena = ch->next;
        free(ch);
    }
}

xo_status_t xo__cluster_error(xo_cluster_error_t *err, xo_status_t st, const char *file, int line, int column,
                              const char *fmt, ...)
{
    char msg[XO_ERROR_TEXT_MAX], text[2 * XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) snprintf(text, sizeof text, "%.256s:%d:%d: %s", file, line, column, msg);
    else snprintf(text, sizeof text, "%.256s: %s", file, msg);
    text[XO_ERROR_TEXT_MAX - 1] = '\0';
    if (err) {
        err->status = st;
        err->line = line > 0 ? line : 0;
        err->column = line > 0 ? column : 0;
        memcpy(err->text, text, XO_ERROR_TEXT_MAX);
    }
    return xo__error_set(st, "%s", text);
}

/* ---- messages ------------------------------------------------------------------------------------------------- */

xo_status_t xo__cfg_fail_at(pctx_t *p, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

xo_status_t xo__cfg_fail_at(pctx_t *p, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = 0, col = 0;
    if (n && !p->in_default) {
        line = (int)n->start_mark.line + 1;
        col = (int)n->start_mark.column + 1;
    }
    if (p->in_default) /* a default of the tables does not parse: a bug here, not in the file */
        return xo__cluster_error(p->err, XO_ECONFIG, p->file, 0, 0, "internal error: the default of %s: %s",
                                 p->path, msg);
    if (p->path_len) return xo__cluster_error(p->err, XO_ECONFIG, p->file, line, col, "%s: %s", p->path, msg);
    return xo__cluster_error(p->err, XO_ECONFIG, p->file, line, col, "%s", msg);
}

xo_status_t xo__cfg_no_memory(pctx_t *p)
{
    return xo__cluster_error(p->err, XO_ENOMEM, p->file, 0, 0, "out of memory");
}


/* A plain scalar that YAML reads as null: empty, ~, null. */
static bool is_null(const yaml_node_t *n)
{
    if (!xo__cfg_is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = xo__cfg_sval(n);
    return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Quotes text for a message: printable ASCII kept, anything else as '?', at most 48 characters. */
static void quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t k = 0, shown = len < 48 ? len : 48;
    if (size < 8) {
        if (size) buf[0] = '\0';
        return;
    }
    buf[k++] = '\'';
    for (size_t i = 0; i < shown && k + 5 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (shown < len && k + 5 < size) buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k++] = '\'';
    buf[k] = '\0';
}

static void describe_node(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SEQUENCE_NODE) snprintf(buf, size, "a list");
    else if (n->type == YAML_MAPPING_NODE) snprintf(buf, size, "a mapping");
    else if (is_null(n)) snprintf(buf, size, "nothing (null)");
    else quote(xo__cfg_sval(n), n->data.scalar.length, buf, size);
}

/* "PATH: expected <expected>, got 'value'". */
xo_status_t xo__cfg_fail_value(pctx_t *p, const yaml_node_t *n, const char *expected)
{
    char got[64];
    describe_node(n, got, sizeof got);
    size_t len = strlen(expected);
    /* "expected one of: a, b; got 'c'": a list ends with ';' so that the comma does not read as one more item. */
    return xo__cfg_fail_at(p, n, "expected %s%s got %s", expected, len && expected[len - 1] == ';' ? "" : ",", got);
}

size_t xo__cfg_path_push_key(pctx_t *p, const char *key)
{
    size_t saved = p->path_len;
    int w = snprintf(p->path + p->path_len, sizeof p->path - p->path_len, "%s%s", p->path_len ? "." : "", key);
    if (w > 0) p->path_len = strnlen(p->path, sizeof p->path);
    return saved;
}

size_t xo__cfg_path_push_index(pctx_t *p, size_t i)
{
    size_t saved = p->path_len;
    int w = snprintf(p->path + p->path_len, sizeof p->path - p->path_len, "[%zu]", i);
    if (w > 0) p->path_len = strnlen(p->path, sizeof p->path);
    return saved;
}

void xo__cfg_path_pop(pctx_t *p, size_t saved)
{
    p->path_len = saved;
    p->path[saved] = '\0';
}

xo_status_t xo__cfg_visit(pctx_t *p, const yaml_node_t *n)
{
    if (--p->budget >= 0) return XO_OK;
    return xo__cfg_fail_at(p, n, "the file has more than %d values (aliases expanded); a cluster file this large is refused",
                   VISIT_BUDGET);
}

void xo__cfg_set_mark(pctx_t *p, void *obj, bool has, size_t off, const yaml_node_t *n)
{
    if (!has) return;
    xo_cluster_mark_t *m = (xo_cluster_mark_t *)((char *)obj + off);
    if (p->in_default) *m = (xo_cluster_mark_t){0, 0};
    else *m = (xo_cluster_mark_t){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}


/* ---- parsing: generic --------------------------------------------------------------------------------------- */

xo_status_t xo__cfg_parse_table(pctx_t *p, const table_t *t, yaml_node_t *n, void *obj);

/* Parses f's default (YAML text) into obj. */
static xo_status_t parse_default(pctx_t *p, const field_t *f, void *obj)
{
    yaml_parser_t yp;
    yaml_document_t d;
    if (!yaml_parser_initialize(&yp)) return xo__cfg_no_memory(p);
    yaml_parser_set_input_string(&yp, (const unsigned char *)f->def, strlen(f->def));
    if (!yaml_parser_load(&yp, &d)) {
        yaml_parser_delete(&yp);
        return xo__cluster_error(p->err, XO_ENOMEM, p->file, 0, 0, "cannot parse the default of %s", f->name);
    }
    yaml_document_t *saved_doc = p->doc;
    bool saved_in = p->in_default;
    p->doc = &d;
    p->in_default = true;
    yaml_node_t *root = yaml_document_get_root_node(&d);
    xo_status_t st = root ? f->kind->parse(p, f, root, obj)
                          : xo__cluster_error(p->err, XO_ECONFIG, p->file, 0, 0, "internal error: empty default");
    p->doc = saved_doc;
    p->in_default = saved_in;
    yaml_document_delete(&d);
    yaml_parser_delete(&yp);
    return st;
}

static void list_keys(const table_t *t, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_fields && k < size; i++) {
        int w = snprintf(buf + k, size - k, "%s%s", i ? ", " : "", t->fields[i].name);
        if (w < 0) break;
        k += (size_t)w;
    }
}

xo_status_t xo__cfg_parse_table(pctx_t *p, const table_t *t, yaml_node_t *n, void *obj)
{
    if (n->type != YAML_MAPPING_NODE) {
        char expected[96];
        snprintf(expected, sizeof expected, "%s (a mapping of key: value)", t->what);
        return xo__cfg_fail_value(p, n, expected);
    }
    xo__cfg_set_mark(p, obj, t->has_mark, t->mark_off, n);
    yaml_node_t *vals[MAX_FIELDS] = {0};
    yaml_node_t *keys[MAX_FIELDS] = {0};
    xo_status_t st = XO_OK;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        if (!k || !v) return xo__cfg_fail_at(p, n, "malformed mapping");
        if ((st = xo__cfg_visit(p, k)) != XO_OK) return st;
        char expected[256];
        if (!xo__cfg_is_scalar(k) || is_null(k)) {
            char got[64];
            list_keys(t, expected, sizeof expected);
            describe_node(k, got, sizeof got);
            return xo__cfg_fail_at(p, k, "expected a key of %s (one of: %s), got %s", t->what, expected, got);
        }
        size_t i = 0;
        while (i < t->n_fields && (strlen(xo__cfg_sval(k)) != k->data.scalar.length || strcmp(t->fields[i].name, xo__cfg_sval(k))))
            i++;
        if (i == t->n_fields) {
            char got[64];
            quote(xo__cfg_sval(k), k->data.scalar.length, got, sizeof got);
            list_keys(t, expected, sizeof expected);
            return xo__cfg_fail_at(p, k, "unknown key %s in %s (expected one of: %s)", got, t->what, expected);
        }
        if (vals[i])
            return xo__cfg_fail_at(p, k, "duplicate key '%s' in %s (first at line %d)", t->fields[i].name, t->what,
                           (int)keys[i]->start_mark.line + 1);
        keys[i] = k;
        vals[i] = v;
        size_t saved = xo__cfg_path_push_key(p, t->fields[i].name);
        st = t->fields[i].kind->parse(p, &t->fields[i], v, obj);
        xo__cfg_path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    for (size_t i = 0; i < t->n_fields; i++) {
        const field_t *f = &t->fields[i];
        if (vals[i]) continue;
        if (f->required) return xo__cfg_fail_at(p, n, "missing key '%s' in %s (required: %s)", f->name, t->what, f->doc);
        if (!f->def) continue;
        size_t saved = xo__cfg_path_push_key(p, f->name);
        st = parse_default(p, f, obj);
        xo__cfg_path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    return t->check ? t->check(p, obj, n, vals) : XO_OK;
}

/* A scalar's text, refused when it is null, not a scalar, or holds a NUL. */
xo_status_t xo__cfg_get_text(pctx_t *p, yaml_node_t *n, const char *expected, const char **s_p)
{
    if (!xo__cfg_is_scalar(n) || is_null(n) || strlen(xo__cfg_sval(n)) != n->data.scalar.length) return xo__cfg_fail_value(p, n, expected);
    *s_p = xo__cfg_sval(n);
    return XO_OK;
}

/* ---- kinds ------------------------------------------------------------------------------------------------------ */

/* Strings. */
static xo_status_t parse_string(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = xo__cfg_get_text(p, n, "a string", &s);
    if (st != XO_OK) return st;
    const char *bad = f->check ? f->check(s) : NULL;
    if (bad) return xo__cfg_fail_value(p, n, bad);
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return xo__cfg_no_memory(p);
    *AT(obj, f->off, char *) = d;
    xo__cfg_set_mark(p, obj, f->has_mark, f->mark_off, n);
    return XO_OK;
}

/* A path relative to the cluster file's directory, made absolute (lexically: the file need not exist here). A
 * Python module ("python:NAME", include/xoscar/module.h) is a name, not a path: kept as it is. */
static char *resolve_path(pctx_t *p, const char *s)
{
    if (s[0] == '/' || strncmp(s, XO_PYTHON_PREFIX, strlen(XO_PYTHON_PREFIX)) == 0)
        return xo__cluster_strndup(p->arena, s, strlen(s));
    while (s[0] == '.' && s[1] == '/') {
        s += 2;
        while (*s == '/') s++;
    }
    size_t dl = strlen(p->c->dir), sl = strlen(s);
    char *d = xo__cluster_alloc(p->arena, dl + sl + 2);
    if (!d) return NULL;
    memcpy(d, p->c->dir, dl);
    size_t k = dl;
    if (!(dl == 1 && d[0] == '/')) d[k++] = '/';
    memcpy(d + k, s, sl);
    if (sl == 0 && k > 1) d[k - 1] = '\0'; /* "./" alone: the directory itself */
    return d;
}

xo_status_t xo__cfg_parse_path(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s = NULL;
    xo_status_t st = xo__cfg_get_text(p, n, "a path", &s);
    if (st != XO_OK) return st;
    char *d = resolve_path(p, s);
    if (!d) return xo__cfg_no_memory(p);
    *AT(obj, f->off, char *) = d;
    return XO_OK;
}

/* Integers, with an optional word standing for -1. */
static xo_status_t parse_integer(pctx_t *p, const field_t *f, yaml_node_t *n, long long *v_p)
{
    char expected[96];
    if (f->word && f->word2)
        snprintf(expected, sizeof expected, "an integer from %lld to %lld, '%s' or '%s'", f->min, f->max, f->word,
                 f->word2);
    else if (f->word)
        snprintf(expected, sizeof expected, "an integer from %lld to %lld or '%s'", f->min, f->max, f->word);
    else
        snprintf(expected, sizeof expected, "an integer from %lld to %lld", f->min, f->max);
    if (!xo__cfg_is_scalar(n) || is_null(n)) return xo__cfg_fail_value(p, n, expected);
    const char *s = xo__cfg_sval(n);
    if (f->word && !strcmp(s, f->word)) {
        *v_p = -1;
        return XO_OK;
    }
    if (f->word2 && !strcmp(s, f->word2)) {
        *v_p = -2;
        return XO_OK;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool digits = s[0] && (s[0] == '-' || s[0] == '+' ? s[1] >= '0' && s[1] <= '9' : s[0] >= '0' && s[0] <= '9');
    if (!digits || *end || (size_t)(end - s) != n->data.scalar.length) {
        if (f->word) return xo__cfg_fail_value(p, n, expected);
        return xo__cfg_fail_value(p, n, "an integer");
    }
    if (errno == ERANGE || v < f->min || v > f->max) return xo__cfg_fail_value(p, n, expected);
    *v_p = v;
    return XO_OK;
}

static xo_status_t parse_int(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    long long v;
    xo_status_t st = parse_integer(p, f, n, &v);
    if (st == XO_OK) *AT(obj, f->off, int) = (int)v;
    return st;
}

static xo_status_t parse_uint(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    long long v;
    xo_status_t st = parse_integer(p, f, n, &v);
    if (st == XO_OK) *AT(obj, f->off, unsigned) = (unsigned)v;
    return st;
}

/* Numbers >= 0 (the weights). */
static xo_status_t parse_double(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    if (!xo__cfg_is_scalar(n) || is_null(n)) return xo__cfg_fail_value(p, n, "a number >= 0");
    const char *s = xo__cfg_sval(n);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    bool ok = s[0] && ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '+') && !*end &&
              (size_t)(end - s) == n->data.scalar.length && errno != ERANGE && isfinite(v) && v >= 0;
    if (!ok) return xo__cfg_fail_value(p, n, "a number >= 0");
    *AT(obj, f->off, double) = v;
    return XO_OK;
}

static void choices_text(const field_t *f, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; f->choices[i] && k < size; i++) {
        int w = snprintf(buf + k, size - k, "%s%s", i ? ", " : "", f->choices[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static xo_status_t parse_enum_value(pctx_t *p, const field_t *f, yaml_node_t *n, int *v_p)
{
    char list[160], expected[192];
    choices_text(f, list, sizeof list);
    snprintf(expected, sizeof expected, "one of: %s;", list);
    if (xo__cfg_is_scalar(n) && strlen(xo__cfg_sval(n)) == n->data.scalar.length)
        for (int i = 0; f->choices[i]; i++)
            if (!strcmp(f->choices[i], xo__cfg_sval(n))) {
                *v_p = i;
                return XO_OK;
            }
    return xo__cfg_fail_value(p, n, expected);
}

static xo_status_t parse_enum(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    int v;
    xo_status_t st = parse_enum_value(p, f, n, &v);
    if (st == XO_OK) *AT(obj, f->off, int) = v;
    return st;
}

/* Lists: the items of a sequence node, or an error. */
static xo_status_t get_items(pctx_t *p, yaml_node_t *n, const char *expected, yaml_node_item_t **items_p,
                             size_t *n_p)
{
    if (n->type != YAML_SEQUENCE_NODE) return xo__cfg_fail_value(p, n, expected);
    *items_p = n->data.sequence.items.start;
    *n_p = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return XO_OK;
}

/* A list of strings, or of paths made absolute. */
static xo_status_t parse_string_list(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj, bool paths)
{
    yaml_node_item_t *items = NULL;
    size_t cnt = 0;
    xo_status_t st = get_items(p, n, paths ? "a list of paths" : "a list of strings", &items, &cnt);
    if (st != XO_OK) return st;
    char **v = xo__cluster_alloc(p->arena, (cnt ? cnt : 1) * sizeof *v);
    if (!v) return xo__cfg_no_memory(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return xo__cfg_fail_at(p, n, "malformed list");
        size_t saved = xo__cfg_path_push_index(p, i);
        const char *s;
        st = xo__cfg_visit(p, e);
        if (st == XO_OK) st = xo__cfg_get_text(p, e, paths ? "a path" : "a string", &s);
        const char *bad = st == XO_OK && f->check ? f->check(s) : NULL;
        if (bad) st = xo__cfg_fail_value(p, e, bad);
        if (st == XO_OK && !(v[i] = paths ? resolve_path(p, s) : xo__cluster_strndup(p->arena, s, strlen(s))))
            st = xo__cfg_no_memory(p);
        xo__cfg_path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    *AT(obj, f->off, char **) = v;
    *AT(obj, f->aux_off, size_t) = cnt;
    return XO_OK;
}

static xo_status_t parse_strings(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    return parse_string_list(p, f, n, obj, false);
}

static xo_status_t parse_paths(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    return parse_string_list(p, f, n, obj, true);
}

/* A list of enum values without duplicates, at most as many as there are choices; the array is fixed (int[]). */
static xo_status_t parse_enum_list(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    char list[160], expected[192];
    choices_text(f, list, sizeof list);
    snprintf(expected, sizeof expected, "a list of: %s", list);
    yaml_node_item_t *items = NULL;
    size_t cnt = 0;
    xo_status_t st = get_items(p, n, expected, &items, &cnt);
    if (st != XO_OK) return st;
    if (cnt == 0) return xo__cfg_fail_at(p, n, "expected at least one of: %s", list);
    int *v = AT(obj, f->off, int);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return xo__cfg_fail_at(p, n, "malformed list");
        size_t saved = xo__cfg_path_push_index(p, i);
        int x = -1;
        st = xo__cfg_visit(p, e);
        if (st == XO_OK) st = parse_enum_value(p, f, e, &x);
        for (size_t j = 0; st == XO_OK && j < i; j++)
            if (v[j] == x) st = xo__cfg_fail_at(p, e, "'%s' is listed twice", f->choices[x]);
        xo__cfg_path_pop(p, saved);
        if (st != XO_OK) return st;
        v[i] = x;
    }
    *AT(obj, f->aux_off, size_t) = cnt;
    return XO_OK;
}
static xo_status_t parse_map(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    return xo__cfg_parse_table(p, f->sub, n, AT(obj, f->off, char));
}

static xo_status_t parse_maps(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    char expected[96];
    snprintf(expected, sizeof expected, "a list of %s", f->sub->what + 2); /* "a host" -> "host" */
    yaml_node_item_t *items = NULL;
    size_t cnt = 0;
    xo_status_t st = get_items(p, n, expected, &items, &cnt);
    if (st != XO_OK) return st;
    char *v = xo__cluster_alloc(p->arena, (cnt ? cnt : 1) * f->sub->size);
    if (!v) return xo__cfg_no_memory(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return xo__cfg_fail_at(p, n, "malformed list");
        size_t saved = xo__cfg_path_push_index(p, i);
        st = xo__cfg_visit(p, e);
        if (st == XO_OK) st = xo__cfg_parse_table(p, f->sub, e, v + i * f->sub->size);
        xo__cfg_path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    *AT(obj, f->off, void *) = v;
    *AT(obj, f->aux_off, size_t) = cnt;
    return XO_OK;
}

/* ---- dumping ---------------------------------------------------------------------------------------------------- */

void xo__cfg_emit_key(dumper_t *d, const field_t *f)
{
    if (d->dash) {
        fprintf(d->out, "%*s- ", d->indent - 2, "");
        d->dash = false;
    } else {
        fprintf(d->out, "%*s", d->indent, "");
    }
    fprintf(d->out, "%s:", f->name);
}

/* Whether YAML allows code point cp as it is inside a double-quoted scalar: its printable set, less the characters
 * that would change on reading back (tab and line breaks, which YAML folds; the byte order mark). */
static bool yaml_plain_char(uint32_t cp)
{
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff) return false;
    return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
           (cp >= 0x10000 && cp <= 0x10ffff);
}

/* A YAML double-quoted string that reads back as s (valid UTF-8, as libyaml hands every scalar over): quotes and
 * backslashes escaped, and every character YAML would not take as it is written as \x, \u or \U. */
void xo__cfg_emit_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    const unsigned char *c = (const unsigned char *)s;
    while (*c) {
        uint32_t cp = *c;
        size_t n = 1;
        if ((c[0] & 0xe0) == 0xc0 && c[1]) cp = (uint32_t)(c[0] & 0x1f) << 6 | (c[1] & 0x3f), n = 2;
        else if ((c[0] & 0xf0) == 0xe0 && c[1] && c[2])
            cp = (uint32_t)(c[0] & 0x0f) << 12 | (uint32_t)(c[1] & 0x3f) << 6 | (c[2] & 0x3f), n = 3;
        else if ((c[0] & 0xf8) == 0xf0 && c[1] && c[2] && c[3])
            cp = (uint32_t)(c[0] & 0x07) << 18 | (uint32_t)(c[1] & 0x3f) << 12 | (uint32_t)(c[2] & 0x3f) << 6 |
                 (c[3] & 0x3f),
            n = 4;
        if (cp == '"' || cp == '\\') fprintf(out, "\\%c", (char)cp);
        else if (yaml_plain_char(cp)) fwrite(c, 1, n, out);
        else if (cp <= 0xff) fprintf(out, "\\x%02x", (unsigned)cp);
        else if (cp <= 0xffff) fprintf(out, "\\u%04x", (unsigned)cp);
        else fprintf(out, "\\U%08x", (unsigned)cp);
        c += n;
    }
    fputc('"', out);
}

void xo__cfg_dump_string(dumper_t *d, const field_t *f, const void *obj)
{
    const char *s = *AT(obj, f->off, const char *const);
    if (!s) return;
    xo__cfg_emit_key(d, f);
    fputc(' ', d->out);
    xo__cfg_emit_quoted(d->out, s);
    fputc('\n', d->out);
}

static void dump_int(dumper_t *d, const field_t *f, const void *obj)
{
    int v = *AT(obj, f->off, const int);
    xo__cfg_emit_key(d, f);
    if (v == -2 && f->word2) fprintf(d->out, " %s\n", f->word2);
    else if (v < 0 && f->word) fprintf(d->out, " %s\n", f->word);
    else fprintf(d->out, " %d\n", v);
}

static void dump_uint(dumper_t *d, const field_t *f, const void *obj)
{
    xo__cfg_emit_key(d, f);
    fprintf(d->out, " %u\n", *AT(obj, f->off, const unsigned));
}

static void dump_double(dumper_t *d, const field_t *f, const void *obj)
{
    xo__cfg_emit_key(d, f);
    fprintf(d->out, " %.17g\n", *AT(obj, f->off, const double));
}

static void dump_enum(dumper_t *d, const field_t *f, const void *obj)
{
    xo__cfg_emit_key(d, f);
    fprintf(d->out, " %s\n", f->choices[*AT(obj, f->off, const int)]);
}

static void dump_strings(dumper_t *d, const field_t *f, const void *obj)
{
    char *const *v = *AT(obj, f->off, char **const);
    size_t n = *AT(obj, f->aux_off, const size_t);
    xo__cfg_emit_key(d, f);
    fputs(" [", d->out);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", d->out);
        xo__cfg_emit_quoted(d->out, v[i]);
    }
    fputs("]\n", d->out);
}

static void dump_enum_list(dumper_t *d, const field_t *f, const void *obj)
{
    const int *v = AT(obj, f->off, const int);
    size_t n = *AT(obj, f->aux_off, const size_t);
    xo__cfg_emit_key(d, f);
    fputs(" [", d->out);
    for (size_t i = 0; i < n; i++) fprintf(d->out, "%s%s", i ? ", " : "", f->choices[v[i]]);
    fputs("]\n", d->out);
}

void xo__cfg_dump_table(dumper_t *d, const table_t *t, const void *obj);

static void dump_map(dumper_t *d, const field_t *f, const void *obj)
{
    xo__cfg_emit_key(d, f);
    fputc('\n', d->out);
    d->indent += 2;
    xo__cfg_dump_table(d, f->sub, AT(obj, f->off, const char));
    d->indent -= 2;
}

static void dump_maps(dumper_t *d, const field_t *f, const void *obj)
{
    const char *v = *AT(obj, f->off, const char *const);
    size_t n = *AT(obj, f->aux_off, const size_t);
    xo__cfg_emit_key(d, f);
    fputs(n ? "\n" : " []\n", d->out);
    for (size_t i = 0; i < n; i++) {
        d->indent += 4;
        d->dash = true;
        xo__cfg_dump_table(d, f->sub, v + i * f->sub->size);
        d->indent -= 4;
    }
}

void xo__cfg_dump_table(dumper_t *d, const table_t *t, const void *obj)
{
    for (size_t i = 0; i < t->n_fields; i++) t->fields[i].kind->dump(d, &t->fields[i], obj);
}

/* ---- describing (the reference) ----------------------------------------------------------------------------- */

void xo__cfg_describe_plain(const char *text, char *buf, size_t size) { snprintf(buf, size, "%s", text); }
void xo__cfg_desc_string(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("string", buf, size); }
void xo__cfg_desc_path(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("path", buf, size); }
static void desc_double(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("number >= 0", buf, size); }
static void desc_strings(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("list of strings", buf, size); }
static void desc_paths(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("list of paths", buf, size); }
static void desc_map(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("mapping", buf, size); }
static void desc_maps(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("list of mappings", buf, size); }

static void desc_integer(const field_t *f, char *buf, size_t size)
{
    if (f->word && f->word2) snprintf(buf, size, "integer %lld..%lld, `%s` or `%s`", f->min, f->max, f->word, f->word2);
    else if (f->word) snprintf(buf, size, "integer %lld..%lld or `%s`", f->min, f->max, f->word);
    else snprintf(buf, size, "integer %lld..%lld", f->min, f->max);
}

static void desc_choices(const field_t *f, char *buf, size_t size, const char *prefix)
{
    size_t k = (size_t)snprintf(buf, size, "%s", prefix);
    for (size_t i = 0; f->choices[i] && k < size; i++) {
        int w = snprintf(buf + k, size - k, "%s`%s`", i ? " \\| " : "", f->choices[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static void desc_enum(const field_t *f, char *buf, size_t size) { desc_choices(f, buf, size, ""); }
static void desc_enum_list(const field_t *f, char *buf, size_t size) { desc_choices(f, buf, size, "list of "); }



const kind_t xo__cfg_kind_string = {parse_string, xo__cfg_dump_string, xo__cfg_desc_string};
const kind_t xo__cfg_kind_int = {parse_int, dump_int, desc_integer};
const kind_t xo__cfg_kind_uint = {parse_uint, dump_uint, desc_integer};
const kind_t xo__cfg_kind_double = {parse_double, dump_double, desc_double};
const kind_t xo__cfg_kind_enum = {parse_enum, dump_enum, desc_enum};
const kind_t xo__cfg_kind_strings = {parse_strings, dump_strings, desc_strings};
const kind_t xo__cfg_kind_paths = {parse_paths, dump_strings, desc_paths};
const kind_t xo__cfg_kind_path = {xo__cfg_parse_path, xo__cfg_dump_string, xo__cfg_desc_path};
const kind_t xo__cfg_kind_enum_list = {parse_enum_list, dump_enum_list, desc_enum_list};
const kind_t xo__cfg_kind_map = {parse_map, dump_map, desc_map};
const kind_t xo__cfg_kind_maps = {parse_maps, dump_maps, desc_maps};


/* ---- loading ------------------------------------------------------------------------------------------------- */

/* libyaml's reader errors carry a byte offset, not a mark: count lines up to it. */
static void offset_to_line(const char *data, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') (*line)++, *col = 1;
        else (*col)++;
    }
}

static xo_status_t syntax_error(const char *file, const char *data, size_t len, yaml_parser_t *yp,
                                xo_cluster_error_t *err)
{
    if (yp->error == YAML_MEMORY_ERROR) return xo__cluster_error(err, XO_ENOMEM, file, 0, 0, "out of memory");
    const char *problem = yp->problem ? yp->problem : "malformed YAML";
    int line, col;
    if (yp->error == YAML_READER_ERROR) {
        offset_to_line(data, len, yp->problem_offset, &line, &col);
        return xo__cluster_error(err, XO_ECONFIG, file, line, col, "YAML syntax error: %s (byte %zu)", problem,
                                 yp->problem_offset);
    }
    line = (int)yp->problem_mark.line + 1;
    col = (int)yp->problem_mark.column + 1;
    if (yp->context)
        return xo__cluster_error(err, XO_ECONFIG, file, line, col, "YAML syntax error: %s (%s at line %d, column %d)",
                                 problem, yp->context, (int)yp->context_mark.line + 1,
                                 (int)yp->context_mark.column + 1);
    return xo__cluster_error(err, XO_ECONFIG, file, line, col, "YAML syntax error: %s", problem);
}

xo_status_t xo__cfg_load(const char *data, size_t len, const char *file, const char *dir, const table_t *root_table,
                         xo_cluster_t **c_p, xo_cluster_error_t *err)
{
    void *arena = NULL;
    xo_cluster_t *c = xo__cluster_alloc(&arena, sizeof *c);
    if (c) {
        c->path = xo__cluster_strndup(&arena, file, strlen(file));
        c->dir = xo__cluster_strndup(&arena, dir, strlen(dir));
    }
    if (!c || !c->path || !c->dir) {
        xo__cluster_arena_free(arena);
        return xo__cluster_error(err, XO_ENOMEM, file, 0, 0, "out of memory");
    }
    yaml_parser_t yp;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&yp)) {
        xo__cluster_arena_free(arena);
        return xo__cluster_error(err, XO_ENOMEM, file, 0, 0, "out of memory");
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)data, len);
    xo_status_t st = XO_OK;
    if (!yaml_parser_load(&yp, &doc)) {
        st = syntax_error(file, data, len, &yp, err);
        yaml_parser_delete(&yp);
        xo__cluster_arena_free(arena);
        return st;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        st = xo__cluster_error(err, XO_ECONFIG, file, 1, 1,
                               "the file is empty (expected a mapping with at least 'hosts' and 'secret')");
    } else {
        /* A second document is refused rather than ignored: it is most likely a mistake (a stray ---). */
        yaml_document_t doc2;
        if (!yaml_parser_load(&yp, &doc2)) {
            st = syntax_error(file, data, len, &yp, err);
        } else {
            yaml_node_t *root2 = yaml_document_get_root_node(&doc2);
            if (root2)
                st = xo__cluster_error(err, XO_ECONFIG, file, (int)doc2.start_mark.line + 1,
                                       (int)doc2.start_mark.column + 1,
                                       "a second YAML document starts here; a cluster file holds one");
            yaml_document_delete(&doc2);
        }
    }
    if (st == XO_OK) {
        pctx_t p = {.file = file, .doc = &doc, .c = c, .arena = &arena, .err = err, .budget = VISIT_BUDGET};
        st = xo__cfg_parse_table(&p, root_table, root, c);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    if (st != XO_OK) {
        xo__cluster_arena_free(arena);
        return st;
    }
    c->arena = arena;
    *c_p = c;
    return XO_OK;
}

/* ---- the reference --------------------------------------------------------------------------------------------- */

static void write_default(FILE *out, const field_t *f)
{
    if (f->required) fputs("**required**", out);
    else if (f->def_doc) fputs(f->def_doc, out);
    else if (f->def) fprintf(out, "`%s`", f->def);
    else fputs("(none)", out);
}

void xo__cfg_write_table(FILE *out, const table_t *t)
{
    fprintf(out, "### `%s`\n\n%s\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n", t->where, t->doc);
    for (size_t i = 0; i < t->n_fields; i++) {
        const field_t *f = &t->fields[i];
        char type[320];
        if (f->type_doc) snprintf(type, sizeof type, "%s", f->type_doc);
        else f->kind->describe(f, type, sizeof type);
        fprintf(out, "| `%s` | %s | ", f->name, type);
        write_default(out, f);
        fprintf(out, " | %s |\n", f->doc);
    }
    fputc('\n', out);
    for (size_t i = 0; i < t->n_fields; i++)
        if (t->fields[i].sub) xo__cfg_write_table(out, t->fields[i].sub);
}

