/* The cluster file: the key tables, the YAML parser (libyaml's document API), the dump and the key reference. See
 * runtime/cluster_file.h and docs/cluster-file.md.
 *
 * Everything a key is (its name, type, default, documentation and where its value goes) is one row of a table, one
 * table per mapping level. The parser walks the YAML tree with the tables; a default is YAML text parsed by the same
 * row as a value from the file would be, so a default cannot disagree with what the parser accepts. The dump and the
 * reference in the docs walk the same tables. */
#include "cluster/cluster_file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Values visited, aliases expanded, before a file is refused: anchors and aliases may make a small file describe
 * a huge tree ("billion laughs"), and the walk follows aliases. A real cluster file has a few hundred values. */
#define VISIT_BUDGET 100000

/* The largest secret_file read. */
#define SECRET_FILE_MAX 65536

/* What xo__cluster_dump writes in place of an inline secret; refused as a secret so that a dump is never loaded
 * back by mistake as if it held the real one. */
#define HIDDEN_SECRET "***"

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

/* ---- tables --------------------------------------------------------------------------------------------------- */

typedef struct pctx pctx_t;
typedef struct field field_t;
typedef struct table table_t;
typedef struct dumper dumper_t;

/* How a type of value is parsed, written back and described. parse reads node n into obj (the struct of the
 * mapping that holds the key; the value goes to obj + f->off). */
typedef struct kind {
    xo_status_t (*parse)(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj);
    void (*dump)(dumper_t *d, const field_t *f, const void *obj);
    void (*describe)(const field_t *f, char *buf, size_t len);
} kind_t;

struct field {
    const char *name;
    const kind_t *kind;
    size_t off;                          /* the value in the mapping's struct */
    size_t aux_off;                      /* lists: the count (size_t); policy: the kind; secret: its length */
    bool required;
    const char *def;                     /* the default as YAML text; NULL: required, or absent means "not given" */
    const char *def_doc;                 /* the default as the reference writes it, when not `def` */
    const char *doc;
    const char *const *choices;          /* enums: the names of the values 0, 1, ...; NULL-terminated */
    long long min, max;                  /* integers */
    const char *word;                    /* integers: a word that stands for -1 ("auto", "none") */
    const char *word2;                   /* integers: a second word, standing for -2 ("gpus") */
    const char *(*check)(const char *s); /* strings: NULL when s is fine, else what was expected */
    const char *type_doc;                /* the type as the reference writes it, when the kind's is too vague */
    const table_t *sub;                  /* mappings and lists of mappings */
    bool has_mark;
    size_t mark_off;                     /* where the value's xo_cluster_mark_t goes */
};

struct table {
    const char *what;  /* "a pool", for messages */
    const char *where; /* "hosts[].pools[]", for the reference */
    const char *doc;
    const field_t *fields;
    size_t n_fields;
    size_t size;       /* of the struct, for lists of mappings */
    bool has_mark;
    size_t mark_off;   /* where the mapping's own xo_cluster_mark_t goes */
    /* Runs after every key is parsed or defaulted; vals[i] is the node of fields[i], NULL when it was absent. */
    xo_status_t (*check)(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals);
};

#define MAX_FIELDS 16

struct pctx {
    const char *file;
    yaml_document_t *doc;
    xo_cluster_t *c;
    void **arena;
    xo_cluster_error_t *err;
    long budget;
    bool in_default; /* parsing a built-in default: no marks */
    char path[256];  /* "hosts[1].pools[0].cpus", for messages */
    size_t path_len;
};

/* ---- messages ------------------------------------------------------------------------------------------------- */

static xo_status_t fail_at(pctx_t *p, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static xo_status_t fail_at(pctx_t *p, const yaml_node_t *n, const char *fmt, ...)
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

static xo_status_t no_memory(pctx_t *p)
{
    return xo__cluster_error(p->err, XO_ENOMEM, p->file, 0, 0, "out of memory");
}

static bool is_scalar(const yaml_node_t *n) { return n->type == YAML_SCALAR_NODE; }
static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* A plain scalar that YAML reads as null: empty, ~, null. */
static bool is_null(const yaml_node_t *n)
{
    if (!is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = sval(n);
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
    else quote(sval(n), n->data.scalar.length, buf, size);
}

/* "PATH: expected <expected>, got 'value'". */
static xo_status_t fail_value(pctx_t *p, const yaml_node_t *n, const char *expected)
{
    char got[64];
    describe_node(n, got, sizeof got);
    size_t len = strlen(expected);
    /* "expected one of: a, b; got 'c'": a list ends with ';' so that the comma does not read as one more item. */
    return fail_at(p, n, "expected %s%s got %s", expected, len && expected[len - 1] == ';' ? "" : ",", got);
}

static size_t path_push_key(pctx_t *p, const char *key)
{
    size_t saved = p->path_len;
    int w = snprintf(p->path + p->path_len, sizeof p->path - p->path_len, "%s%s", p->path_len ? "." : "", key);
    if (w > 0) p->path_len = strnlen(p->path, sizeof p->path);
    return saved;
}

static size_t path_push_index(pctx_t *p, size_t i)
{
    size_t saved = p->path_len;
    int w = snprintf(p->path + p->path_len, sizeof p->path - p->path_len, "[%zu]", i);
    if (w > 0) p->path_len = strnlen(p->path, sizeof p->path);
    return saved;
}

static void path_pop(pctx_t *p, size_t saved)
{
    p->path_len = saved;
    p->path[saved] = '\0';
}

static xo_status_t visit(pctx_t *p, const yaml_node_t *n)
{
    if (--p->budget >= 0) return XO_OK;
    return fail_at(p, n, "the file has more than %d values (aliases expanded); a cluster file this large is refused",
                   VISIT_BUDGET);
}

static void set_mark(pctx_t *p, void *obj, bool has, size_t off, const yaml_node_t *n)
{
    if (!has) return;
    xo_cluster_mark_t *m = (xo_cluster_mark_t *)((char *)obj + off);
    if (p->in_default) *m = (xo_cluster_mark_t){0, 0};
    else *m = (xo_cluster_mark_t){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

#define AT(obj, off, type) ((type *)((char *)(obj) + (off)))

/* ---- parsing: generic --------------------------------------------------------------------------------------- */

static xo_status_t parse_table(pctx_t *p, const table_t *t, yaml_node_t *n, void *obj);

/* Parses f's default (YAML text) into obj. */
static xo_status_t parse_default(pctx_t *p, const field_t *f, void *obj)
{
    yaml_parser_t yp;
    yaml_document_t d;
    if (!yaml_parser_initialize(&yp)) return no_memory(p);
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

static xo_status_t parse_table(pctx_t *p, const table_t *t, yaml_node_t *n, void *obj)
{
    if (n->type != YAML_MAPPING_NODE) {
        char expected[96];
        snprintf(expected, sizeof expected, "%s (a mapping of key: value)", t->what);
        return fail_value(p, n, expected);
    }
    set_mark(p, obj, t->has_mark, t->mark_off, n);
    yaml_node_t *vals[MAX_FIELDS] = {0};
    yaml_node_t *keys[MAX_FIELDS] = {0};
    xo_status_t st = XO_OK;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(p->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(p->doc, pair->value);
        if (!k || !v) return fail_at(p, n, "malformed mapping");
        if ((st = visit(p, k)) != XO_OK) return st;
        char expected[256];
        if (!is_scalar(k) || is_null(k)) {
            char got[64];
            list_keys(t, expected, sizeof expected);
            describe_node(k, got, sizeof got);
            return fail_at(p, k, "expected a key of %s (one of: %s), got %s", t->what, expected, got);
        }
        size_t i = 0;
        while (i < t->n_fields && (strlen(sval(k)) != k->data.scalar.length || strcmp(t->fields[i].name, sval(k))))
            i++;
        if (i == t->n_fields) {
            char got[64];
            quote(sval(k), k->data.scalar.length, got, sizeof got);
            list_keys(t, expected, sizeof expected);
            return fail_at(p, k, "unknown key %s in %s (expected one of: %s)", got, t->what, expected);
        }
        if (vals[i])
            return fail_at(p, k, "duplicate key '%s' in %s (first at line %d)", t->fields[i].name, t->what,
                           (int)keys[i]->start_mark.line + 1);
        keys[i] = k;
        vals[i] = v;
        size_t saved = path_push_key(p, t->fields[i].name);
        st = t->fields[i].kind->parse(p, &t->fields[i], v, obj);
        path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    for (size_t i = 0; i < t->n_fields; i++) {
        const field_t *f = &t->fields[i];
        if (vals[i]) continue;
        if (f->required) return fail_at(p, n, "missing key '%s' in %s (required: %s)", f->name, t->what, f->doc);
        if (!f->def) continue;
        size_t saved = path_push_key(p, f->name);
        st = parse_default(p, f, obj);
        path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    return t->check ? t->check(p, obj, n, vals) : XO_OK;
}

/* A scalar's text, refused when it is null, not a scalar, or holds a NUL. */
static xo_status_t get_text(pctx_t *p, yaml_node_t *n, const char *expected, const char **s_p)
{
    if (!is_scalar(n) || is_null(n) || strlen(sval(n)) != n->data.scalar.length) return fail_value(p, n, expected);
    *s_p = sval(n);
    return XO_OK;
}

/* ---- kinds ------------------------------------------------------------------------------------------------------ */

/* Strings. */
static xo_status_t parse_string(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = get_text(p, n, "a string", &s);
    if (st != XO_OK) return st;
    const char *bad = f->check ? f->check(s) : NULL;
    if (bad) return fail_value(p, n, bad);
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return no_memory(p);
    *AT(obj, f->off, char *) = d;
    set_mark(p, obj, f->has_mark, f->mark_off, n);
    return XO_OK;
}

/* A path relative to the cluster file's directory, made absolute (lexically: the file need not exist here). */
static char *resolve_path(pctx_t *p, const char *s)
{
    if (s[0] == '/') return xo__cluster_strndup(p->arena, s, strlen(s));
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

static xo_status_t parse_path(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s = NULL;
    xo_status_t st = get_text(p, n, "a path", &s);
    if (st != XO_OK) return st;
    char *d = resolve_path(p, s);
    if (!d) return no_memory(p);
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
    if (!is_scalar(n) || is_null(n)) return fail_value(p, n, expected);
    const char *s = sval(n);
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
        if (f->word) return fail_value(p, n, expected);
        return fail_value(p, n, "an integer");
    }
    if (errno == ERANGE || v < f->min || v > f->max) return fail_value(p, n, expected);
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
    if (!is_scalar(n) || is_null(n)) return fail_value(p, n, "a number >= 0");
    const char *s = sval(n);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    bool ok = s[0] && ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '+') && !*end &&
              (size_t)(end - s) == n->data.scalar.length && errno != ERANGE && isfinite(v) && v >= 0;
    if (!ok) return fail_value(p, n, "a number >= 0");
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
    if (is_scalar(n) && strlen(sval(n)) == n->data.scalar.length)
        for (int i = 0; f->choices[i]; i++)
            if (!strcmp(f->choices[i], sval(n))) {
                *v_p = i;
                return XO_OK;
            }
    return fail_value(p, n, expected);
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
    if (n->type != YAML_SEQUENCE_NODE) return fail_value(p, n, expected);
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
    if (!v) return no_memory(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return fail_at(p, n, "malformed list");
        size_t saved = path_push_index(p, i);
        const char *s;
        st = visit(p, e);
        if (st == XO_OK) st = get_text(p, e, paths ? "a path" : "a string", &s);
        const char *bad = st == XO_OK && f->check ? f->check(s) : NULL;
        if (bad) st = fail_value(p, e, bad);
        if (st == XO_OK && !(v[i] = paths ? resolve_path(p, s) : xo__cluster_strndup(p->arena, s, strlen(s))))
            st = no_memory(p);
        path_pop(p, saved);
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
    if (cnt == 0) return fail_at(p, n, "expected at least one of: %s", list);
    int *v = AT(obj, f->off, int);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return fail_at(p, n, "malformed list");
        size_t saved = path_push_index(p, i);
        int x = -1;
        st = visit(p, e);
        if (st == XO_OK) st = parse_enum_value(p, f, e, &x);
        for (size_t j = 0; st == XO_OK && j < i; j++)
            if (v[j] == x) st = fail_at(p, e, "'%s' is listed twice", f->choices[x]);
        path_pop(p, saved);
        if (st != XO_OK) return st;
        v[i] = x;
    }
    *AT(obj, f->aux_off, size_t) = cnt;
    return XO_OK;
}

/* A cpu list, checked for syntax only (whether its CPUs exist depends on the host: xo__cluster_check_host), or
 * "auto" (NULL). */
static xo_status_t parse_cpus(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = get_text(p, n, "a cpu list such as \"0-3,8\" or 'auto'", &s);
    if (st != XO_OK) return st;
    set_mark(p, obj, f->has_mark, f->mark_off, n);
    if (!strcmp(s, "auto")) {
        *AT(obj, f->off, char *) = NULL;
        return XO_OK;
    }
    xo_cpuset_t set;
    char why[XO_ERROR_TEXT_MAX];
    if (xo__cpuset_parse(s, &set, why, sizeof why) != XO_OK) return fail_at(p, n, "%s", why);
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return no_memory(p);
    *AT(obj, f->off, char *) = d;
    return XO_OK;
}

/* A placement policy usable as a cluster's default: one that needs no per-call parameter. */
static bool policy_is_default_able(xo_place_kind_t k)
{
    return k != XO_PLACE_ADDRESS && k != XO_PLACE_PROCESS_INDEX && k != XO_PLACE_RANDOM_LABEL &&
           k != XO_PLACE_IDLE_LABEL;
}

static void policies_text(char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < XO_PLACE_KIND_COUNT && k < size; i++) {
        const xo_policy_ops_t *ops = xo__policy_get((xo_place_kind_t)i);
        if (!ops || !policy_is_default_able(ops->kind)) continue;
        int w = snprintf(buf + k, size - k, "%s%s", k ? ", " : "", ops->name);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static xo_status_t parse_policy(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    char list[256], expected[320];
    policies_text(list, sizeof list);
    snprintf(expected, sizeof expected, "a placement policy, one of: %s;", list);
    if (!is_scalar(n) || strlen(sval(n)) != n->data.scalar.length) return fail_value(p, n, expected);
    const xo_policy_ops_t *ops = xo__policy_find(sval(n));
    if (!ops) return fail_value(p, n, expected);
    if (!policy_is_default_able(ops->kind))
        return fail_at(p, n, "policy '%s' needs a parameter per call and cannot be the cluster's default "
                             "(expected one of: %s)", sval(n), list);
    char *d = xo__cluster_strndup(p->arena, ops->name, strlen(ops->name));
    if (!d) return no_memory(p);
    *AT(obj, f->off, char *) = d;
    *AT(obj, f->aux_off, int) = (int)ops->kind;
    return XO_OK;
}

/* The inline secret. */
static xo_status_t parse_secret(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = get_text(p, n, "a non-empty string", &s);
    if (st != XO_OK) return st;
    if (!s[0]) return fail_value(p, n, "a non-empty string");
    if (!strcmp(s, HIDDEN_SECRET))
        return fail_at(p, n, "'" HIDDEN_SECRET "' is what `xoscar config --dump` writes in place of a hidden "
                             "secret; give the real secret (or secret_file)");
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return no_memory(p);
    *AT(obj, f->off, char *) = d;
    *AT(obj, f->aux_off, size_t) = strlen(s);
    return XO_OK;
}

/* secret_file: its path, made absolute, and the secret read from it (trailing white space dropped). */
static xo_status_t parse_secret_file(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    xo_status_t st = parse_path(p, f, n, obj);
    if (st != XO_OK) return st;
    const char *path = *AT(obj, f->off, char *);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0) return fail_at(p, n, "cannot read the secret file '%s': %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return fail_at(p, n, "cannot read the secret file '%s': %s", path,
                       S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    if (sb.st_size > SECRET_FILE_MAX) {
        close(fd);
        return fail_at(p, n, "the secret file '%s' is larger than %d bytes", path, SECRET_FILE_MAX);
    }
    char *buf = xo__cluster_alloc(p->arena, (size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return no_memory(p);
    }
    size_t len = 0;
    while (len < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail_at(p, n, "cannot read the secret file '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    if (len == 0) return fail_at(p, n, "the secret file '%s' is empty", path);
    p->c->secret = buf;
    p->c->secret_len = len;
    return XO_OK;
}

static xo_status_t parse_map(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    return parse_table(p, f->sub, n, AT(obj, f->off, char));
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
    if (!v) return no_memory(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *e = yaml_document_get_node(p->doc, items[i]);
        if (!e) return fail_at(p, n, "malformed list");
        size_t saved = path_push_index(p, i);
        st = visit(p, e);
        if (st == XO_OK) st = parse_table(p, f->sub, e, v + i * f->sub->size);
        path_pop(p, saved);
        if (st != XO_OK) return st;
    }
    *AT(obj, f->off, void *) = v;
    *AT(obj, f->aux_off, size_t) = cnt;
    return XO_OK;
}

/* ---- dumping ---------------------------------------------------------------------------------------------------- */

struct dumper {
    FILE *out;
    int indent;
    bool dash; /* the next key starts a list item: "- " in place of the last two spaces of its indent */
};

static void emit_key(dumper_t *d, const field_t *f)
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
static void emit_quoted(FILE *out, const char *s)
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

static void dump_string(dumper_t *d, const field_t *f, const void *obj)
{
    const char *s = *AT(obj, f->off, const char *const);
    if (!s) return;
    emit_key(d, f);
    fputc(' ', d->out);
    emit_quoted(d->out, s);
    fputc('\n', d->out);
}

static void dump_int(dumper_t *d, const field_t *f, const void *obj)
{
    int v = *AT(obj, f->off, const int);
    emit_key(d, f);
    if (v == -2 && f->word2) fprintf(d->out, " %s\n", f->word2);
    else if (v < 0 && f->word) fprintf(d->out, " %s\n", f->word);
    else fprintf(d->out, " %d\n", v);
}

static void dump_uint(dumper_t *d, const field_t *f, const void *obj)
{
    emit_key(d, f);
    fprintf(d->out, " %u\n", *AT(obj, f->off, const unsigned));
}

static void dump_double(dumper_t *d, const field_t *f, const void *obj)
{
    emit_key(d, f);
    fprintf(d->out, " %.17g\n", *AT(obj, f->off, const double));
}

static void dump_enum(dumper_t *d, const field_t *f, const void *obj)
{
    emit_key(d, f);
    fprintf(d->out, " %s\n", f->choices[*AT(obj, f->off, const int)]);
}

static void dump_strings(dumper_t *d, const field_t *f, const void *obj)
{
    char *const *v = *AT(obj, f->off, char **const);
    size_t n = *AT(obj, f->aux_off, const size_t);
    emit_key(d, f);
    fputs(" [", d->out);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", d->out);
        emit_quoted(d->out, v[i]);
    }
    fputs("]\n", d->out);
}

static void dump_enum_list(dumper_t *d, const field_t *f, const void *obj)
{
    const int *v = AT(obj, f->off, const int);
    size_t n = *AT(obj, f->aux_off, const size_t);
    emit_key(d, f);
    fputs(" [", d->out);
    for (size_t i = 0; i < n; i++) fprintf(d->out, "%s%s", i ? ", " : "", f->choices[v[i]]);
    fputs("]\n", d->out);
}

static void dump_cpus(dumper_t *d, const field_t *f, const void *obj)
{
    const char *s = *AT(obj, f->off, const char *const);
    emit_key(d, f);
    if (!s) {
        fputs(" auto\n", d->out);
        return;
    }
    fputc(' ', d->out);
    emit_quoted(d->out, s);
    fputc('\n', d->out);
}

static void dump_policy(dumper_t *d, const field_t *f, const void *obj)
{
    emit_key(d, f);
    fprintf(d->out, " %s\n", *AT(obj, f->off, const char *const));
}

static void dump_secret(dumper_t *d, const field_t *f, const void *obj)
{
    const xo_cluster_t *c = obj;
    if (c->secret_file) return; /* secret_file is written instead */
    emit_key(d, f);
    fprintf(d->out, " \"" HIDDEN_SECRET "\"  # hidden (%zu bytes)\n", c->secret_len);
}

static void dump_table(dumper_t *d, const table_t *t, const void *obj);

static void dump_map(dumper_t *d, const field_t *f, const void *obj)
{
    emit_key(d, f);
    fputc('\n', d->out);
    d->indent += 2;
    dump_table(d, f->sub, AT(obj, f->off, const char));
    d->indent -= 2;
}

static void dump_maps(dumper_t *d, const field_t *f, const void *obj)
{
    const char *v = *AT(obj, f->off, const char *const);
    size_t n = *AT(obj, f->aux_off, const size_t);
    emit_key(d, f);
    fputs(n ? "\n" : " []\n", d->out);
    for (size_t i = 0; i < n; i++) {
        d->indent += 4;
        d->dash = true;
        dump_table(d, f->sub, v + i * f->sub->size);
        d->indent -= 4;
    }
}

static void dump_table(dumper_t *d, const table_t *t, const void *obj)
{
    for (size_t i = 0; i < t->n_fields; i++) t->fields[i].kind->dump(d, &t->fields[i], obj);
}

/* ---- describing (the reference) ----------------------------------------------------------------------------- */

static void describe_plain(const char *text, char *buf, size_t size) { snprintf(buf, size, "%s", text); }
static void desc_string(const field_t *f, char *buf, size_t size) { describe_plain("string", buf, size); }
static void desc_path(const field_t *f, char *buf, size_t size) { describe_plain("path", buf, size); }
static void desc_double(const field_t *f, char *buf, size_t size) { describe_plain("number >= 0", buf, size); }
static void desc_strings(const field_t *f, char *buf, size_t size) { describe_plain("list of strings", buf, size); }
static void desc_paths(const field_t *f, char *buf, size_t size) { describe_plain("list of paths", buf, size); }
static void desc_cpus(const field_t *f, char *buf, size_t size) { describe_plain("cpu list or `auto`", buf, size); }
static void desc_map(const field_t *f, char *buf, size_t size) { describe_plain("mapping", buf, size); }
static void desc_maps(const field_t *f, char *buf, size_t size) { describe_plain("list of mappings", buf, size); }

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

static void desc_policy(const field_t *f, char *buf, size_t size)
{
    char list[256];
    policies_text(list, sizeof list);
    snprintf(buf, size, "policy: %s", list);
}

static const kind_t K_STRING = {parse_string, dump_string, desc_string};
static const kind_t K_INT = {parse_int, dump_int, desc_integer};
static const kind_t K_UINT = {parse_uint, dump_uint, desc_integer};
static const kind_t K_DOUBLE = {parse_double, dump_double, desc_double};
static const kind_t K_ENUM = {parse_enum, dump_enum, desc_enum};
static const kind_t K_STRINGS = {parse_strings, dump_strings, desc_strings};
static const kind_t K_PATHS = {parse_paths, dump_strings, desc_paths};
static const kind_t K_PATH = {parse_path, dump_string, desc_path};
static const kind_t K_ENUM_LIST = {parse_enum_list, dump_enum_list, desc_enum_list};
static const kind_t K_CPUS = {parse_cpus, dump_cpus, desc_cpus};
static const kind_t K_POLICY = {parse_policy, dump_policy, desc_policy};
static const kind_t K_SECRET = {parse_secret, dump_secret, desc_string};
static const kind_t K_SECRET_FILE = {parse_secret_file, dump_string, desc_path};
static const kind_t K_MAP = {parse_map, dump_map, desc_map};
static const kind_t K_MAPS = {parse_maps, dump_maps, desc_maps};

/* ---- value checks ------------------------------------------------------------------------------------------- */

static const char *check_name(const char *s)
{
    static const char expected[] = "a name of letters, digits, '.', '_' and '-' (1 to 64 characters)";
    size_t n = strlen(s);
    if (n == 0 || n > 64) return expected;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return expected;
    return NULL;
}

static const char *check_label(const char *s)
{
    static const char expected[] = "a label (1 to 64 characters, no comma, no space)";
    size_t n = strlen(s);
    if (n == 0 || n > 64) return expected;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c == ',' || *c <= 0x20 || *c == 0x7f) return expected;
    return NULL;
}

static bool is_hostname(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-') return false;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   (ch == '-' && label > 0)) {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    return s[n - 1] != '-';
}

static const char *check_address(const char *s)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1 || is_hostname(s)) return NULL;
    if (strchr(s, ':')) return "an IP address or a host name (without a port: the port goes in 'port')";
    return "an IP address or a host name";
}

static const char *check_nonempty(const char *s) { return s[0] ? NULL : "a non-empty string"; }

/* A pool's device: none, auto, host, host:N or cuda:N with N in 0..1023 (decimal, no sign). */
static const char *check_device(const char *s)
{
    static const char expected[] = "one of: none, auto, host, host:N, cuda:N (N a device index, 0 to 1023)";
    if (!strcmp(s, "none") || !strcmp(s, "auto") || !strcmp(s, "host")) return NULL;
    const char *num = !strncmp(s, "host:", 5) ? s + 5 : !strncmp(s, "cuda:", 5) ? s + 5 : NULL;
    if (!num || !num[0] || strlen(num) > 4) return expected;
    for (const char *c = num; *c; c++)
        if (*c < '0' || *c > '9') return expected;
    return atoi(num) <= 1023 ? NULL : expected;
}

/* ---- the tables ------------------------------------------------------------------------------------------------ */

static const char *const restart_names[] = {"none", "process", "actors", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const launcher_names[] = {"ssh", "local", "none", NULL};
static const char *const transport_names[] = {"shm", "unix", "ucx", "tcp", NULL};

_Static_assert(XO_RESTART_NONE == 0 && XO_RESTART_PROCESS == 1 && XO_RESTART_ACTORS == 2, "restart_names");
_Static_assert(XO_LOG_ERROR == 0 && XO_LOG_WARN == 1 && XO_LOG_INFO == 2 && XO_LOG_DEBUG == 3, "log_level_names");
_Static_assert(XO_LAUNCHER_SSH == 0 && XO_LAUNCHER_LOCAL == 1 && XO_LAUNCHER_NONE == 2, "launcher_names");
_Static_assert(XO_CLUSTER_TRANSPORT_SHM == 0 && XO_CLUSTER_TRANSPORT_TCP == 3 && XO_CLUSTER_N_TRANSPORTS == 4,
               "transport_names");
_Static_assert(sizeof(xo_restart_t) == sizeof(int) && sizeof(xo_log_level_t) == sizeof(int) &&
                   sizeof(xo_launcher_t) == sizeof(int) && sizeof(xo_cluster_transport_t) == sizeof(int) &&
                   sizeof(xo_place_kind_t) == sizeof(int),
               "enums are stored as int");

static xo_status_t pool_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals);
static xo_status_t host_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals);
static xo_status_t cluster_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals);

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The indices of fields the checks read. */
enum { POOL_CPUS, POOL_COUNT, POOL_GPU, POOL_DEVICE };
enum { HOST_POOLS = 5 };
enum { CLUSTER_SECRET = 1, CLUSTER_SECRET_FILE = 2, CLUSTER_HOSTS = 8 };

static const field_t pool_fields[] = {
    [POOL_CPUS] = {.name = "cpus", .kind = &K_CPUS, .off = offsetof(xo_cluster_pool_t, cpus), .def = "auto",
                   .has_mark = true, .mark_off = offsetof(xo_cluster_pool_t, cpus_mark),
                   .doc = "The CPUs the entry's sub pools are bound to, as a Linux cpu list (\"0-3,8\"); `auto`: the "
                          "whole host. With a count above 1 the list is split between the pools by whole cores."},
    [POOL_COUNT] = {.name = "count", .kind = &K_INT, .off = offsetof(xo_cluster_pool_t, count), .def = "auto",
                    .def_doc = "1 with a cpu list; `auto` with `cpus: auto`", .min = 0,
                    .max = XO_CLUSTER_MAX_SUB_POOLS, .word = "auto", .word2 = "gpus",
                    .doc = "How many identical sub pools this entry makes; `auto`: one per core of its CPUs; `gpus`: "
                           "one per CUDA GPU of the host (found by `xoscar up` there), sub pool k owning GPU k."},
    [POOL_GPU] = {.name = "gpu", .kind = &K_INT, .off = offsetof(xo_cluster_pool_t, gpu), .def = "none", .min = 0,
                  .max = 1023, .word = "none",
                  .doc = "The index of the CUDA GPU each of the entry's sub pools owns (the same as `device: cuda:N`; "
                         "give one of `gpu` and `device`); `none`: no GPU."},
    [POOL_DEVICE] = {.name = "device", .kind = &K_STRING, .off = offsetof(xo_cluster_pool_t, device), .def = "none",
                     .check = check_device, .type_doc = "`none` \\| `auto` \\| `host` \\| `host:N` \\| `cuda:N`",
                     .has_mark = true, .mark_off = offsetof(xo_cluster_pool_t, device_mark),
                     .doc = "The device each of the entry's sub pools owns (actors allocate on it and lend its buffers, "
                            "include/xoscar/device_buf.h): `cuda:N` a GPU; `host`, `host:N` a device on host memory "
                            "(runs everywhere); `auto` a GPU of the host if `xoscar up` finds one (the auto pools "
                            "take its GPUs in turn), else the host device, logged with the reason; `none`: no device."},
    {.name = "labels", .kind = &K_STRINGS, .off = offsetof(xo_cluster_pool_t, labels),
     .aux_off = offsetof(xo_cluster_pool_t, n_labels), .def = "[]", .check = check_label,
     .type_doc = "list of labels", .doc = "Labels (no comma, no space) for placement (`random_label`, `idle_label`, and the label filter of the other policies)."},
    {.name = "threads", .kind = &K_UINT, .off = offsetof(xo_cluster_pool_t, threads), .def = "0", .min = 0,
     .max = 1024, .doc = "Scheduler threads of each sub pool; 0: one per CPU it is bound to."},
};

static const table_t pool_table = {
    .what = "a pool", .where = "hosts[].pools[]",
    .doc = "One entry of a host's sub pools (the main pool is not listed here: see `main`).",
    .fields = pool_fields, .n_fields = COUNT_OF(pool_fields), .size = sizeof(xo_cluster_pool_t),
    .has_mark = true, .mark_off = offsetof(xo_cluster_pool_t, mark), .check = pool_check,
};

static const field_t main_fields[] = {
    {.name = "threads", .kind = &K_UINT, .off = offsetof(xo_cluster_main_t, threads), .def = "1", .min = 1,
     .max = 1024, .doc = "Scheduler threads of the main pool."},
    {.name = "labels", .kind = &K_STRINGS, .off = offsetof(xo_cluster_main_t, labels),
     .aux_off = offsetof(xo_cluster_main_t, n_labels), .def = "[]", .check = check_label,
     .type_doc = "list of labels", .doc = "Labels of the main pool."},
};

static const table_t main_table = {
    .what = "a main pool", .where = "hosts[].main", .doc = "A host's main pool, which always exists.",
    .fields = main_fields, .n_fields = COUNT_OF(main_fields), .size = sizeof(xo_cluster_main_t),
};

static const field_t host_fields[] = {
    {.name = "name", .kind = &K_STRING, .off = offsetof(xo_cluster_host_t, name), .required = true,
     .check = check_name, .type_doc = "name", .has_mark = true, .mark_off = offsetof(xo_cluster_host_t, name_mark),
     .doc = "The host's name, unique in the cluster (`xoscar host <name>`)."},
    {.name = "address", .kind = &K_STRING, .off = offsetof(xo_cluster_host_t, address), .required = true,
     .check = check_address, .type_doc = "IP address or host name", .has_mark = true, .mark_off = offsetof(xo_cluster_host_t, address_mark),
     .doc = "The IP address or host name its main pool listens on and other hosts reach it at."},
    {.name = "port", .kind = &K_UINT, .off = offsetof(xo_cluster_host_t, port), .def = "7100", .min = 0,
     .max = 65535, .doc = "The main pool's port; 0: any free port (only for a cluster on one host)."},
    {.name = "launcher", .kind = &K_ENUM, .off = offsetof(xo_cluster_host_t, launcher), .def = "ssh",
     .choices = launcher_names,
     .doc = "How `xoscar up` starts the host when it is not this machine: `ssh` to its address, `local` as a "
            "process here, `none`: someone else starts it."},
    {.name = "main", .kind = &K_MAP, .off = offsetof(xo_cluster_host_t, main), .def = "{}",
     .def_doc = "(see below)", .sub = &main_table, .doc = "The main pool."},
    [HOST_POOLS] = {.name = "pools", .kind = &K_MAPS, .off = offsetof(xo_cluster_host_t, pools),
                    .aux_off = offsetof(xo_cluster_host_t, n_pools), .def = "[{}]",
                    .def_doc = "`[{}]`: one sub pool per core", .sub = &pool_table,
                    .doc = "The sub pools, each its own process; `[]`: the main pool only."},
};

static const table_t host_table = {
    .what = "a host", .where = "hosts[]", .doc = "One machine (or one of several hosts on a machine).",
    .fields = host_fields, .n_fields = COUNT_OF(host_fields), .size = sizeof(xo_cluster_host_t),
    .has_mark = true, .mark_off = offsetof(xo_cluster_host_t, mark), .check = host_check,
};

static const field_t transport_fields[] = {
    {.name = "prefer", .kind = &K_ENUM_LIST, .off = offsetof(xo_cluster_t, transport.prefer) -
                                                    offsetof(xo_cluster_t, transport),
     .aux_off = offsetof(xo_cluster_t, transport.n_prefer) - offsetof(xo_cluster_t, transport),
     .def = "[shm, unix, tcp, ucx]", .choices = transport_names,
     .doc = "The transports to use, best first; a pair of pools uses the first one that reaches. A transport left "
            "out is not used."},
    {.name = "ucx_tls", .kind = &K_STRING, .off = offsetof(xo_cluster_t, transport.ucx_tls) -
                                                  offsetof(xo_cluster_t, transport),
     .def = "\"\"", .doc = "UCX transports, as UCX_TLS (\"rc,cuda_ipc\"); empty: UCX's default."},
};

static const table_t transport_table = {
    .what = "transport settings", .where = "transport", .doc = "How pools reach each other.",
    .fields = transport_fields, .n_fields = COUNT_OF(transport_fields),
};

static const field_t weights_fields[] = {
    {.name = "mem", .kind = &K_DOUBLE, .off = offsetof(xo_place_weights_t, mem), .def = "1",
     .doc = "Weight of free device memory."},
    {.name = "load", .kind = &K_DOUBLE, .off = offsetof(xo_place_weights_t, load), .def = "1",
     .doc = "Weight of idleness (actors, queued requests and busy threads, as each pool reports them)."},
    {.name = "link", .kind = &K_DOUBLE, .off = offsetof(xo_place_weights_t, link), .def = "1",
     .doc = "Weight of nearness (the measured cost of reaching the `near` actors, from `profile`)."},
};

static const table_t weights_table = {
    .what = "placement weights", .where = "placement.weights",
    .doc = "Weights of the `weighted` policy (formula in policies/weighted.c); all 0 means all 1.",
    .fields = weights_fields, .n_fields = COUNT_OF(weights_fields),
};

#define PLACEMENT_OFF(member) (offsetof(xo_cluster_t, placement.member) - offsetof(xo_cluster_t, placement))

static const field_t placement_fields[] = {
    {.name = "policy", .kind = &K_POLICY, .off = PLACEMENT_OFF(policy), .aux_off = PLACEMENT_OFF(kind),
     .def = "round_robin", .doc = "The placement policy of actors created without one (Xoscar's names such as "
                                  "`RandomSubPool` are accepted too)."},
    {.name = "weights", .kind = &K_MAP, .off = PLACEMENT_OFF(weights), .def = "{}", .def_doc = "(see below)",
     .sub = &weights_table, .doc = "Weights of the `weighted` policy."},
    {.name = "profile", .kind = &K_PATH, .off = PLACEMENT_OFF(profile), .def_doc = "(none)",
     .doc = "A tune profile (docs/tune-profile.md, written by `xoscar tune`) whose measured pair costs the "
            "`weighted` policy's link term reads; relative to the cluster file's directory. `xoscar up` loads it; "
            "a profile that does not match the cluster is reported and ignored for the pools that differ."},
};

static const table_t placement_table = {
    .what = "placement settings", .where = "placement", .doc = "Where new actors go.",
    .fields = placement_fields, .n_fields = COUNT_OF(placement_fields),
};

static const field_t cluster_fields[] = {
    {.name = "name", .kind = &K_STRING, .off = offsetof(xo_cluster_t, name), .def = "xoscar", .check = check_name,
     .type_doc = "name", .doc = "The cluster's name (a name: 1 to 64 letters, digits, `.`, `_`, `-`)."},
    [CLUSTER_SECRET] = {.name = "secret", .kind = &K_SECRET, .off = offsetof(xo_cluster_t, secret),
                        .aux_off = offsetof(xo_cluster_t, secret_len), .def_doc = "(one of secret, secret_file)",
                        .doc = "The shared secret that authenticates connections between pools (HMAC "
                               "challenge-response). Prefer `secret_file`."},
    [CLUSTER_SECRET_FILE] = {.name = "secret_file", .kind = &K_SECRET_FILE, .off = offsetof(xo_cluster_t, secret_file),
                             .def_doc = "(one of secret, secret_file)",
                             .doc = "A file holding the secret (trailing white space dropped); relative to the "
                                    "cluster file's directory."},
    {.name = "modules", .kind = &K_PATHS, .off = offsetof(xo_cluster_t, modules),
     .aux_off = offsetof(xo_cluster_t, n_modules), .def = "[]", .check = check_nonempty,
     .doc = "Actor modules (.so) every pool loads; relative paths are relative to the cluster file's directory."},
    {.name = "restart", .kind = &K_ENUM, .off = offsetof(xo_cluster_t, restart), .def = "process",
     .choices = restart_names,
     .doc = "What a main pool does when a sub pool dies: `none` leaves it dead, `process` starts an empty one, "
            "`actors` also re-creates its actors."},
    {.name = "log_level", .kind = &K_ENUM, .off = offsetof(xo_cluster_t, log_level), .def = "warn",
     .choices = log_level_names, .doc = "The log threshold of every pool (XO_LOG_LEVEL overrides it)."},
    {.name = "transport", .kind = &K_MAP, .off = offsetof(xo_cluster_t, transport), .def = "{}",
     .def_doc = "(see below)", .sub = &transport_table, .doc = "Transports."},
    {.name = "placement", .kind = &K_MAP, .off = offsetof(xo_cluster_t, placement), .def = "{}",
     .def_doc = "(see below)", .sub = &placement_table, .doc = "Placement."},
    [CLUSTER_HOSTS] = {.name = "hosts", .kind = &K_MAPS, .off = offsetof(xo_cluster_t, hosts),
                       .aux_off = offsetof(xo_cluster_t, n_hosts), .required = true, .sub = &host_table,
                       .doc = "The hosts, at least one."},
};

static const table_t cluster_table = {
    .what = "the cluster", .where = "(top level)", .doc = "The cluster.",
    .fields = cluster_fields, .n_fields = COUNT_OF(cluster_fields),
    .check = cluster_check,
};

_Static_assert(COUNT_OF(cluster_fields) <= MAX_FIELDS && COUNT_OF(host_fields) <= MAX_FIELDS &&
                   COUNT_OF(pool_fields) <= MAX_FIELDS,
               "MAX_FIELDS");

/* ---- checks across keys ------------------------------------------------------------------------------------ */

static xo_status_t pool_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals)
{
    xo_cluster_pool_t *pool = obj;
    /* An explicit cpu list without a count is one pool on those CPUs; "auto" stays "one per core". */
    if (!vals[POOL_COUNT] && pool->cpus) pool->count = 1;
    /* gpu: N is device: cuda:N; both at once would leave one of them ignored. */
    yaml_node_t *g = vals[POOL_GPU], *d = vals[POOL_DEVICE];
    if (g && d && pool->gpu >= 0 && strcmp(pool->device, "none") != 0) {
        yaml_node_t *later = g->start_mark.index > d->start_mark.index ? g : d;
        size_t saved = path_push_key(p, later == g ? "gpu" : "device");
        xo_status_t st = fail_at(p, later, "give either 'gpu' or 'device', not both ('gpu: %d' is 'device: cuda:%d')",
                                 pool->gpu, pool->gpu);
        path_pop(p, saved);
        return st;
    }
    if (g && pool->gpu >= 0) set_mark(p, obj, true, offsetof(xo_cluster_pool_t, device_mark), g);
    /* count: gpus hands out the GPUs itself; a device of its own would contradict it (auto: the host device where
     * the host has no GPU). */
    yaml_node_t *other = g && pool->gpu >= 0 ? g : d && strcmp(pool->device, "auto") != 0 ? d : NULL;
    if (pool->count == XO_CLUSTER_COUNT_GPUS && other) {
        size_t saved = path_push_key(p, other == g ? "gpu" : "device");
        xo_status_t st = fail_at(p, other, "'count: gpus' gives sub pool k GPU k: leave '%s' out (or 'device: auto', "
                                           "to fall back to the host device where there is no GPU)",
                                 other == g ? "gpu" : "device");
        path_pop(p, saved);
        return st;
    }
    return XO_OK;
}

static xo_status_t host_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals)
{
    xo_cluster_host_t *h = obj;
    long total = 0;
    for (size_t i = 0; i < h->n_pools; i++) total += h->pools[i].count > 0 ? h->pools[i].count : 0;
    if (total > XO_CLUSTER_MAX_SUB_POOLS) {
        size_t saved = path_push_key(p, "pools");
        xo_status_t st = fail_at(p, vals[HOST_POOLS] ? vals[HOST_POOLS] : n,
                                 "%ld sub pools; a host has at most %d", total, XO_CLUSTER_MAX_SUB_POOLS);
        path_pop(p, saved);
        return st;
    }
    return XO_OK;
}

static xo_status_t fail_mark(pctx_t *p, xo_cluster_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static xo_status_t fail_mark(pctx_t *p, xo_cluster_mark_t m, const char *fmt, ...)
{
    char msg[XO_ERROR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return xo__cluster_error(p->err, XO_ECONFIG, p->file, m.line, m.column, "%s", msg);
}

static xo_status_t cluster_check(pctx_t *p, void *obj, yaml_node_t *n, yaml_node_t *const *vals)
{
    xo_cluster_t *c = obj;
    yaml_node_t *sec = vals[CLUSTER_SECRET], *sf = vals[CLUSTER_SECRET_FILE];
    if (sec && sf) {
        yaml_node_t *later = sec->start_mark.index > sf->start_mark.index ? sec : sf;
        size_t saved = path_push_key(p, later == sec ? "secret" : "secret_file");
        xo_status_t st = fail_at(p, later, "give either 'secret' or 'secret_file', not both");
        path_pop(p, saved);
        return st;
    }
    if (!sec && !sf)
        return fail_at(p, n, "missing key 'secret' or 'secret_file' in the cluster (one is required: the shared "
                             "secret that authenticates connections between pools)");
    if (c->n_hosts == 0) {
        size_t saved = path_push_key(p, "hosts");
        xo_status_t st = fail_at(p, vals[CLUSTER_HOSTS], "expected at least one host");
        path_pop(p, saved);
        return st;
    }
    for (size_t i = 0; i < c->n_hosts; i++) {
        const xo_cluster_host_t *h = &c->hosts[i];
        for (size_t j = 0; j < i; j++) {
            const xo_cluster_host_t *o = &c->hosts[j];
            if (!strcmp(h->name, o->name))
                return fail_mark(p, h->name_mark, "hosts[%zu].name: duplicate host name '%s' (hosts[%zu], line %d)",
                                 i, h->name, j, o->name_mark.line);
            if (h->port && h->port == o->port && !strcasecmp(h->address, o->address))
                return fail_mark(p, h->address_mark,
                                 "hosts[%zu].address: duplicate pool address %s:%u: host '%s' and host '%s' "
                                 "(line %d) cannot both listen there",
                                 i, h->address, h->port, h->name, o->name, o->address_mark.line);
        }
    }
    return XO_OK;
}

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

static xo_status_t load(const char *data, size_t len, const char *file, const char *dir, xo_cluster_t **c_p,
                        xo_cluster_error_t *err)
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
        st = parse_table(&p, &cluster_table, root, c);
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

/* The absolute directory of path (which need not exist): realpath of its directory part when that exists,
 * else the current directory joined with it. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *part = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!part) return NULL;
    char *abs = realpath(part, NULL);
    if (!abs) {
        char cwd[PATH_MAX];
        if (part[0] == '/' || !getcwd(cwd, sizeof cwd)) {
            abs = part[0] == '/' ? strdup(part) : strdup("/");
        } else {
            size_t n = strlen(cwd) + strlen(part) + 2;
            abs = malloc(n);
            if (abs) snprintf(abs, n, "%s/%s", cwd, part);
        }
    }
    free(part);
    return abs;
}

xo_status_t xo__cluster_load_string(const char *text, const char *name, xo_cluster_t **c_p, xo_cluster_error_t *err)
{
    if (!name) name = "<string>";
    if (!text || !c_p) return xo__cluster_error(err, XO_EINVAL, name, 0, 0, "no text or no c_p");
    char *dir = dir_of(name);
    if (!dir) return xo__cluster_error(err, XO_ENOMEM, name, 0, 0, "out of memory");
    xo_status_t st = load(text, strlen(text), name, dir, c_p, err);
    free(dir);
    return st;
}

xo_status_t xo__cluster_load(const char *path, xo_cluster_t **c_p, xo_cluster_error_t *err)
{
    if (!path || !c_p) return xo__cluster_error(err, XO_EINVAL, path ? path : "(null)", 0, 0, "no path or no c_p");
    FILE *f = fopen(path, "rbe");
    if (!f) return xo__cluster_error(err, XO_ESYS, path, 0, 0, "cannot open the cluster file: %s", strerror(errno));
    char *data = NULL;
    size_t len = 0, cap = 0;
    xo_status_t st = XO_OK;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) {
                st = xo__cluster_error(err, XO_ECONFIG, path, 0, 0, "the cluster file is larger than 64 MiB");
                break;
            }
            char *d = realloc(data, cap);
            if (!d) {
                st = xo__cluster_error(err, XO_ENOMEM, path, 0, 0, "out of memory");
                break;
            }
            data = d;
        }
        size_t r = fread(data + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) st = xo__cluster_error(err, XO_ESYS, path, 0, 0, "cannot read the cluster file");
            break;
        }
    }
    fclose(f);
    if (st == XO_OK) {
        char *dir = dir_of(path);
        if (!dir) st = xo__cluster_error(err, XO_ENOMEM, path, 0, 0, "out of memory");
        else st = load(data, len, path, dir, c_p, err);
        free(dir);
    }
    free(data);
    return st;
}

void xo__cluster_free(xo_cluster_t *c)
{
    if (c) xo__cluster_arena_free(c->arena); /* c itself lives in its arena */
}

long xo__cluster_find_host(const xo_cluster_t *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_hosts; i++)
        if (!strcmp(c->hosts[i].name, name)) return (long)i;
    return -1;
}

int xo__cluster_dump(const xo_cluster_t *c, FILE *out)
{
    fprintf(out, "# The effective configuration of %s, every default filled in.\n", c->path);
    dumper_t d = {.out = out};
    dump_table(&d, &cluster_table, c);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

/* ---- the reference --------------------------------------------------------------------------------------------- */

static void write_default(FILE *out, const field_t *f)
{
    if (f->required) fputs("**required**", out);
    else if (f->def_doc) fputs(f->def_doc, out);
    else if (f->def) fprintf(out, "`%s`", f->def);
    else fputs("(none)", out);
}

static void write_table(FILE *out, const table_t *t)
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
        if (t->fields[i].sub) write_table(out, t->fields[i].sub);
}

int xo__cluster_write_reference(FILE *out)
{
    write_table(out, &cluster_table);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

const char *xo__launcher_name(xo_launcher_t l)
{
    return (unsigned)l < COUNT_OF(launcher_names) - 1 ? launcher_names[l] : NULL;
}

const char *xo__cluster_transport_name(xo_cluster_transport_t t)
{
    return (unsigned)t < COUNT_OF(transport_names) - 1 ? transport_names[t] : NULL;
}
