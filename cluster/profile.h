/* A tune profile: what `xoscar tune` measured between the pools of a cluster (latency and bandwidth of every
 * ordered pair, by the path the router took), read back by placement. The schema is docs/tune-profile.md.
 *
 * Errors: loading fills the caller's err (may be NULL) with the status, the 1-based line and column of the value at
 * fault and a text "file:line:column: path: what is wrong"; the same text is the thread's last error. Nothing is
 * returned on error. A loaded profile is immutable: any number of threads may read it at once. */
#ifndef XO_CLUSTER_PROFILE_H
#define XO_CLUSTER_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cluster/cluster_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schema version this build writes ("xoscar_profile" in the file). It reads this one and version 1 (no device
 * figures: a version 1 file refuses version 2's keys). */
#define XO_PROFILE_VERSION 2
#define XO_PROFILE_VERSION_MIN 1

/* The most bandwidth points one pair may carry (1 MiB .. 64 MiB by powers of two is 7). */
#define XO_PROFILE_MAX_SIZES 16

/* Bandwidth at one payload size, in bytes per second: the median of the repetitions and their range. */
typedef struct xo_profile_bw {
    uint64_t bytes;
    double median, min, max;
} xo_profile_bw_t;

/* One ordered pair: calls made in pool `from` to an actor in pool `to`. */
typedef struct xo_profile_pair {
    char *from, *to;         /* pool addresses as the cluster names them */
    char *path;              /* the channel the router took: "inproc", "shm", "unix", "tcp", "ucx" */
    double p50_us, p99_us;   /* round trip of an 8-byte call, microseconds */
    size_t n_bw;             /* bandwidth points, sizes ascending */
    xo_profile_bw_t bw[XO_PROFILE_MAX_SIZES];
    /* Device buffers of `from`'s device lent to an actor of `to` (version 2, both pools owning a device): the way
     * the runtime took ("inproc", "ipc", "staging", "nccl"), NULL when not measured, and the bandwidth of handing
     * one over (the call, including the receiver's import or staged copy). */
    char *dev_path;
    size_t n_dev_bw;
    xo_profile_bw_t dev_bw[XO_PROFILE_MAX_SIZES];
} xo_profile_pair_t;

typedef struct xo_profile_host {
    char *name, *address;
    unsigned port;
} xo_profile_host_t;

typedef struct xo_profile_pool {
    char *address, *host;
    char *device;            /* "" when it owns none */
    /* Version 2, pools with a device: device-to-device copy bandwidth (n_copy_bw 0: not measured) and the launch
     * cost: launch_via says what was timed ("launch_host"), with p50/p99 in microseconds; or launch_none says why
     * nothing was (both NULL: not measured). */
    size_t n_copy_bw;
    xo_profile_bw_t copy_bw[XO_PROFILE_MAX_SIZES];
    char *launch_via, *launch_none;
    double launch_p50_us, launch_p99_us;
} xo_profile_pool_t;

typedef struct xo_profile {
    int version;
    char *cluster;           /* the cluster file's `name` */
    char *measured_at;       /* UTC, ISO 8601, as written */
    int64_t measured_unix;   /* the same in seconds since the epoch */
    char *commit;            /* the build that measured it ("unknown" when it was not built from git) */
    char *tool;              /* the command that measured it */
    size_t n_hosts, n_pools, n_pairs;
    xo_profile_host_t *hosts;
    xo_profile_pool_t *pools;
    xo_profile_pair_t *pairs;
} xo_profile_t;

/* Reads and checks a profile file. *p_out is the caller's (xo_profile_free). */
xo_status_t xo__profile_load(const char *path, xo_profile_t **p_out, xo_cluster_error_t *err);

/* The same from text of len bytes; name is used in messages. */
xo_status_t xo__profile_load_string(const char *text, size_t len, const char *name, xo_profile_t **p_out,
                                   xo_cluster_error_t *err);

void xo__profile_free(xo_profile_t *p);

/* Writes p as JSON in the documented layout (what load reads back). XO_ESYS when the stream fails. */
xo_status_t xo__profile_write(const xo_profile_t *p, FILE *out);

/* The pair (from, to), or NULL. */
const xo_profile_pair_t *xo__profile_find_pair(const xo_profile_t *p, const char *from, const char *to);

/* The bandwidth of a pair for a payload of `bytes`: the point at the nearest measured size (geometrically), in
 * bytes per second; 0 when the pair has no bandwidth point. */
double xo__profile_pair_bandwidth(const xo_profile_pair_t *pair, uint64_t bytes);

/* The same for device buffers lent over the pair (dev_bw); 0 when the pair has none. */
double xo__profile_pair_dev_bandwidth(const xo_profile_pair_t *pair, uint64_t bytes);

/* Checks p against the cluster c: the pools p measured that c does not have, and the pools of c that p lacks. Writes
 * one line per difference to `report` (may be NULL) and returns how many there are; 0 means p covers c exactly. A
 * mismatch is never an error: placement uses the pairs whose both pools are in c and treats the rest as unknown.
 * pools_of_c lists c's pool addresses (n of them). */
size_t xo__profile_compare(const xo_profile_t *p, const char *const *pools_of_c, size_t n, const char *cluster_name,
                           FILE *report);

/* Fills out[i * n_peers + k] with the cost of reaching peer pool peers[k] from candidate pool cands[i], from the
 * pair (cands[i], peers[k]) of p (when near[k].inbound, the bytes flow the other way: the pair (peers[k], cands[i])): its p50 latency and its bandwidth at near[k].bytes, the host-payload bandwidth or,
 * when near[k].device_buf, the device-buffer bandwidth (a pair without device figures then has bandwidth 0:
 * unknown for bytes > 0). A pair p lacks (or p NULL) is {0, 0}, unknown. out is the caller's array of
 * n_cands * n_peers. */
void xo__profile_fill_costs(const xo_profile_t *p, const char *const *cands, size_t n_cands,
                            const char *const *peers, const xo_place_near_t *near, size_t n_peers,
                            xo_pair_cost_t *out);

#ifdef __cplusplus
}
#endif
#endif
