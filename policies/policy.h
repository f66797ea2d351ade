/* Placement: given the views of the pools and a request, choose the pool that gets a new actor.
 *
 * Every policy is a pure function of its arguments: it reads the pool views and the request, writes *chosen_p on
 * success and the calling thread's error text (xo__error_set, read with xo_last_error()) on failure, and nothing
 * else. It allocates nothing, takes no lock, keeps no state between calls, and may run on any thread at once.
 * Anything that must change from one placement to the next (the random draw, the round-robin cursor, which pools
 * already hold an IdleLabel actor) is kept by the caller, in the main pool's allocation table, and handed in.
 *
 * Views and requests borrow the caller's memory: every string and array they point to must stay valid and unchanged
 * for the duration of the call, and nothing keeps a pointer to them afterwards.
 *
 * Adding a policy is one file defining `const xo_policy_ops_t xo__policy_<name>` and one line in XO_POLICY_MAP
 * below (plus its source in policies/CMakeLists.txt). */
#ifndef XO_POLICIES_POLICY_H
#define XO_POLICIES_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(KIND, value, name): the placement strategies. The value travels on the wire with a create-actor request, so
 * values are stable: append new policies, never renumber. `name` is the string the cluster file uses and the
 * suffix of the ops table `xo__policy_<name>`.
 *
 *   ADDRESS           exactly req->address (Xoscar AddressSpecified, the default of create_actor(address=...)).
 *   MAIN_POOL         the first pool with process index 0 (Xoscar MainPool).
 *   RANDOM            a uniformly random pool, main included, among those passing the filters (Xoscar Random).
 *   RANDOM_SUB_POOL   as RANDOM, excluding pools with process index 0 (Xoscar RandomSubPool).
 *   PROCESS_INDEX     the first pool whose process index is req->process_index (Xoscar ProcessIndex).
 *   RANDOM_LABEL      as RANDOM, req->label required (Xoscar RandomLabel).
 *   IDLE_LABEL        the first pool with req->label holding no actor created with IdleLabel(req->label, req->mark)
 *                     (Xoscar IdleLabel).
 *   ROUND_ROBIN       the first pool passing the filters at or after index req->cursor, wrapping around.
 *   LEAST_LOADED      the pool passing the filters with the least load (xo__pool_load: actors + queued requests +
 *                     busy threads, as the pool reports them now); ties: lowest index.
 *   MOST_FREE_MEMORY  the pool with a device and the most free device memory, at least req->mem_bytes; ties: lowest
 *                     index.
 *   WEIGHTED          the pool passing the filters with the highest score (formula at xo_place_weights_t). */
#define XO_POLICY_MAP(XX)                     \
    XX(ADDRESS, 0, address)                   \
    XX(MAIN_POOL, 1, main_pool)               \
    XX(RANDOM, 2, random)                     \
    XX(RANDOM_SUB_POOL, 3, random_sub_pool)   \
    XX(PROCESS_INDEX, 4, process_index)       \
    XX(RANDOM_LABEL, 5, random_label)         \
    XX(IDLE_LABEL, 6, idle_label)             \
    XX(ROUND_ROBIN, 7, round_robin)           \
    XX(LEAST_LOADED, 8, least_loaded)         \
    XX(MOST_FREE_MEMORY, 9, most_free_memory) \
    XX(WEIGHTED, 10, weighted)

typedef enum xo_place_kind {
#define XO_PLACE_KIND_ENUM_(kind, value, name) XO_PLACE_##kind = (value),
    XO_POLICY_MAP(XO_PLACE_KIND_ENUM_)
#undef XO_PLACE_KIND_ENUM_
} xo_place_kind_t;

/* How many kinds there are; the values are dense, 0 .. XO_PLACE_KIND_COUNT - 1 (checked in registry.c). */
enum {
#define XO_PLACE_KIND_ONE_(kind, value, name) +1
    XO_PLACE_KIND_COUNT = 0 XO_POLICY_MAP(XO_PLACE_KIND_ONE_)
#undef XO_PLACE_KIND_ONE_
};

/* The device a pool is bound to. HOST is the host backend of gpu/ (device memory that is host memory). */
typedef enum xo_pool_device {
    XO_POOL_DEVICE_NONE = 0,
    XO_POOL_DEVICE_HOST = 1,
    XO_POOL_DEVICE_CUDA = 2,
} xo_pool_device_t;

/* One (label, mark) pair of Xoscar's IdleLabel. A pool lists one for each pair it holds at least one actor of, or
 * has one being created for (the reservation that makes concurrent IdleLabel creations safe). A NULL mark equals
 * "" (and so does a NULL label). */
typedef struct xo_idle_mark {
    const char *label;
    const char *mark;
} xo_idle_mark_t;

/* What reaching one near peer from a candidate pool costs, as the tune profile measured that ordered pair
 * (docs/tune-profile.md). Both 0: the pair is unknown. Each must be finite and >= 0. */
typedef struct xo_pair_cost {
    double latency_us;  /* round trip of an 8-byte call (p50), microseconds */
    double bandwidth;   /* bytes per second at the peer's payload size; 0 with bytes > 0: the pair is unknown */
} xo_pair_cost_t;

/* One actor the new actor will talk to (a `near` hint), with what it expects to send per call. */
typedef struct xo_place_near {
    uint64_t bytes;     /* expected bytes per call; 0: only latency matters */
    bool device_buf;    /* the bytes are device buffers lent to the peer: the caller fills near_cost with the pair's
                         * device-buffer bandwidth (device IPC or staging, as the tune run measured it) */
    bool inbound;       /* the bytes flow from the peer to the new actor (the peer calls it, or lends it buffers): the
                         * caller fills near_cost from the pair (peer, candidate) instead of (candidate, peer) */
} xo_place_near_t;

/* What a policy sees of one pool. The caller (the main pool) fills one per pool, in config order, from its
 * allocation table and the pools' last reports. All pointers are borrowed (see the top of this file). */
typedef struct xo_pool_view {
    const char *address;          /* the pool's address, e.g. "127.0.0.1:9000/2"; never NULL */
    size_t process_index;         /* 0: the host's main pool; 1..: its sub pools */
    const char *const *labels;    /* n_labels label strings (NULL entries are skipped); NULL when n_labels is 0 */
    size_t n_labels;
    xo_pool_device_t device_kind; /* NONE: no device, mem_free and mem_total are ignored */
    int device_index;             /* which device of that kind, -1 for none */
    uint64_t mem_free;            /* free device memory in bytes (clamped to mem_total when that is non-zero) */
    uint64_t mem_total;           /* total device memory in bytes; 0: unknown */
    uint64_t n_actors;            /* actors living in the pool, plus those being created there */
    uint64_t n_queued;            /* requests it has received and not yet answered (waiting or running) */
    uint64_t n_busy;              /* its scheduler threads running work now */
    const xo_pair_cost_t *near_cost; /* req->n_near entries: what reaching each near peer from this pool costs (from
                                      * the tune profile); NULL: every pair unknown */
    const xo_idle_mark_t *idle_marks; /* the IdleLabel pairs the pool holds; NULL when n_idle_marks is 0 */
    size_t n_idle_marks;
} xo_pool_view_t;

/* Weights of the WEIGHTED policy; each must be finite and >= 0. All three 0 means XO_PLACE_WEIGHTS_DEFAULT.
 *
 * Score of a candidate pool i (candidates: the pools passing the label and memory filters):
 *   mem_i  = mem_free_i / mem_total_i            (0 when the pool has no device or mem_total_i is 0)
 *   load_i = (n_actors_i + n_queued_i + n_busy_i) / L  (L: the largest load among candidates; 0 when L is 0)
 *   link_i = cost_i / C                          (cost_i: the cost of reaching the near peers from pool i, below;
 *                                                 C: the largest cost_i among candidates; 0 when C is 0)
 *   score_i = mem * mem_i - load * load_i - link * link_i
 *   cost_i  = sum over near peers k of  c_ik = latency_us_ik + bytes_k / bandwidth_ik * 1e6   (microseconds)
 *             where a pair the profile does not know counts as the mean c_k of the candidates that know peer k,
 *             and a peer no candidate knows adds nothing; bandwidth_ik is the device-buffer bandwidth when near[k]
 *             says its bytes are device buffers (xo_place_near_t.device_buf; the caller fills near_cost so).
 * The highest score wins; ties go to the lowest index. Every term lies in [0, 1], so the weights are directly the
 * relative importance of free memory, idleness and nearness. A worked example is in policies/weighted.c. */
typedef struct xo_place_weights {
    double mem;
    double load;
    double link;
} xo_place_weights_t;

#define XO_PLACE_WEIGHTS_DEFAULT ((xo_place_weights_t){.mem = 1.0, .load = 1.0, .link = 1.0})

/* A placement request: the kind and its parameters. Zero-initialise it and set what the kind reads; a field the kind
 * does not read is ignored.
 *
 * The filters: `label` (when not NULL, only pools carrying that label are candidates) and `mem_bytes` (when not 0,
 * only pools with a device and at least that much free device memory are candidates) apply to RANDOM,
 * RANDOM_SUB_POOL, RANDOM_LABEL, IDLE_LABEL, ROUND_ROBIN, LEAST_LOADED, MOST_FREE_MEMORY and WEIGHTED. ADDRESS,
 * MAIN_POOL and PROCESS_INDEX name their pool and ignore both. */
typedef struct xo_place_request {
    xo_place_kind_t kind;
    const char *address;        /* ADDRESS: the pool's exact address */
    size_t process_index;       /* PROCESS_INDEX */
    const char *label;          /* the label filter; required by RANDOM_LABEL and IDLE_LABEL */
    const char *mark;           /* IDLE_LABEL: the mark; NULL equals "" */
    uint64_t mem_bytes;         /* the memory filter: device memory the actor needs */
    xo_place_weights_t weights; /* WEIGHTED */
    uint64_t seed;              /* RANDOM*: the random draw; the same seed over the same views gives the same pool.
                                 * The caller passes a fresh one per placement, e.g. from xo__place_seed_next(). */
    size_t cursor;              /* ROUND_ROBIN: where to start; the caller stores chosen + 1 for the next request */
    const xo_place_near_t *near; /* WEIGHTED: the peers the new actor will talk to (n_near of them; each view's
                                  * near_cost[k] is the cost of reaching peer k from that pool) */
    size_t n_near;
} xo_place_request_t;

/* A policy. `choose` is called by xo__place only, after it has checked its arguments: pools is not NULL, n > 0,
 * every view is well formed, req->kind is this policy's kind, chosen_p is not NULL. It returns XO_OK and sets
 * *chosen_p to an index < n, or returns an error with its text set (xo__error_set) and leaves *chosen_p alone.
 * It must be pure and thread-safe as described at the top of this file. */
typedef struct xo_policy_ops {
    const char *name;  /* as in XO_POLICY_MAP, e.g. "least_loaded" */
    const char *alias; /* Xoscar's class name, e.g. "IdleLabel"; NULL for our own policies */
    xo_place_kind_t kind;
    xo_status_t (*choose)(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req, size_t *chosen_p);
} xo_policy_ops_t;

/* Chooses a pool for req among pools[0..n-1] with the policy of req->kind. On XO_OK, *chosen_p is an index < n; on
 * error *chosen_p is unchanged and xo_last_error() says why. Pure, thread-safe, no allocation (see above).
 * Errors: XO_EINVAL: req or chosen_p NULL, pools NULL with n > 0, unknown kind, a malformed view (NULL address,
 *         NULL labels or idle_marks with a non-zero count, unknown device kind, a negative or non-finite pair
 *         cost), near NULL with n_near > 0,
 *         a parameter the kind requires is missing or bad, an ADDRESS not among the pools, a PROCESS_INDEX no pool has.
 *         XO_ENOSLOT: no pools at all (n == 0), or no pool passes the policy and its filters; the text names the
 *         filter that emptied the list, and for memory the largest free amount and where it is.
 *         XO_ENOIDLESLOT: IDLE_LABEL found no pool with the label that is idle for (label, mark). */
xo_status_t xo__place(const xo_pool_view_t *pools, size_t n, const xo_place_request_t *req, size_t *chosen_p);

/* The policy of a kind, or NULL for a value that is no kind. Static storage; thread-safe. */
const xo_policy_ops_t *xo__policy_get(xo_place_kind_t kind);

/* The policy with that name (e.g. "least_loaded", as the cluster file writes it) or Xoscar alias (e.g. "IdleLabel"),
 * compared exactly; NULL when there is none or name is NULL. Static storage; thread-safe. */
const xo_policy_ops_t *xo__policy_find(const char *name);

/* Advances a caller-kept random state (splitmix64) and returns the next seed for xo_place_request_t.seed. Any
 * starting value is fine, 0 included. Not thread-safe for one state; use one state per caller or hold its lock. */
uint64_t xo__place_seed_next(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif
