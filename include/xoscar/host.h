/* A host: this process's main pool plus sub pools, each its own process (xoscar-pool), bound to its CPUs,
 * supervised, with placement policies choosing where a new actor goes.
 *
 * Addresses: the main pool is "host:port" (port 0 picks one); sub pool i is "host:port/i" (i from 1). Any process
 * on the machine reaches them by address; calls between pools of one host go over shared memory. */
#ifndef XOSCAR_HOST_H
#define XOSCAR_HOST_H

#include "xoscar/xoscar.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xo_host xo_host_t;

/* What the main pool does when a sub pool's process dies. Calls in flight to it always fail with XO_EPOOLDIED. */
typedef enum xo_restart {
    XO_RESTART_NONE = 0,    /* leave it dead */
    XO_RESTART_PROCESS = 1, /* start a new process at the same address, empty */
    XO_RESTART_ACTORS = 2,  /* and re-create the actors placed there through the host, from their create
                             * arguments (their state is lost; Xoscar's auto_recover="actor"). Until one is back,
                             * its callers get XO_ERECOVERING (retry), not XO_ENOACTOR, which stays the answer for
                             * actors destroyed or given up. Calls are answered, not held: a caller decides how
                             * long to retry. */
} xo_restart_t;

typedef enum xo_pool_event {
    XO_POOL_DOWN = 1,      /* a sub pool's process died */
    XO_POOL_RECOVERED = 2, /* it was restarted (and its actors re-created, per the policy) */
    XO_POOL_FAILED = 3,    /* it died once more than its restart intensity allows: it stays down, and
                            * xo_host_sub_pool_error says why */
} xo_pool_event_t;

/* Restart intensity, as in Erlang/OTP supervisors: a sub pool is restarted at most max_restarts times within
 * restart_period_ms; when it dies once more it stays down (XO_POOL_FAILED). Within the period the first restart is
 * immediate and each further one waits twice as long as the one before, from restart_backoff_ms up to
 * restart_backoff_max_ms. Under XO_RESTART_ACTORS an actor whose re-creation fails in its init (XO_EHOOK), or
 * took the pool down twice, is given up (logged) and the pool goes on without it. The defaults, used where the
 * config's field is 0: */
#define XO_HOST_MAX_RESTARTS_DEFAULT 3
#define XO_HOST_RESTART_PERIOD_MS_DEFAULT 10000
#define XO_HOST_RESTART_BACKOFF_MS_DEFAULT 100
#define XO_HOST_RESTART_BACKOFF_MAX_MS_DEFAULT 5000
#define XO_HOST_MAX_RESTARTS_LIMIT 10000 /* the most max_restarts may be */

typedef struct xo_sub_pool_config {
    const char *cpus;      /* "2-3,6"; NULL: cores from the host's topology, split between the sub pools */
    const char *labels;    /* comma-separated, e.g. "gpu,fast"; NULL: none */
    unsigned n_threads;    /* scheduler threads; 0: one per CPU it is bound to */
    const char *device;    /* the device it owns: "host:0", "cuda:1"; NULL: none (xoscar/device_buf.h) */
    uint64_t device_capacity; /* bytes its device may hand out; 0: the backend's default */
    /* Environment entries for its process, "NAME=value", added to the host process's environment (an entry
     * replaces the host's variable of the same name); kept for its restarts. Copied. XO_SECRET cannot be set here
     * (the host passes its own secret); an entry without '=' or a name is XO_ECONFIG. */
    const char *const *env;
    size_t n_env;
} xo_sub_pool_config_t;

typedef struct xo_host_config {
    const char *address;                  /* the main pool's address; NULL: "127.0.0.1:0" */
    unsigned n_sub_pools;
    const xo_sub_pool_config_t *sub_pools; /* n_sub_pools entries, or NULL for defaults */
    const char *const *modules;           /* actor modules every pool loads (the main pool too) */
    size_t n_modules;
    xo_restart_t restart;
    unsigned max_restarts;                /* restart intensity (above); 0: XO_HOST_MAX_RESTARTS_DEFAULT */
    unsigned restart_period_ms;           /* 0: XO_HOST_RESTART_PERIOD_MS_DEFAULT */
    unsigned restart_backoff_ms;          /* 0: XO_HOST_RESTART_BACKOFF_MS_DEFAULT */
    unsigned restart_backoff_max_ms;      /* 0: XO_HOST_RESTART_BACKOFF_MAX_MS_DEFAULT */
    unsigned main_threads;                /* the main pool's scheduler threads; 0: 1 */
    const char *main_device;              /* the device the main pool owns ("host:0", "cuda:0"); NULL: none */
    uint64_t main_device_capacity;        /* bytes it may hand out; 0: the backend's default */
    const char *pool_binary;              /* NULL: $XO_POOL_BINARY, else xoscar-pool beside this executable or
                                           * in the build tree, else from PATH */
    const char *default_policy;           /* the strategy of creates that name none; NULL: "round_robin" */
    double weights[3];                    /* the "weighted" policy's weights: free memory, load, link cost; all 0:
                                           * 1, 1, 1 */
    const char *log_file;                 /* the host's log file, or NULL: this process (the main pool) appends its
                                           * log lines to it from xo_host_start on, as well as to stderr, and sub
                                           * pool n to the same path with "@n" before its ".log" ("solo.log":
                                           * "solo@1.log"). When this process's stderr is that file (a daemon's),
                                           * sub pools' stdout and stderr go to their own files; else they share
                                           * ours. Sub pools log at this process's log threshold unless their own
                                           * env names XO_LOG_LEVEL. */
    /* Called for every pool event: DOWN and FAILED on the supervisor's watcher thread, RECOVERED (and FAILED when a
     * restart could not start) on the pool's own keeper thread, so events of different pools may come at the same
     * time from different threads; those of one pool come in order. Must not block for long: a DOWN callback that
     * blocks delays the next death being seen. */
    void (*on_event)(const char *address, xo_pool_event_t event, void *arg);
    void *event_arg;
} xo_host_config_t;

/* Starts the main pool in this process and the sub pools as processes, and waits until every one is ready.
 * On failure nothing is left running; the error text says which pool failed and why. The caller owns *host_p. */
XO_API xo_status_t xo_host_start(const xo_host_config_t *cfg, xo_host_t **host_p);

/* Stops the sub pools (SIGTERM, then SIGKILL after 2 s) and the main pool. Leaves no process behind. */
XO_API void xo_host_stop(xo_host_t *host);

/* The main pool's address (owned by the host). */
XO_API const char *xo_host_address(const xo_host_t *host);

/* Sub pools are numbered as their addresses are: sub pool n is "host:port/n", from 1 (0 is the main pool, as in
 * xo_placement_t.process_index). Every function below takes that number. Numbers are not reused: a sub pool added
 * after one was removed gets the next number, and the removed one keeps its own (its pid is then 0). */

/* The highest sub pool number (so removed ones included): sub pools are 1 .. xo_host_sub_pool_count(). */
XO_API size_t xo_host_sub_pool_count(const xo_host_t *host);
/* Sub pool n's address (owned by the host), or NULL when there is no sub pool n. */
XO_API const char *xo_host_sub_pool_address(const xo_host_t *host, size_t n);
/* Sub pool n's current pid; 0 when it is not running (dead, removed) or there is no sub pool n. */
XO_API int xo_host_sub_pool_pid(const xo_host_t *host, size_t n);

/* Why sub pool n stays down after too many restarts (XO_POOL_FAILED), owned by the host; NULL while it is not
 * failed. */
XO_API const char *xo_host_sub_pool_error(const xo_host_t *host, size_t n);

/* Adds a sub pool while running; *n_p (may be NULL) gets its number. */
XO_API xo_status_t xo_host_add_sub_pool(xo_host_t *host, const xo_sub_pool_config_t *cfg, size_t *n_p);

/* Stops sub pool n (its actors go with it) and keeps it from being restarted. XO_EINVAL when there is no sub pool n
 * or it was removed already. */
XO_API xo_status_t xo_host_remove_sub_pool(xo_host_t *host, size_t n);

/* Kills (SIGKILL) the process of the sub pool that holds actor uid (created through the host, or directly in a sub
 * pool), as Xoscar's kill_actor does, and returns once its death has been seen: every call in flight to that pool
 * has failed with XO_EPOOLDIED and XO_POOL_DOWN has been reported. Every actor of that pool dies with it; the
 * restart policy then applies as to any other death (and counts against the restart intensity). XO_ENOACTOR when
 * the host knows no such actor, XO_EINVAL when it is in the main pool (this process), XO_EPOOLDIED when its pool is
 * not running. */
XO_API xo_status_t xo_host_kill_actor(xo_host_t *host, const char *uid);

/* Where an actor created through the host goes. strategy names a policy: "address", "main_pool", "random",
 * "random_sub_pool", "process_index", "random_label", "idle_label", "round_robin", "least_loaded",
 * "most_free_memory", "weighted" (also Xoscar's names: "IdleLabel", ...). NULL strategy: "round_robin" over the
 * sub pools. The memory-aware ones ask each candidate pool for its device's free memory at placement time. */
/* An actor a new actor will talk to, for the "weighted" policy's link term: the pools are scored by the cost of
 * reaching it, latency + bytes / bandwidth as the host's tune profile measured that pair (xo_host_load_profile). */
typedef struct xo_near {
    const char *actor;     /* the uid of an actor of this host, or a pool's address ("127.0.0.1:7300/2") */
    uint64_t bytes;        /* expected bytes per call to it; 0: small calls, latency only */
    bool device_buf;       /* those bytes are device buffers lent to it (xo_pack_device_buf): the cost uses the
                            * pair's device-buffer bandwidth (device IPC or staging) from the profile, not the
                            * host-payload one; a pair measured without device figures counts as unknown */
    bool inbound;          /* the bytes flow from it to the new actor (it calls the new actor, e.g. the previous stage
                            * of a pipeline): the cost is that of the pair (it, candidate), not (candidate, it). Paths
                            * are not symmetric: a pool under XO_DEVICE_IPC=0 stages what it receives, not what it
                            * lends */
} xo_near_t;

typedef struct xo_placement {
    const char *strategy;
    const char *address;   /* "address" */
    size_t process_index;  /* "process_index": 0 is the main pool */
    const char *label;     /* label strategies; also restricts the load-based ones */
    const char *mark;      /* "idle_label": one actor per (label, mark) per pool */
    uint64_t device_mem;   /* device memory the actor needs: only pools whose device has that much free qualify
                            * ("most_free_memory" picks the most free; "weighted" scores free memory too) */
    bool cluster;          /* consider the pools of every host of the cluster (xo_host_set_cluster), not only this
                            * host's: a host that does not answer is skipped (logged; named in the error when no
                            * pool is left). Not with "idle_label" or "process_index", which are per host. The
                            * actor is created through the host that owns the chosen pool, which records it. */
    const xo_near_t *near; /* "weighted": the n_near actors it will talk to (at most 64); a uid that names no actor
                            * of the host is XO_EINVAL (not XO_ENOACTOR: that would read as the service missing) */
    size_t n_near;
} xo_placement_t;

/* The main pool addresses of the cluster's hosts, for placements with cluster scope (xo_placement_t.cluster);
 * this host's own address may be among them and is skipped. Copied; replaces what was set before. A placement asks
 * the first 64 of them, all at once, and waits at most 3 s for their answers; the candidates are at most 256 pools
 * in all (this host's first). `xoscar up` sets every host of the cluster file. */
XO_API xo_status_t xo_host_set_cluster(xo_host_t *host, const char *const *main_addresses, size_t n);

/* Loads the tune profile at path (docs/tune-profile.md) for this host's placement, replacing the one it had;
 * NULL drops it. A profile that does not match the host's pools is not an error: each difference is logged as a
 * warning and pairs of pools the host lacks are ignored (unknown). A file that does not load is XO_ECONFIG with its
 * file:line:column, and the previous profile stays. Placement reads it at create time only. */
XO_API xo_status_t xo_host_load_profile(xo_host_t *host, const char *path);

/* Creates an actor of the class named class_name (registered in every pool, e.g. by a module) in the pool the
 * placement chooses, and records it so that xo_actor_ref(host address, uid) finds it and XO_RESTART_ACTORS can
 * re-create it. args is consumed. Errors of the policy (XO_ENOIDLESLOT...) and of the create itself. */
XO_API xo_status_t xo_host_create_actor(xo_host_t *host, const char *class_name, xo_args_t *args, const char *uid,
                                        const xo_placement_t *placement, xo_ref_t **ref_p);

/* The same placement from any process, through the host's main pool at main_address (its placement service,
 * the actor XO_HOST_SERVICE_UID). The class must be known to the pools (its module loaded there). args is
 * consumed. On XO_OK *ref_p is a ref to the actor in the pool chosen. XO_EINVAL when main_address is not a host's
 * main pool. */
XO_API xo_status_t xo_create_actor_placed(const char *class_name, xo_args_t *args, const char *main_address,
                                          const char *uid, const xo_placement_t *placement, xo_ref_t **ref_p);

/* The uid of the placement and registration service actor in a host's main pool. */
#define XO_HOST_SERVICE_UID "xo.host"

#ifdef __cplusplus
}
#endif
#endif
