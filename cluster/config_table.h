/* The table engine of the cluster file (private to cluster/): what a row of a key table is, the generic kinds of
 * value (string, path, integers, enums, lists, mappings), and the walk that parses a YAML document with the tables,
 * dumps a configuration back and writes the key reference. The tables themselves, the kinds only the cluster file
 * has (cpu lists, policies, secrets) and the checks across keys are cluster_file.c's, beside the structs they fill
 * (as UCX keeps its config parser apart from the tables of each transport). */
#ifndef XO_CLUSTER_CONFIG_TABLE_H
#define XO_CLUSTER_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "cluster/cluster_file.h"

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

/* Where a dump goes and how far in it is. */
struct dumper {
    FILE *out;
    int indent;
    bool dash; /* the next key starts a list item: "- " in place of the last two spaces of its indent */
};

#define AT(obj, off, type) ((type *)((char *)(obj) + (off)))

static inline bool xo__cfg_is_scalar(const yaml_node_t *n) { return n->type == YAML_SCALAR_NODE; }
static inline const char *xo__cfg_sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* The generic kinds; the tables name them K_*. */
extern const kind_t xo__cfg_kind_double;
#define K_DOUBLE xo__cfg_kind_double
extern const kind_t xo__cfg_kind_enum;
#define K_ENUM xo__cfg_kind_enum
extern const kind_t xo__cfg_kind_enum_list;
#define K_ENUM_LIST xo__cfg_kind_enum_list
extern const kind_t xo__cfg_kind_int;
#define K_INT xo__cfg_kind_int
extern const kind_t xo__cfg_kind_map;
#define K_MAP xo__cfg_kind_map
extern const kind_t xo__cfg_kind_maps;
#define K_MAPS xo__cfg_kind_maps
extern const kind_t xo__cfg_kind_path;
#define K_PATH xo__cfg_kind_path
extern const kind_t xo__cfg_kind_paths;
#define K_PATHS xo__cfg_kind_paths
extern const kind_t xo__cfg_kind_string;
#define K_STRING xo__cfg_kind_string
extern const kind_t xo__cfg_kind_strings;
#define K_STRINGS xo__cfg_kind_strings
extern const kind_t xo__cfg_kind_uint;
#define K_UINT xo__cfg_kind_uint

/* ---- errors: each returns the status it stored in p->err, for `return xo__cfg_fail_at(...)` ---- */

/* "FILE:LINE:COL: PATH: message" (n's mark; none while a default is parsed, which is reported as a bug of the
 * tables). XO_ECONFIG. */
xo_status_t xo__cfg_fail_at(pctx_t *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "expected <expected>, got <what n is>". XO_ECONFIG. */
xo_status_t xo__cfg_fail_value(pctx_t *p, const yaml_node_t *n, const char *expected);
/* XO_ENOMEM, naming the file. */
xo_status_t xo__cfg_no_memory(pctx_t *p);

/* ---- the path in messages ("hosts[1].pools[0].cpus"): push returns what pop restores ---- */
size_t xo__cfg_path_push_key(pctx_t *p, const char *key);
size_t xo__cfg_path_push_index(pctx_t *p, size_t i);
void xo__cfg_path_pop(pctx_t *p, size_t saved);

/* ---- parsing ---- */

/* Counts one value against the document's budget (aliases make small files describe huge trees). */
xo_status_t xo__cfg_visit(pctx_t *p, const yaml_node_t *n);
/* Stores n's mark at obj + off when has (zero while a default is parsed). */
void xo__cfg_set_mark(pctx_t *p, void *obj, bool has, size_t off, const yaml_node_t *n);
/* A scalar's text into *s_p (pointing into the document: valid while it is), else "expected <expected>". */
xo_status_t xo__cfg_get_text(pctx_t *p, yaml_node_t *n, const char *expected, const char **s_p);
/* The path kind's parse: the text, relative to the file's directory, as an absolute path in the arena. */
xo_status_t xo__cfg_parse_path(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj);
/* Parses mapping n into obj with table t: every key known, defaults for the absent ones, then t->check. */
xo_status_t xo__cfg_parse_table(pctx_t *p, const table_t *t, yaml_node_t *n, void *obj);
/* Parses the YAML text data (len bytes, named file, relative paths against dir) with root_table into a new
 * configuration. On XO_OK *c_p is the caller's, freed with xo__cluster_free; on error err says where. */
xo_status_t xo__cfg_load(const char *data, size_t len, const char *file, const char *dir,
                         const table_t *root_table, xo_cluster_t **c_p, xo_cluster_error_t *err);

/* ---- dumping (YAML that loads back to the same configuration) and the reference (Markdown tables) ---- */
void xo__cfg_dump_table(dumper_t *d, const table_t *t, const void *obj);
void xo__cfg_dump_string(dumper_t *d, const field_t *f, const void *obj);
/* Starts a key's line at the dumper's indent ("- " when it opens a list item). */
void xo__cfg_emit_key(dumper_t *d, const field_t *f);
/* s as a double-quoted YAML scalar, escaped where YAML needs it. */
void xo__cfg_emit_quoted(FILE *out, const char *s);
void xo__cfg_write_table(FILE *out, const table_t *t);
void xo__cfg_desc_string(const field_t *f, char *buf, size_t size);
void xo__cfg_desc_path(const field_t *f, char *buf, size_t size);
void xo__cfg_describe_plain(const char *text, char *buf, size_t size);

#endif
