/* The cluster file: a YAML description of a cluster (its hosts, their pools, modules, secret, transports and
 * placement), parsed into an xo_cluster_t that the `xoscar` CLI uses to start hosts. docs/cluster-file.md documents
 * every key; examples/cluster.yaml is a full example.
 *
 * One table per mapping level (cluster_file.c) holds each key's name, type, default, documentation and parser. The
 * parser, the defaults, the "expected one of: ..." error texts, xo__cluster_dump and the key reference in
 * docs/cluster-file.md (xo__cluster_write_reference, checked by a test) all come from those tables.
 *
 * Errors: every function returning xo_status_t fills the caller's err (may be NULL) with the status, the 1-based
 * line and column in the file where the error is, and a text "file:line:column: what is wrong (what was expected)";
 * the same text is the thread's last error (xo_last_error()). Nothing is returned on error: out-params are set only
 * on XO_OK.
 *
 * Threading: a loaded cluster is immutable; any number of threads may read it and call the const functions on it at
 * once. Loading touches no global state. */
#ifndef XO_CLUSTER_CLUSTER_FILE_H
#define XO_CLUSTER_CLUSTER_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policies/policy.h"
#include "base/error.h"
#include "base/log.h"
#include "cluster/topology.h"
#include "xoscar/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most sub pools one host may have (counts included), as the host supervisor allows. */
#define XO_CLUSTER_MAX_SUB_POOLS 256

/* The port of a host's main pool when the file gives none. */
#define XO_CLUSTER_DEFAULT_PORT 7100

/* Where an error is and what it says. line and column are 1-based; both are 0 when the error has no place in the
 * file (the file cannot be read, out of memory). */
typedef struct xo_cluster_error {
    xo_status_t status;
    int line;
    int column;
    char text[XO_ERROR_TEXT_MAX];
} xo_cluster_error_t;

/* How `xoscar up` starts a host that is not this machine. */
typedef enum xo_launcher {
    XO_LAUNCHER_SSH = 0,   /* ssh <address> xoscar host ... */
    XO_LAUNCHER_LOCAL = 1, /* a process on this machine (several hosts on one machine, tests) */
    XO_LAUNCHER_NONE = 2,  /* started by someone else (a batch system, by hand); `up` only waits for it */
} xo_launcher_t;

/* The transports a cluster may prefer, in transport.prefer. */
typedef enum xo_cluster_transport {
    XO_CLUSTER_TRANSPORT_SHM = 0,
    XO_CLUSTER_TRANSPORT_UNIX = 1,
    XO_CLUSTER_TRANSPORT_UCX = 2,
    XO_CLUSTER_TRANSPORT_TCP = 3,
} xo_cluster_transport_t;

#define XO_CLUSTER_N_TRANSPORTS 4

/* Where a value is in the file (1-based; 0: it was not in the file, it is the default). */
typedef struct xo_cluster_mark {
    int line;
    int column;
} xo_cluster_mark_t;

#define XO_CLUSTER_COUNT_GPUS (-2)

/* One entry of a host's pools: `count` identical sub pools. */
typedef struct xo_cluster_pool {
    char *cpus;             /* a cpu list as written ("0-3,8"), checked for syntax; NULL: "auto" */
    int count;              /* sub pools of this entry; -1: "auto" (one per core of cpus, or of the host);
                             * XO_CLUSTER_COUNT_GPUS: "gpus" (one per CUDA GPU of the host) */
    int gpu;                /* device index; -1: none (`gpu: N` is `device: cuda:N`) */
    char *device;           /* "none", "auto", "host", "host:N" or "cuda:N", as written (xo__cluster_host_config
                             * resolves auto); never NULL */
    char **labels;          /* n_labels labels (no commas, not empty) */
    size_t n_labels;
    unsigned threads;       /* scheduler threads of each; 0: one per CPU the pool is bound to */
    char **env;             /* n_env "NAME=value" entries for each sub pool's process */
    size_t n_env;
    xo_cluster_mark_t mark;      /* the entry */
    xo_cluster_mark_t cpus_mark; /* its cpus value */
    xo_cluster_mark_t device_mark; /* its device (or gpu) value */
} xo_cluster_pool_t;

/* A host's main pool (always there). */
typedef struct xo_cluster_main {
    unsigned threads;       /* scheduler threads; >= 1 */
    char **labels;
    size_t n_labels;
} xo_cluster_main_t;

typedef struct xo_cluster_host {
    char *name;             /* unique in the cluster */
    char *address;          /* an IP address (IPv6 without brackets) or a host name */
    unsigned port;          /* the main pool's port; 0: any */
    xo_launcher_t launcher;
    xo_cluster_main_t main;
    xo_cluster_pool_t *pools;
    size_t n_pools;
    xo_cluster_mark_t mark;         /* the entry */
    xo_cluster_mark_t name_mark;    /* its name value */
    xo_cluster_mark_t address_mark; /* its address value */
} xo_cluster_host_t;

typedef struct xo_cluster {
    char *path;             /* the file as given to xo__cluster_load, or the name given to xo__cluster_load_string */
    char *dir;              /* the absolute directory relative paths are resolved against */
    char *name;
    char *secret;           /* the shared secret (from secret or read from secret_file); secret_len bytes + NUL */
    size_t secret_len;
    char *secret_file;      /* absolute; NULL when the secret was given inline */
    char **modules;         /* absolute paths of actor modules every pool loads */
    size_t n_modules;
    xo_restart_t restart;
    struct {
        unsigned max_restarts, period_ms, backoff_ms, backoff_max_ms; /* xo_host_config_t's, >= 1 */
    } restart_intensity;
    xo_log_level_t log_level;
    struct {
        xo_cluster_transport_t prefer[XO_CLUSTER_N_TRANSPORTS]; /* n_prefer entries, no duplicates */
        size_t n_prefer;
        char *ucx_tls;      /* "" : UCX's own default */
    } transport;
    struct {
        char *policy;       /* the canonical name (xo_policy_ops_t.name) even when the file used an alias */
        xo_place_kind_t kind;
        xo_place_weights_t weights;
        char *profile;      /* the tune profile, absolute; NULL: none */
    } placement;
    xo_cluster_host_t *hosts;
    size_t n_hosts;
    void *arena;            /* owns every pointer above */
} xo_cluster_t;

/* Reads and checks the cluster file at path. On XO_OK the caller owns *c_p (xo__cluster_free). Errors:
 * XO_ESYS: the file cannot be read (line 0). XO_ECONFIG: a YAML syntax error (libyaml's line and column), an unknown
 * key, a value of the wrong type or out of range, a missing required key (hosts, a host's name or address, one of
 * secret and secret_file), both secret and secret_file, an unreadable or empty secret_file, duplicate host names,
 * two hosts at the same address:port. XO_ENOMEM. err may be NULL. */
xo_status_t xo__cluster_load(const char *path, xo_cluster_t **c_p, xo_cluster_error_t *err);

/* The same from text (NUL-terminated). name is used in messages and its directory (relative to the current
 * directory when it is relative) is the base of relative paths; NULL: "<string>" in the current directory. */
xo_status_t xo__cluster_load_string(const char *text, const char *name, xo_cluster_t **c_p, xo_cluster_error_t *err);

/* Frees everything of c; NULL is fine. */
void xo__cluster_free(xo_cluster_t *c);

/* The index of the host named name, or -1. */
long xo__cluster_find_host(const xo_cluster_t *c, const char *name);

/* True when host i's address is this machine: a loopback address, "localhost", this machine's host name, or an
 * address of one of its interfaces (getifaddrs); a host name is resolved (getaddrinfo: may block on DNS) and
 * matches when one of its addresses does. False for i out of range. */
bool xo__cluster_host_is_local(const xo_cluster_t *c, size_t i);

/* Checks host i against topo, the topology of the machine it runs on: every CPU of every explicit cpus list must
 * exist there. XO_ECONFIG at the cpus value ("cluster.yaml:14:15: hosts[0].pools[1].cpus: CPU 64 does not exist
 * on this host (its CPUs are 0-63)"); XO_EINVAL for i out of range or topo NULL. */
xo_status_t xo__cluster_check_host(const xo_cluster_t *c, size_t i, const xo_topology_t *topo,
                                  xo_cluster_error_t *err);

/* Host i as an xo_host_config_t for xo_host_start, with the storage it points to. */
typedef struct xo__cluster_host_config {
    xo_host_config_t cfg;              /* address "address:port" ("[v6]:port"), sub pools, modules, restart */
    xo_sub_pool_config_t *sub_pools;   /* cfg.n_sub_pools entries, pool entries expanded by their count */
    int *sub_pool_gpu;                 /* cfg.n_sub_pools entries: the CUDA device index each sub pool owns
                                        * (its sub_pools[k].device is then "cuda:N"), -1 for none or a host
                                        * device */
    char *device_notes;                /* how `device: auto` entries were resolved on this machine, one line
                                        * each ("file:line:col: hosts[0].pools[1].device: auto: ..."), or NULL
                                        * when the host has none; for the caller to log */
    bool device_fallback;              /* an auto entry got the host device because no GPU was found */
    char *main_labels;                 /* the main pool's labels, comma-separated, or NULL (xo_host_config_t
                                        * has no field for them yet) */
    void *storage;
} xo_cluster_host_config_t;

/* Builds host i's config. Each pool entry becomes `count` sub pools: an explicit cpus list with count N > 1 is
 * split into N parts by whole cores (xo__topology_partition within the list); "auto" cpus split the whole host; an
 * "auto" count is the number of cores split. Devices: `gpu: N` and `device: cuda:N` give each of the entry's sub
 * pools "cuda:N"; `device: host` / `host:N` "host:0" / "host:N" (a device on host memory); `device: auto` "cuda:K",
 * the auto sub pools of the host taking this machine's CUDA devices in turn, or "host:0" when the machine has
 * none (or the build has no CUDA backend): CUDA devices are discovered here (blocking, once) only when an entry
 * says auto, and hc->device_notes says what was chosen and why. `count: gpus` makes one sub pool per CUDA device
 * ("cuda:k"; with device auto and no device, one on "host:0"; without auto and no device, XO_ECONFIG). Sub pools
 * that own CUDA devices and give no cpus are bound near their devices (xo__topology_partition_near over each
 * device's local_cpulist); where that is unknown the whole host is split, and device_notes says which happened.
 * Explicit CUDA indices are not checked here: the
 * sub pool fails to start when its device does not open, with the device's error. topo is the topology of the machine the host runs on (this one:
 * the config is for xo_host_start); NULL: it is loaded here when an entry needs it. Runs xo__cluster_check_host
 * first. On XO_OK the caller owns *hc_p (xo__cluster_host_config_free) and may change hc->cfg's callbacks and
 * pool_binary. XO_ECONFIG: a CPU that does not exist, more than XO_CLUSTER_MAX_SUB_POOLS sub pools; XO_ESYS: the
 * topology could not be loaded; XO_EINVAL: i out of range. */
xo_status_t xo__cluster_host_config(const xo_cluster_t *c, size_t i, const xo_topology_t *topo,
                                   xo_cluster_host_config_t **hc_p, xo_cluster_error_t *err);

void xo__cluster_host_config_free(xo_cluster_host_config_t *hc);

/* Starts host i of c in this process (cluster_start.c): its config with the file's placement section, log_file
 * (NULL: none) as xo_host_config_t.log_file, the other hosts' main pools and the tune profile. The caller owns
 * *host_p (xo_host_stop). On error err says why ("host NAME: ..."). */
xo_status_t xo__cluster_start_host(const xo_cluster_t *c, size_t i, const char *log_file, struct xo_host **host_p,
                                   xo_cluster_error_t *err);

/* This process takes c's secret and transport preferences (the environment its sub pools inherit). */
void xo__cluster_apply_environment(const xo_cluster_t *c);

/* Writes the effective configuration of c, every default filled in, as a cluster file (`xoscar config --dump`)
 * that loads back to the same cluster when the secret came from secret_file. An inline secret is not written: the
 * line reads `secret: "***"` with a comment giving its length, and loading that back is refused until the real
 * secret replaces it. Returns 0, or -1 when writing to out failed. */
int xo__cluster_dump(const xo_cluster_t *c, FILE *out);

/* Writes the key reference (one Markdown table per mapping level: key, type, default, meaning) generated from the
 * tables; docs/cluster-file.md holds this text between its "BEGIN keys" and "END keys" markers. Returns 0 or -1. */
int xo__cluster_write_reference(FILE *out);

/* "ssh", "local", "none"; "shm", "unix", "ucx", "tcp". NULL for a value that is none. */
const char *xo__launcher_name(xo_launcher_t l);
const char *xo__cluster_transport_name(xo_cluster_transport_t t);

/* ---- shared by runtime/cluster_*.c only ------------------------------------------------------------------------ */

/* Fills err (may be NULL) and the thread's last error with "file:line:column: <fmt>" ("file: <fmt>" when line is 0)
 * and returns st. */
xo_status_t xo__cluster_error(xo_cluster_error_t *err, xo_status_t st, const char *file, int line, int column,
                              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Zeroed memory owned by *arena (freed all at once by xo__cluster_arena_free); NULL when out of memory. */
void *xo__cluster_alloc(void **arena, size_t size);
char *xo__cluster_strndup(void **arena, const char *s, size_t len);
void xo__cluster_arena_free(void *arena);

#ifdef __cplusplus
}
#endif
#endif
