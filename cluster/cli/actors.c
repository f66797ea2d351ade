/* xoscar actors: the actors of a pool, of a host or of a whole cluster, as a table or JSON.
 *
 *   xoscar actors ADDRESS... [--json]            those pools
 *   xoscar actors FILE [HOST|NAME/N...] [--json] every pool of the cluster file (or of the hosts named)
 *   xoscar --cluster FILE actors [HOST|NAME/N...] [--json]
 *
 * Each pool answers an XO_WIRE_LIST request from its I/O thread (runtime/pool.c, xo__pool_pack_actors): uid, class,
 * state, messages waiting and activations running or suspended. Exit 0 when every pool answered, 3 when one could
 * not be reached (the others are listed all the same), 2 for bad usage. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cli/commands.h"
#include "cluster/cluster_file.h"
#include "runtime/core.h"
#include "runtime/remote.h"

static json_t *str_json(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR ? json_stringn(o->via.str.ptr, o->via.str.size) : json_null();
}

static void header_once(void)
{
    static bool done;
    if (!done) printf("%-26s %-32s %-20s %-8s %8s %5s\n", "pool", "uid", "class", "state", "pending", "busy");
    done = true;
}

/* One pool: its rows printed, or its entry appended to out (JSON). false when it did not answer. */
static bool list_pool(const char *host, const char *address, int64_t timeout_ms, json_t *out)
{
    if (!out) header_once();
    xo_result_t *r = NULL;
    xo_status_t st = xo_cli_pool_request(address, XO_WIRE_LIST, timeout_ms, &r);
    const msgpack_object *v = st == XO_OK ? xo_result_value(r) : NULL;
    if (v && v->type != MSGPACK_OBJECT_ARRAY) st = xo__error_set(XO_EPROTO, "the pool's list is not an array");
    json_t *jp = out ? json_object() : NULL, *ja = out ? json_array() : NULL;
    if (jp) {
        json_object_set_new(jp, "host", host ? json_string(host) : json_null());
        json_object_set_new(jp, "pool", json_string(address));
        json_object_set_new(jp, "state", json_string(st == XO_OK ? "up" : xo_status_name(st)));
        json_object_set_new(jp, "error", st == XO_OK ? json_null() : json_string(xo_last_error()));
        json_object_set_new(jp, "actors", ja);
        json_array_append_new(out, jp);
    } else if (st != XO_OK) {
        printf("%-26s %s: %s\n", address, xo_status_name(st), xo_last_error());
    }
    for (uint32_t i = 0; st == XO_OK && i < v->via.array.size; i++) {
        const msgpack_object *row = &v->via.array.ptr[i];
        if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size < 5) continue; /* fields are only appended */
        const msgpack_object *f = row->via.array.ptr;
        uint64_t pending = f[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? f[3].via.u64 : 0;
        int64_t busy = f[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)f[4].via.u64 : 0;
        if (ja) {
            json_t *jr = json_object();
            json_object_set_new(jr, "uid", str_json(&f[0]));
            json_object_set_new(jr, "class", str_json(&f[1]));
            json_object_set_new(jr, "state", str_json(&f[2]));
            json_object_set_new(jr, "pending", json_integer((json_int_t)pending));
            json_object_set_new(jr, "busy", json_integer(busy));
            json_array_append_new(ja, jr);
        } else {
            printf("%-26s %-32.*s %-20.*s %-8.*s %8llu %5lld\n", address, (int)f[0].via.str.size, f[0].via.str.ptr,
                   (int)f[1].via.str.size, f[1].via.str.ptr, (int)f[2].via.str.size, f[2].via.str.ptr,
                   (unsigned long long)pending, (long long)busy);
        }
    }
    if (r) xo_result_free(r);
    return st == XO_OK;
}

/* A target given with a cluster file: a host's name (all its pools), NAME/N (one), or a pool address. */
static bool selected(const char *const *targets, size_t n_targets, const char *host, const char *address,
                     unsigned index)
{
    if (n_targets == 0) return true;
    for (size_t t = 0; t < n_targets; t++) {
        const char *s = targets[t], *slash = strrchr(s, '/');
        size_t hl = strlen(host);
        if (strcmp(s, host) == 0 || strcmp(s, address) == 0) return true;
        if (slash && (size_t)(slash - s) == hl && strncmp(s, host, hl) == 0 && strtoul(slash + 1, NULL, 10) == index)
            return true;
    }
    return false;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int xo__cli_actors(int argc, char **argv, const char *cluster_file, int64_t timeout_ms)
{
    bool as_json = false;
    const char **targets = calloc((size_t)argc, sizeof *targets); /* ours; the strings are argv's */
    size_t n = 0;
    for (int i = 1; targets && i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) as_json = true;
        else if (argv[i][0] == '-') {
            free(targets);
            return xo__cli_usage_error(argv[0]);
        } else targets[n++] = argv[i];
    }
    if (!targets || (!cluster_file && n == 0)) {
        free(targets);
        return xo__cli_usage_error(argv[0]);
    }
    if (!cluster_file && is_file(targets[0])) { /* actors FILE [HOST...] */
        cluster_file = targets[0];
        memmove(targets, targets + 1, --n * sizeof *targets);
    }
    json_t *out = as_json ? json_array() : NULL;
    int unreachable = 0, listed = 0;
    if (cluster_file) {
        struct xo_cluster *c = xo_cli_cluster_load(cluster_file);
        if (!c) {
            free(targets);
            json_decref(out);
            return 2;
        }
        char **pools = NULL, **hosts = NULL;
        size_t np = xo_cli_cluster_pools(c, &pools, &hosts);
        for (size_t i = 0; i < np; i++) {
            const char *slash = strrchr(pools[i], '/');
            unsigned index = slash && !strchr(slash, ':') ? (unsigned)strtoul(slash + 1, NULL, 10) : 0;
            if (!selected(targets, n, hosts[i], pools[i], index)) continue;
            listed++;
            unreachable += !list_pool(hosts[i], pools[i], timeout_ms, out);
        }
        xo_cli_free_list(pools, np);
        xo_cli_free_list(hosts, np);
        xo__cluster_free(c);
        if (n && !listed) {
            fprintf(stderr, "xoscar: actors: no host or pool of %s is named %s\n", cluster_file, targets[0]);
            free(targets);
            json_decref(out);
            return 2;
        }
    } else {
        for (size_t t = 0; t < n; t++) unreachable += !list_pool(NULL, targets[t], timeout_ms, out);
    }
    if (out) {
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(out);
    }
    free(targets);
    return unreachable ? 3 : 0;
}
