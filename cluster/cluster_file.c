/* The cluster file: its key tables, the kinds of value only it has, the checks across keys, and loading. The walk
 * over the tables (parse, dump, reference) is the engine's, cluster/config_table.c. See cluster/cluster_file.h and
 * docs/cluster-file.md.
 *
 * Everything a key is (its name, type, default, documentation and where its value goes) is one row of a table, one
 * table per mapping level. The parser walks the YAML tree with the tables; a default is YAML text parsed by the same
 * row as a value from the file would be, so a default cannot disagree with what the parser accepts. The dump and the
 * reference in the docs walk the same tables. */
#include "cluster/cluster_file.h"
#include "cluster/config_table.h"

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

/* The largest secret_file read. */
#define SECRET_FILE_MAX 65536

/* What xo__cluster_dump writes in place of an inline secret; refused as a secret so that a dump is never loaded
 * back by mistake as if it held the real one. */
#define HIDDEN_SECRET "***"


/* A cpu list, checked for syntax only (whether its CPUs exist depends on the host: xo__cluster_check_host), or
 * "auto" (NULL). */
static xo_status_t parse_cpus(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = xo__cfg_get_text(p, n, "a cpu list such as \"0-3,8\" or 'auto'", &s);
    if (st != XO_OK) return st;
    xo__cfg_set_mark(p, obj, f->has_mark, f->mark_off, n);
    if (!strcmp(s, "auto")) {
        *AT(obj, f->off, char *) = NULL;
        return XO_OK;
    }
    xo_cpuset_t set;
    char why[XO_ERROR_TEXT_MAX];
    if (xo__cpuset_parse(s, &set, why, sizeof why) != XO_OK) return xo__cfg_fail_at(p, n, "%s", why);
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return xo__cfg_no_memory(p);
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
    if (!xo__cfg_is_scalar(n) || strlen(xo__cfg_sval(n)) != n->data.scalar.length) return xo__cfg_fail_value(p, n, expected);
    const xo_policy_ops_t *ops = xo__policy_find(xo__cfg_sval(n));
    if (!ops) return xo__cfg_fail_value(p, n, expected);
    if (!policy_is_default_able(ops->kind))
        return xo__cfg_fail_at(p, n, "policy '%s' needs a parameter per call and cannot be the cluster's default "
                             "(expected one of: %s)", xo__cfg_sval(n), list);
    char *d = xo__cluster_strndup(p->arena, ops->name, strlen(ops->name));
    if (!d) return xo__cfg_no_memory(p);
    *AT(obj, f->off, char *) = d;
    *AT(obj, f->aux_off, int) = (int)ops->kind;
    return XO_OK;
}

/* The inline secret. */
static xo_status_t parse_secret(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    const char *s;
    xo_status_t st = xo__cfg_get_text(p, n, "a non-empty string", &s);
    if (st != XO_OK) return st;
    if (!s[0]) return xo__cfg_fail_value(p, n, "a non-empty string");
    if (!strcmp(s, HIDDEN_SECRET))
        return xo__cfg_fail_at(p, n, "'" HIDDEN_SECRET "' is what `xoscar config --dump` writes in place of a hidden "
                             "secret; give the real secret (or secret_file)");
    char *d = xo__cluster_strndup(p->arena, s, strlen(s));
    if (!d) return xo__cfg_no_memory(p);
    *AT(obj, f->off, char *) = d;
    *AT(obj, f->aux_off, size_t) = strlen(s);
    return XO_OK;
}

/* secret_file: its path, made absolute, and the secret read from it (trailing white space dropped). */
static xo_status_t parse_secret_file(pctx_t *p, const field_t *f, yaml_node_t *n, void *obj)
{
    xo_status_t st = xo__cfg_parse_path(p, f, n, obj);
    if (st != XO_OK) return st;
    const char *path = *AT(obj, f->off, char *);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0) return xo__cfg_fail_at(p, n, "cannot read the secret file '%s': %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        close(fd);
        return xo__cfg_fail_at(p, n, "cannot read the secret file '%s': %s", path,
                       S_ISREG(sb.st_mode) ? strerror(e) : "not a regular file");
    }
    if (sb.st_size > SECRET_FILE_MAX) {
        close(fd);
        return xo__cfg_fail_at(p, n, "the secret file '%s' is larger than %d bytes", path, SECRET_FILE_MAX);
    }
    char *buf = xo__cluster_alloc(p->arena, (size_t)sb.st_size + 1);
    if (!buf) {
        close(fd);
        return xo__cfg_no_memory(p);
    }
    size_t len = 0;
    while (len < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return xo__cfg_fail_at(p, n, "cannot read the secret file '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    if (len == 0) return xo__cfg_fail_at(p, n, "the secret file '%s' is empty", path);
    p->c->secret = buf;
    p->c->secret_len = len;
    return XO_OK;
}


static void dump_cpus(dumper_t *d, const field_t *f, const void *obj)
{
    const char *s = *AT(obj, f->off, const char *const);
    xo__cfg_emit_key(d, f);
    if (!s) {
        fputs(" auto\n", d->out);
        return;
    }
    fputc(' ', d->out);
    xo__cfg_emit_quoted(d->out, s);
    fputc('\n', d->out);
}

static void dump_policy(dumper_t *d, const field_t *f, const void *obj)
{
    xo__cfg_emit_key(d, f);
    fprintf(d->out, " %s\n", *AT(obj, f->off, const char *const));
}

static void dump_secret(dumper_t *d, const field_t *f, const void *obj)
{
    const xo_cluster_t *c = obj;
    if (c->secret_file) return; /* secret_file is written instead */
    xo__cfg_emit_key(d, f);
    fprintf(d->out, " \"" HIDDEN_SECRET "\"  # hidden (%zu bytes)\n", c->secret_len);
}
static void desc_cpus(const field_t *f, char *buf, size_t size) { xo__cfg_describe_plain("cpu list or `auto`", buf, size); }
static void desc_policy(const field_t *f, char *buf, size_t size)
{
    char list[256];
    policies_text(list, sizeof list);
    snprintf(buf, size, "policy: %s", list);
}

static const kind_t K_CPUS = {parse_cpus, dump_cpus, desc_cpus};
static const kind_t K_POLICY = {parse_policy, dump_policy, desc_policy};
static const kind_t K_SECRET = {parse_secret, dump_secret, xo__cfg_desc_string};
static const kind_t K_SECRET_FILE = {parse_secret_file, xo__cfg_dump_string, xo__cfg_desc_path};

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

/* NAME=value, NAME a shell variable name; XO_SECRET is the cluster's (a pool cannot have its own). */
static const char *check_env_entry(const char *s)
{
    static const char expected[] = "NAME=value, NAME of letters, digits and '_' not starting with a digit";
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (s[0] >= '0' && s[0] <= '9')) return expected;
    for (const char *c = s; c < eq; c++)
        if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return expected;
    if (strncmp(s, "XO_SECRET=", 10) == 0) return "an entry other than XO_SECRET (the cluster's secret is the host's)";
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
enum { CLUSTER_SECRET = 1, CLUSTER_SECRET_FILE = 2, CLUSTER_HOSTS = 9 };

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
    {.name = "env", .kind = &K_STRINGS, .off = offsetof(xo_cluster_pool_t, env),
     .aux_off = offsetof(xo_cluster_pool_t, n_env), .def = "[]", .check = check_env_entry,
     .type_doc = "list of `NAME=value`",
     .doc = "Environment entries of each of the entry's sub pool processes (`[OMP_NUM_THREADS=4]`), over the host's "
            "own; kept for their restarts. `XO_SECRET` cannot be set here."},
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

#define INTENSITY_OFF(member) \
    (offsetof(xo_cluster_t, restart_intensity.member) - offsetof(xo_cluster_t, restart_intensity))

/* The defaults are the host's (include/xoscar/host.h), written out: the reference shows numbers, not names. */
_Static_assert(XO_HOST_MAX_RESTARTS_DEFAULT == 3 && XO_HOST_RESTART_PERIOD_MS_DEFAULT == 10000 &&
                   XO_HOST_RESTART_BACKOFF_MS_DEFAULT == 100 && XO_HOST_RESTART_BACKOFF_MAX_MS_DEFAULT == 5000 &&
                   XO_HOST_MAX_RESTARTS_LIMIT == 10000,
               "restart_intensity defaults");

static const field_t intensity_fields[] = {
    {.name = "max_restarts", .kind = &K_UINT, .off = INTENSITY_OFF(max_restarts), .def = "3", .min = 1,
     .max = 10000, .doc = "A sub pool is restarted at most this many times within `period_ms`; when it dies once "
                          "more it stays down (logged with the reason)."},
    {.name = "period_ms", .kind = &K_UINT, .off = INTENSITY_OFF(period_ms), .def = "10000", .min = 1,
     .max = 86400000, .doc = "The window `max_restarts` counts restarts in."},
    {.name = "backoff_ms", .kind = &K_UINT, .off = INTENSITY_OFF(backoff_ms), .def = "100", .min = 1,
     .max = 3600000, .doc = "Within the window the first restart is immediate; the next waits this long, and each "
                            "one after twice as long as the one before."},
    {.name = "backoff_max_ms", .kind = &K_UINT, .off = INTENSITY_OFF(backoff_max_ms), .def = "5000", .min = 1,
     .max = 3600000, .doc = "The longest back-off."},
};

static const table_t intensity_table = {
    .what = "restart intensity settings", .where = "restart_intensity",
    .doc = "How often a dead sub pool is restarted (Erlang/OTP's restart intensity, with exponential back-off). "
           "Under `restart: actors` an actor whose re-creation fails in its init, or takes its pool down twice, is "
           "given up (logged) and the pool comes back without it.",
    .fields = intensity_fields, .n_fields = COUNT_OF(intensity_fields),
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
    {.name = "restart_intensity", .kind = &K_MAP, .off = offsetof(xo_cluster_t, restart_intensity), .def = "{}",
     .def_doc = "(see below)", .sub = &intensity_table, .doc = "Restart limits and back-off."},
    {.name = "log_level", .kind = &K_ENUM, .off = offsetof(xo_cluster_t, log_level), .def = "warn",
     .choices = log_level_names, .doc = "The log threshold of every pool of the cluster; XO_LOG_LEVEL overrides it, and `xoscar --log-level` both (see Logs in docs/cluster-file.md)."},
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
        size_t saved = xo__cfg_path_push_key(p, later == g ? "gpu" : "device");
        xo_status_t st = xo__cfg_fail_at(p, later, "give either 'gpu' or 'device', not both ('gpu: %d' is 'device: cuda:%d')",
                                 pool->gpu, pool->gpu);
        xo__cfg_path_pop(p, saved);
        return st;
    }
    if (g && pool->gpu >= 0) xo__cfg_set_mark(p, obj, true, offsetof(xo_cluster_pool_t, device_mark), g);
    /* count: gpus hands out the GPUs itself; a device of its own would contradict it (auto: the host device where
     * the host has no GPU). */
    yaml_node_t *other = g && pool->gpu >= 0 ? g : d && strcmp(pool->device, "auto") != 0 ? d : NULL;
    if (pool->count == XO_CLUSTER_COUNT_GPUS && other) {
        size_t saved = xo__cfg_path_push_key(p, other == g ? "gpu" : "device");
        xo_status_t st = xo__cfg_fail_at(p, other, "'count: gpus' gives sub pool k GPU k: leave '%s' out (or 'device: auto', "
                                           "to fall back to the host device where there is no GPU)",
                                 other == g ? "gpu" : "device");
        xo__cfg_path_pop(p, saved);
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
        size_t saved = xo__cfg_path_push_key(p, "pools");
        xo_status_t st = xo__cfg_fail_at(p, vals[HOST_POOLS] ? vals[HOST_POOLS] : n,
                                 "%ld sub pools; a host has at most %d", total, XO_CLUSTER_MAX_SUB_POOLS);
        xo__cfg_path_pop(p, saved);
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
        size_t saved = xo__cfg_path_push_key(p, later == sec ? "secret" : "secret_file");
        xo_status_t st = xo__cfg_fail_at(p, later, "give either 'secret' or 'secret_file', not both");
        xo__cfg_path_pop(p, saved);
        return st;
    }
    if (!sec && !sf)
        return xo__cfg_fail_at(p, n, "missing key 'secret' or 'secret_file' in the cluster (one is required: the shared "
                             "secret that authenticates connections between pools)");
    if (c->n_hosts == 0) {
        size_t saved = xo__cfg_path_push_key(p, "hosts");
        xo_status_t st = xo__cfg_fail_at(p, vals[CLUSTER_HOSTS], "expected at least one host");
        xo__cfg_path_pop(p, saved);
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
    xo_status_t st = xo__cfg_load(text, strlen(text), name, dir, &cluster_table, c_p, err);
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
        else st = xo__cfg_load(data, len, path, dir, &cluster_table, c_p, err);
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
    xo__cfg_dump_table(&d, &cluster_table, c);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int xo__cluster_write_reference(FILE *out)
{
    xo__cfg_write_table(out, &cluster_table);
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

