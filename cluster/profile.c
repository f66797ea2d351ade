/* The tune profile (docs/tune-profile.md): jansson parses the JSON; the checks below give each error the line and
 * column of the value at fault. jansson keeps no positions for values, so `locate` walks the text (which jansson
 * has already found well formed) along the same path to find where that value starts. */
#include "cluster/profile.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- where a value is in the text ----------------------------------------------------------------------------- */

/* One step of a path: a key of an object, or (key NULL) an index of an array. */
typedef struct {
    const char *key;
    size_t index;
} step_t;

static const char *ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') p++;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end)
{
    p = ws(p, end);
    if (p >= end) return end;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip_string(p, end) - 1;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return end;
    }
    while (p < end && !strchr(",}] \t\r\n", *p)) p++;
    return p;
}

/* The start of the value at path (n steps) in text, or the deepest value of the path that exists. */
static const char *locate(const char *text, size_t len, const step_t *path, size_t n)
{
    const char *end = text + len, *p = ws(text, end);
    for (size_t s = 0; s < n && p < end; s++) {
        const char *found = NULL;
        if (path[s].key && *p == '{') {
            const char *q = ws(p + 1, end);
            size_t klen = strlen(path[s].key);
            while (q < end && *q == '"') {
                const char *kend = skip_string(q, end);
                bool match = (size_t)(kend - q) == klen + 2 && memcmp(q + 1, path[s].key, klen) == 0;
                q = ws(kend, end);
                if (q < end && *q == ':') q = ws(q + 1, end);
                if (match) {
                    found = q;
                    break;
                }
                q = ws(skip_value(q, end), end);
                if (q < end && *q == ',') q = ws(q + 1, end);
            }
        } else if (!path[s].key && *p == '[') {
            const char *q = ws(p + 1, end);
            for (size_t i = 0; q < end && *q != ']'; i++) {
                if (i == path[s].index) {
                    found = q;
                    break;
                }
                q = ws(skip_value(q, end), end);
                if (q < end && *q == ',') q = ws(q + 1, end);
            }
        }
        if (!found) break;
        p = found;
    }
    return p;
}

/* ---- errors ---------------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name, *text;
    size_t len;
    xo_cluster_error_t *err;
    step_t path[8];
    size_t depth;
    int version; /* of the file, once read: which keys it may have */
} ctx_t;

static void path_text(const ctx_t *c, size_t depth, char *buf, size_t len)
{
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < depth && k < len; i++) {
        int w = c->path[i].key ? snprintf(buf + k, len - k, "%s%s", i ? "." : "", c->path[i].key)
                               : snprintf(buf + k, len - k, "[%zu]", c->path[i].index);
        if (w > 0) k += (size_t)w;
    }
    if (!buf[0]) snprintf(buf, len, "(top level)");
}

/* Sets the error for the value at path[0..depth) and returns st. */
static xo_status_t fail_at(ctx_t *c, size_t depth, xo_status_t st, const char *fmt, ...)
{
    char what[XO_ERROR_TEXT_MAX / 2], where[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    path_text(c, depth, where, sizeof where);
    const char *at = locate(c->text, c->len, c->path, depth);
    int line = 1, col = 1;
    for (const char *p = c->text; p < at; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (c->err) {
        c->err->status = st;
        c->err->line = line;
        c->err->column = col;
    }
    xo__error_set(st, "%s:%d:%d: %s: %s", c->name, line, col, where, what);
    if (c->err) snprintf(c->err->text, sizeof c->err->text, "%s", xo_last_error());
    return st;
}

static xo_status_t fail(ctx_t *c, const char *fmt, const char *arg)
{
    return fail_at(c, c->depth, XO_ECONFIG, fmt, arg);
}

static void push_key(ctx_t *c, const char *key) { c->path[c->depth++] = (step_t){.key = key}; }
static void push_index(ctx_t *c, size_t i) { c->path[c->depth++] = (step_t){.key = NULL, .index = i}; }
static void pop(ctx_t *c) { c->depth--; }

static const char *type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Every key of obj must be in allowed (NULL-terminated); the first one that is not is the error. */
static xo_status_t only_keys(ctx_t *c, json_t *obj, const char *const *allowed, const char *noun)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char list[256] = "";
            for (size_t i = 0; allowed[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
            push_key(c, key);
            xo_status_t st = fail_at(c, c->depth, XO_ECONFIG, "unknown key '%s' in %s (expected one of: %s)", key,
                                     noun, list);
            pop(c);
            return st;
        }
    }
    return XO_OK;
}

static xo_status_t get(ctx_t *c, json_t *obj, const char *key, json_type want, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return fail_at(c, c->depth, XO_ECONFIG, "missing key '%s'", key);
    bool ok = json_typeof(v) == want || (want == JSON_REAL && json_typeof(v) == JSON_INTEGER);
    if (!ok) {
        push_key(c, key);
        const char *names[] = {[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
                               [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number"};
        xo_status_t st = fail_at(c, c->depth, XO_ECONFIG, "expected %s, got %s", names[want], type_of(v));
        pop(c);
        return st;
    }
    *out = v;
    return XO_OK;
}

static xo_status_t get_str(ctx_t *c, json_t *obj, const char *key, char **out)
{
    json_t *v;
    xo_status_t st = get(c, obj, key, JSON_STRING, &v);
    if (st != XO_OK) return st;
    *out = strdup(json_string_value(v));
    return *out ? XO_OK : xo__error_set(XO_ENOMEM, "out of memory");
}

/* A number >= lo (and finite). */
static xo_status_t get_num(ctx_t *c, json_t *obj, const char *key, double lo, bool strict, double *out)
{
    json_t *v;
    xo_status_t st = get(c, obj, key, JSON_REAL, &v);
    if (st != XO_OK) return st;
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || (strict && d == lo)) {
        push_key(c, key);
        st = fail_at(c, c->depth, XO_ECONFIG, "expected a number %s %g, got %g", strict ? ">" : ">=", lo, d);
        pop(c);
        return st;
    }
    *out = d;
    return XO_OK;
}

/* ---- loading --------------------------------------------------------------------------------------------------- */

static const char *const PATHS[] = {"inproc", "shm", "unix", "tcp", "ucx", NULL};
static const char *const DEV_PATHS[] = {"inproc", "ipc", "staging", "nccl", NULL};

static ssize_t pool_index(const xo_profile_t *p, const char *address)
{
    for (size_t i = 0; i < p->n_pools; i++)
        if (strcmp(p->pools[i].address, address) == 0) return (ssize_t)i;
    return -1;
}

/* A list of bandwidth points (the array at the current path) into pts, sizes ascending. */
static xo_status_t load_points(ctx_t *c, json_t *bw, xo_profile_bw_t *pts, size_t *n_p)
{
    xo_status_t st = XO_OK;
    if (json_array_size(bw) > XO_PROFILE_MAX_SIZES) {
        char n[32];
        snprintf(n, sizeof n, "%zu", json_array_size(bw));
        st = fail(c, "%s sizes, at most 16", n);
    }
    size_t i;
    json_t *e;
    json_array_foreach(bw, i, e) {
        if (st != XO_OK) break;
        push_index(c, i);
        xo_profile_bw_t *b = &pts[i];
        static const char *const bkeys[] = {"bytes", "median_Bps", "min_Bps", "max_Bps", NULL};
        double bytes = 0;
        if (!json_is_object(e)) st = fail(c, "expected an object, got %s", type_of(e));
        if (st == XO_OK) st = only_keys(c, e, bkeys, "a bandwidth point");
        if (st == XO_OK) st = get_num(c, e, "bytes", 0, true, &bytes);
        if (st == XO_OK) st = get_num(c, e, "median_Bps", 0, true, &b->median);
        if (st == XO_OK) st = get_num(c, e, "min_Bps", 0, true, &b->min);
        if (st == XO_OK) st = get_num(c, e, "max_Bps", 0, true, &b->max);
        if (st == XO_OK && (bytes != floor(bytes) || bytes > 1e15)) {
            push_key(c, "bytes");
            st = fail_at(c, c->depth, XO_ECONFIG, "expected a whole number of bytes, got %g", bytes);
            pop(c);
        }
        if (st == XO_OK) b->bytes = (uint64_t)bytes; /* only once checked: a double beyond the range is undefined */
        if (st == XO_OK && !(b->min <= b->median && b->median <= b->max))
            st = fail_at(c, c->depth, XO_ECONFIG, "expected min_Bps <= median_Bps <= max_Bps, got %g, %g, %g", b->min,
                         b->median, b->max);
        if (st == XO_OK && i > 0 && b->bytes <= pts[i - 1].bytes)
            st = fail_at(c, c->depth, XO_ECONFIG, "sizes must ascend: %" PRIu64 " after %" PRIu64, b->bytes,
                         pts[i - 1].bytes);
        *n_p = i + 1;
        pop(c);
    }
    return st;
}

/* A pool's device figures (version 2): copy_bandwidth and kernel_launch, each optional. */
static xo_status_t load_pool_device(ctx_t *c, json_t *o, xo_profile_pool_t *pl)
{
    xo_status_t st = XO_OK;
    json_t *v;
    if (json_object_get(o, "copy_bandwidth")) {
        if ((st = get(c, o, "copy_bandwidth", JSON_ARRAY, &v)) != XO_OK) return st;
        push_key(c, "copy_bandwidth");
        st = load_points(c, v, pl->copy_bw, &pl->n_copy_bw);
        pop(c);
        if (st != XO_OK) return st;
    }
    if (!json_object_get(o, "kernel_launch")) return XO_OK;
    if ((st = get(c, o, "kernel_launch", JSON_OBJECT, &v)) != XO_OK) return st;
    push_key(c, "kernel_launch");
    if (json_object_get(v, "none")) {
        static const char *const nkeys[] = {"none", NULL};
        st = only_keys(c, v, nkeys, "kernel_launch (with none: only the reason)");
        if (st == XO_OK) st = get_str(c, v, "none", &pl->launch_none);
    } else {
        static const char *const lkeys[] = {"via", "p50_us", "p99_us", NULL};
        st = only_keys(c, v, lkeys, "kernel_launch");
        if (st == XO_OK) st = get_str(c, v, "via", &pl->launch_via);
        if (st == XO_OK && strcmp(pl->launch_via, "launch_host") != 0 && strcmp(pl->launch_via, "launch_kernel") != 0) {
            push_key(c, "via");
            st = fail(c, "unknown launch '%s' (expected launch_host or launch_kernel)", pl->launch_via);
            pop(c);
        }
        if (st == XO_OK) st = get_num(c, v, "p50_us", 0, true, &pl->launch_p50_us);
        if (st == XO_OK) st = get_num(c, v, "p99_us", 0, true, &pl->launch_p99_us);
        if (st == XO_OK && pl->launch_p99_us < pl->launch_p50_us) {
            push_key(c, "p99_us");
            st = fail_at(c, c->depth, XO_ECONFIG, "p99_us %g is below p50_us %g", pl->launch_p99_us,
                         pl->launch_p50_us);
            pop(c);
        }
    }
    pop(c);
    return st;
}

static xo_status_t load_pair(ctx_t *c, json_t *o, xo_profile_t *p, xo_profile_pair_t *pr)
{
    static const char *const keys1[] = {"from", "to", "path", "latency_us", "bandwidth", NULL};
    static const char *const keys2[] = {"from", "to", "path", "latency_us", "bandwidth", "device_buf", NULL};
    xo_status_t st = only_keys(c, o, c->version >= 2 ? keys2 : keys1, "a pair");
    json_t *lat, *bw;
    if (st == XO_OK) st = get_str(c, o, "from", &pr->from);
    if (st == XO_OK) st = get_str(c, o, "to", &pr->to);
    if (st == XO_OK) st = get_str(c, o, "path", &pr->path);
    if (st != XO_OK) return st;
    const char *ends[] = {"from", "to"};
    const char *vals[] = {pr->from, pr->to};
    for (int k = 0; k < 2; k++)
        if (pool_index(p, vals[k]) < 0) {
            push_key(c, ends[k]);
            st = fail(c, "'%s' is not one of the profile's pools", vals[k]);
            pop(c);
            return st;
        }
    bool known = false;
    for (size_t i = 0; PATHS[i]; i++) known |= strcmp(PATHS[i], pr->path) == 0;
    if (!known) {
        push_key(c, "path");
        st = fail(c, "unknown path '%s' (expected one of: inproc, shm, unix, tcp, ucx)", pr->path);
        pop(c);
        return st;
    }
    if ((st = get(c, o, "latency_us", JSON_OBJECT, &lat)) != XO_OK) return st;
    push_key(c, "latency_us");
    static const char *const lkeys[] = {"p50", "p99", NULL};
    st = only_keys(c, lat, lkeys, "latency_us");
    if (st == XO_OK) st = get_num(c, lat, "p50", 0, true, &pr->p50_us);
    if (st == XO_OK) st = get_num(c, lat, "p99", 0, true, &pr->p99_us);
    if (st == XO_OK && pr->p99_us < pr->p50_us) {
        push_key(c, "p99");
        st = fail_at(c, c->depth, XO_ECONFIG, "p99 %g is below p50 %g", pr->p99_us, pr->p50_us);
        pop(c);
    }
    pop(c);
    if (st != XO_OK) return st;
    if ((st = get(c, o, "bandwidth", JSON_ARRAY, &bw)) != XO_OK) return st;
    push_key(c, "bandwidth");
    st = load_points(c, bw, pr->bw, &pr->n_bw);
    pop(c);
    if (st != XO_OK || c->version < 2 || !json_object_get(o, "device_buf")) return st;
    json_t *db, *dbw;
    if ((st = get(c, o, "device_buf", JSON_OBJECT, &db)) != XO_OK) return st;
    push_key(c, "device_buf");
    static const char *const dkeys[] = {"path", "bandwidth", NULL};
    st = only_keys(c, db, dkeys, "device_buf");
    if (st == XO_OK) st = get_str(c, db, "path", &pr->dev_path);
    if (st == XO_OK) {
        bool ok = false;
        for (size_t i = 0; DEV_PATHS[i]; i++) ok |= strcmp(DEV_PATHS[i], pr->dev_path) == 0;
        if (!ok) {
            push_key(c, "path");
            st = fail(c, "unknown device-buffer path '%s' (expected one of: inproc, ipc, staging, nccl)",
                      pr->dev_path);
            pop(c);
        }
    }
    if (st == XO_OK) st = get(c, db, "bandwidth", JSON_ARRAY, &dbw);
    if (st == XO_OK) {
        push_key(c, "bandwidth");
        st = load_points(c, dbw, pr->dev_bw, &pr->n_dev_bw);
        pop(c);
    }
    pop(c);
    return st;
}

static xo_status_t load_doc(ctx_t *c, json_t *root, xo_profile_t *p)
{
    if (!json_is_object(root)) return fail(c, "expected an object, got %s", type_of(root));
    static const char *const keys[] = {"xoscar_profile", "cluster", "measured_at", "commit", "tool",
                                       "hosts",          "pools",   "pairs",       NULL};
    json_t *v;
    xo_status_t st = get(c, root, "xoscar_profile", JSON_INTEGER, &v);
    if (st != XO_OK) return st;
    p->version = (int)json_integer_value(v);
    c->version = p->version;
    if (json_integer_value(v) < XO_PROFILE_VERSION_MIN || json_integer_value(v) > XO_PROFILE_VERSION) {
        push_key(c, "xoscar_profile");
        char msg[160];
        snprintf(msg, sizeof msg, "schema version %" JSON_INTEGER_FORMAT "; this build reads versions %d to %d",
                 json_integer_value(v), XO_PROFILE_VERSION_MIN, XO_PROFILE_VERSION);
        st = fail(c, "%s", msg);
        pop(c);
        return st;
    }
    if ((st = only_keys(c, root, keys, "a profile")) != XO_OK) return st;
    if ((st = get_str(c, root, "cluster", &p->cluster)) != XO_OK) return st;
    if ((st = get_str(c, root, "measured_at", &p->measured_at)) != XO_OK) return st;
    struct tm tm = {0};
    const char *rest = strptime(p->measured_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!rest || *rest) {
        push_key(c, "measured_at");
        st = fail(c, "expected a UTC time as 2026-12-03T16:00:00Z, got '%s'", p->measured_at);
        pop(c);
        return st;
    }
    p->measured_unix = (int64_t)timegm(&tm);
    if ((st = get_str(c, root, "commit", &p->commit)) != XO_OK) return st;
    if ((st = get_str(c, root, "tool", &p->tool)) != XO_OK) return st;

    json_t *hosts, *pools, *pairs;
    if ((st = get(c, root, "hosts", JSON_ARRAY, &hosts)) != XO_OK) return st;
    if ((st = get(c, root, "pools", JSON_ARRAY, &pools)) != XO_OK) return st;
    if ((st = get(c, root, "pairs", JSON_ARRAY, &pairs)) != XO_OK) return st;
    p->hosts = calloc(json_array_size(hosts) + 1, sizeof *p->hosts);
    p->pools = calloc(json_array_size(pools) + 1, sizeof *p->pools);
    p->pairs = calloc(json_array_size(pairs) + 1, sizeof *p->pairs);
    if (!p->hosts || !p->pools || !p->pairs) return xo__error_set(XO_ENOMEM, "out of memory");

    size_t i;
    json_t *e;
    push_key(c, "hosts");
    json_array_foreach(hosts, i, e) {
        push_index(c, i);
        static const char *const hkeys[] = {"name", "address", "port", NULL};
        xo_profile_host_t *h = &p->hosts[i];
        double port = 0;
        if (!json_is_object(e)) st = fail(c, "expected an object, got %s", type_of(e));
        if (st == XO_OK) st = only_keys(c, e, hkeys, "a host");
        if (st == XO_OK) st = get_str(c, e, "name", &h->name);
        if (st == XO_OK) st = get_str(c, e, "address", &h->address);
        if (st == XO_OK) st = get_num(c, e, "port", 0, false, &port);
        if (st == XO_OK && (port > 65535 || port != floor(port))) {
            push_key(c, "port");
            st = fail(c, "expected an integer 0..65535, got %s", "a number outside it");
            pop(c);
        }
        if (st == XO_OK) h->port = (unsigned)port; /* only once checked: a double beyond the range is undefined */
        p->n_hosts = i + 1;
        pop(c);
        if (st != XO_OK) return st;
    }
    pop(c);
    push_key(c, "pools");
    json_array_foreach(pools, i, e) {
        push_index(c, i);
        static const char *const pkeys1[] = {"address", "host", "device", NULL};
        static const char *const pkeys2[] = {"address", "host", "device", "copy_bandwidth", "kernel_launch", NULL};
        xo_profile_pool_t *pl = &p->pools[i];
        if (!json_is_object(e)) st = fail(c, "expected an object, got %s", type_of(e));
        if (st == XO_OK) st = only_keys(c, e, c->version >= 2 ? pkeys2 : pkeys1, "a pool");
        if (st == XO_OK) st = get_str(c, e, "address", &pl->address);
        if (st == XO_OK) st = get_str(c, e, "host", &pl->host);
        if (st == XO_OK) st = get_str(c, e, "device", &pl->device);
        p->n_pools = i + 1;
        if (st == XO_OK && c->version >= 2) st = load_pool_device(c, e, pl);
        if (st == XO_OK && pool_index(p, pl->address) != (ssize_t)i) {
            push_key(c, "address");
            st = fail(c, "duplicate pool '%s'", pl->address);
            pop(c);
        }
        bool host_known = false;
        for (size_t k = 0; st == XO_OK && k < p->n_hosts; k++) host_known |= strcmp(p->hosts[k].name, pl->host) == 0;
        if (st == XO_OK && !host_known) {
            push_key(c, "host");
            st = fail(c, "'%s' is not one of the profile's hosts", pl->host);
            pop(c);
        }
        pop(c);
        if (st != XO_OK) return st;
    }
    pop(c);
    push_key(c, "pairs");
    json_array_foreach(pairs, i, e) {
        push_index(c, i);
        xo_profile_pair_t *pr = &p->pairs[i];
        p->n_pairs = i + 1;
        if (!json_is_object(e)) st = fail(c, "expected an object, got %s", type_of(e));
        if (st == XO_OK) st = load_pair(c, e, p, pr);
        for (size_t k = 0; st == XO_OK && k < i; k++)
            if (strcmp(p->pairs[k].from, pr->from) == 0 && strcmp(p->pairs[k].to, pr->to) == 0) {
                char both[400];
                snprintf(both, sizeof both, "%s -> %s (also pairs[%zu])", pr->from, pr->to, k);
                st = fail(c, "duplicate pair %s", both);
            }
        pop(c);
        if (st != XO_OK) return st;
    }
    pop(c);
    return XO_OK;
}

xo_status_t xo__profile_load_string(const char *text, size_t len, const char *name, xo_profile_t **p_out,
                                   xo_cluster_error_t *err)
{
    if (err) *err = (xo_cluster_error_t){0};
    ctx_t c = {.name = name ? name : "profile", .text = text, .len = len, .err = err};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        xo__error_set(XO_ECONFIG, "%s:%d:%d: JSON syntax error: %s", c.name, je.line, je.column, je.text);
        if (err) {
            err->status = XO_ECONFIG;
            err->line = je.line;
            err->column = je.column;
            snprintf(err->text, sizeof err->text, "%s", xo_last_error());
        }
        return XO_ECONFIG;
    }
    xo_profile_t *p = calloc(1, sizeof *p);
    xo_status_t st = p ? load_doc(&c, root, p) : xo__error_set(XO_ENOMEM, "out of memory");
    json_decref(root);
    if (st != XO_OK) {
        if (err && !err->status) {
            err->status = st;
            snprintf(err->text, sizeof err->text, "%s", xo_last_error());
        }
        xo__profile_free(p);
        return st;
    }
    *p_out = p;
    return XO_OK;
}

xo_status_t xo__profile_load(const char *path, xo_profile_t **p_out, xo_cluster_error_t *err)
{
    if (err) *err = (xo_cluster_error_t){0};
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    if (f) {
        FILE *mem = open_memstream(&buf, &len); /* buf is ours once mem is closed */
        char chunk[65536];
        size_t n;
        while (mem && (n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, mem);
        bool bad = ferror(f);
        fclose(f);
        if (mem) fclose(mem);
        if (bad || !buf) {
            free(buf);
            buf = NULL;
        }
    }
    if (!buf) {
        xo__error_set(XO_ECONFIG, "%s: cannot read the profile: %s", path, strerror(errno ? errno : EIO));
        if (err) {
            err->status = XO_ECONFIG;
            snprintf(err->text, sizeof err->text, "%s", xo_last_error());
        }
        return XO_ECONFIG;
    }
    xo_status_t st = xo__profile_load_string(buf, len, path, p_out, err);
    free(buf);
    return st;
}

void xo__profile_free(xo_profile_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n_hosts; i++) {
        free(p->hosts[i].name);
        free(p->hosts[i].address);
    }
    for (size_t i = 0; i < p->n_pools; i++) {
        free(p->pools[i].address);
        free(p->pools[i].host);
        free(p->pools[i].device);
        free(p->pools[i].launch_via);
        free(p->pools[i].launch_none);
    }
    for (size_t i = 0; i < p->n_pairs; i++) {
        free(p->pairs[i].from);
        free(p->pairs[i].to);
        free(p->pairs[i].path);
        free(p->pairs[i].dev_path);
    }
    free(p->hosts);
    free(p->pools);
    free(p->pairs);
    free(p->cluster);
    free(p->measured_at);
    free(p->commit);
    free(p->tool);
    free(p);
}

/* ---- writing --------------------------------------------------------------------------------------------------- */

static void put_str(FILE *out, const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(t ? t : "\"\"", out);
    free(t);
    json_decref(j);
}

static void put_points(FILE *out, const xo_profile_bw_t *b, size_t n)
{
    fputs("[", out);
    for (size_t k = 0; k < n; k++)
        fprintf(out, "%s{\"bytes\": %" PRIu64 ", \"median_Bps\": %.4g, \"min_Bps\": %.4g, \"max_Bps\": %.4g}",
                k ? ", " : "", b[k].bytes, b[k].median, b[k].min, b[k].max);
    fputs("]", out);
}

xo_status_t xo__profile_write(const xo_profile_t *p, FILE *out)
{
    /* One pair per line (figures with %.17g would be noise; 4 significant digits match what was measured). */
    fprintf(out, "{\n  \"xoscar_profile\": %d,\n  \"cluster\": ", XO_PROFILE_VERSION);
    put_str(out, p->cluster);
    fputs(",\n  \"measured_at\": ", out);
    put_str(out, p->measured_at);
    fputs(",\n  \"commit\": ", out);
    put_str(out, p->commit);
    fputs(",\n  \"tool\": ", out);
    put_str(out, p->tool);
    fputs(",\n  \"hosts\": [", out);
    for (size_t i = 0; i < p->n_hosts; i++) {
        fprintf(out, "%s\n    {\"name\": ", i ? "," : "");
        put_str(out, p->hosts[i].name);
        fputs(", \"address\": ", out);
        put_str(out, p->hosts[i].address);
        fprintf(out, ", \"port\": %u}", p->hosts[i].port);
    }
    fputs("\n  ],\n  \"pools\": [", out);
    for (size_t i = 0; i < p->n_pools; i++) {
        fprintf(out, "%s\n    {\"address\": ", i ? "," : "");
        put_str(out, p->pools[i].address);
        fputs(", \"host\": ", out);
        put_str(out, p->pools[i].host);
        fputs(", \"device\": ", out);
        put_str(out, p->pools[i].device);
        const xo_profile_pool_t *pl = &p->pools[i];
        if (pl->n_copy_bw) {
            fputs(",\n     \"copy_bandwidth\": ", out);
            put_points(out, pl->copy_bw, pl->n_copy_bw);
        }
        if (pl->launch_via) {
            fputs(",\n     \"kernel_launch\": {\"via\": ", out);
            put_str(out, pl->launch_via);
            fprintf(out, ", \"p50_us\": %.4g, \"p99_us\": %.4g}", pl->launch_p50_us, pl->launch_p99_us);
        } else if (pl->launch_none) {
            fputs(",\n     \"kernel_launch\": {\"none\": ", out);
            put_str(out, pl->launch_none);
            fputs("}", out);
        }
        fputs("}", out);
    }
    fputs("\n  ],\n  \"pairs\": [", out);
    for (size_t i = 0; i < p->n_pairs; i++) {
        const xo_profile_pair_t *pr = &p->pairs[i];
        fprintf(out, "%s\n    {\"from\": ", i ? "," : "");
        put_str(out, pr->from);
        fputs(", \"to\": ", out);
        put_str(out, pr->to);
        fputs(", \"path\": ", out);
        put_str(out, pr->path);
        fprintf(out, ",\n     \"latency_us\": {\"p50\": %.4g, \"p99\": %.4g},\n     \"bandwidth\": ", pr->p50_us,
                pr->p99_us);
        put_points(out, pr->bw, pr->n_bw);
        if (pr->dev_path) {
            fputs(",\n     \"device_buf\": {\"path\": ", out);
            put_str(out, pr->dev_path);
            fputs(", \"bandwidth\": ", out);
            put_points(out, pr->dev_bw, pr->n_dev_bw);
            fputs("}", out);
        }
        fputs("}", out);
    }
    fputs("\n  ]\n}\n", out);
    return fflush(out) == 0 && !ferror(out) ? XO_OK : xo__error_set(XO_ESYS, "cannot write the profile: %s",
                                                                   strerror(errno));
}

/* ---- reading figures ------------------------------------------------------------------------------------------- */

const xo_profile_pair_t *xo__profile_find_pair(const xo_profile_t *p, const char *from, const char *to)
{
    for (size_t i = 0; p && i < p->n_pairs; i++)
        if (strcmp(p->pairs[i].from, from) == 0 && strcmp(p->pairs[i].to, to) == 0) return &p->pairs[i];
    return NULL;
}

static double nearest_point(const xo_profile_bw_t *pts, size_t n, uint64_t bytes)
{
    if (!n) return 0;
    size_t best = 0;
    double want = log((double)(bytes ? bytes : 1)), best_d = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(log((double)pts[i].bytes) - want);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return pts[best].median;
}

double xo__profile_pair_bandwidth(const xo_profile_pair_t *pair, uint64_t bytes)
{
    return pair ? nearest_point(pair->bw, pair->n_bw, bytes) : 0;
}

double xo__profile_pair_dev_bandwidth(const xo_profile_pair_t *pair, uint64_t bytes)
{
    return pair ? nearest_point(pair->dev_bw, pair->n_dev_bw, bytes) : 0;
}

size_t xo__profile_compare(const xo_profile_t *p, const char *const *pools_of_c, size_t n, const char *cluster_name,
                           FILE *report)
{
    size_t diffs = 0;
    if (cluster_name && strcmp(cluster_name, p->cluster) != 0) {
        diffs++;
        if (report) fprintf(report, "measured on cluster '%s', this is '%s'\n", p->cluster, cluster_name);
    }
    for (size_t i = 0; i < p->n_pools; i++) {
        bool found = false;
        for (size_t k = 0; k < n && !found; k++) found = strcmp(pools_of_c[k], p->pools[i].address) == 0;
        if (!found) {
            diffs++;
            if (report) fprintf(report, "pool %s is in the profile, not in the cluster\n", p->pools[i].address);
        }
    }
    for (size_t k = 0; k < n; k++)
        if (pool_index(p, pools_of_c[k]) < 0) {
            diffs++;
            if (report) fprintf(report, "pool %s is in the cluster, not in the profile (its pairs are unknown)\n",
                                pools_of_c[k]);
        }
    return diffs;
}

void xo__profile_fill_costs(const xo_profile_t *p, const char *const *cands, size_t n_cands,
                            const char *const *peers, const xo_place_near_t *near, size_t n_peers,
                            xo_pair_cost_t *out)
{
    for (size_t i = 0; i < n_cands; i++)
        for (size_t k = 0; k < n_peers; k++) {
            const xo_profile_pair_t *pr = near[k].inbound ? xo__profile_find_pair(p, peers[k], cands[i])
                                                          : xo__profile_find_pair(p, cands[i], peers[k]);
            double bw = !pr ? 0 : near[k].device_buf ? xo__profile_pair_dev_bandwidth(pr, near[k].bytes)
                                                     : xo__profile_pair_bandwidth(pr, near[k].bytes);
            out[i * n_peers + k] = pr ? (xo_pair_cost_t){pr->p50_us, bw} : (xo_pair_cost_t){0, 0};
        }
}
