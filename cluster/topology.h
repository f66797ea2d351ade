/* CPU topology and binding: which cores and PUs (hardware threads) this host has, which NUMA node each PU is on,
 * CPU sets written as Linux cpu lists ("0-3,6,8-9"), and binding the calling thread to a set.
 *
 * Used for "pools as processes bound to cores" (issue 3): the main pool loads the topology once, checks the cpu
 * lists of the cluster file against it (a CPU that does not exist on the host is an error naming it), splits the
 * cores between its sub pools (xo__topology_partition), and each sub pool binds its whole process (xo__bind_self_to
 * from its main thread, before it starts any thread) so that every thread it starts later inherits the binding.
 *
 * CPU numbers are the kernel's (OS indices: what taskset, /proc/<pid>/status and sched_setaffinity use), never
 * hwloc's logical indices.
 *
 * Errors: every function returning xo_status_t sets the error text (xo_last_error()) where it decides the error;
 * the parsers and checkers also copy it into the caller's err buffer when err is not NULL, for callers such as the
 * cluster-file parser that prefix it with file:line.
 *
 * Threading: a loaded topology is immutable; every function that takes a const xo_topology_t * may run on any
 * number of threads at once. The cpuset helpers are pure. */
#ifndef XO_CLUSTER_TOPOLOGY_H
#define XO_CLUSTER_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- CPU sets ------------------------------------------------------------------------------------------------- */

/* Linux's largest CONFIG_NR_CPUS. A fixed bitmask keeps sets plain values (copy with =, no allocation, no free);
 * 1 KiB each. */
#define XO_CPUSET_MAX 8192

typedef struct xo_cpuset {
    uint64_t bits[XO_CPUSET_MAX / 64];
} xo_cpuset_t;

static inline void xo_cpuset_zero(xo_cpuset_t *s)
{
    for (size_t i = 0; i < XO_CPUSET_MAX / 64; i++) s->bits[i] = 0;
}

/* cpu must be in [0, XO_CPUSET_MAX); out-of-range values are ignored (add) or absent (has). */
static inline void xo_cpuset_add(xo_cpuset_t *s, int cpu)
{
    if (cpu >= 0 && cpu < XO_CPUSET_MAX) s->bits[cpu / 64] |= (uint64_t)1 << (cpu % 64);
}

static inline bool xo_cpuset_has(const xo_cpuset_t *s, int cpu)
{
    return cpu >= 0 && cpu < XO_CPUSET_MAX && (s->bits[cpu / 64] >> (cpu % 64)) & 1u;
}

/* The number of CPUs in s. */
size_t xo__cpuset_count(const xo_cpuset_t *s);

/* The smallest CPU of s greater than prev (prev = -1 for the first), or -1 when there is none:
 * for (int c = xo__cpuset_next(s, -1); c >= 0; c = xo__cpuset_next(s, c)) ... */
int xo__cpuset_next(const xo_cpuset_t *s, int prev);

bool xo__cpuset_equal(const xo_cpuset_t *a, const xo_cpuset_t *b);

/* True when every CPU of a is in b. */
bool xo__cpuset_is_subset(const xo_cpuset_t *a, const xo_cpuset_t *b);

/* True when a and b share a CPU. */
bool xo__cpuset_intersects(const xo_cpuset_t *a, const xo_cpuset_t *b);

/* dst |= src; dst &= src. */
void xo__cpuset_or(xo_cpuset_t *dst, const xo_cpuset_t *src);
void xo__cpuset_and(xo_cpuset_t *dst, const xo_cpuset_t *src);

/* Parses a Linux cpu list: comma-separated CPU numbers and inclusive ranges N-M, in any order, overlaps allowed
 * ("0-3,6,8-9"). Spaces around numbers and commas are allowed. Strides ("0-7:2") are not supported. On XO_OK
 * *set_p holds the union. XO_EINVAL for an empty list, a bad token, a reversed range or a CPU >= XO_CPUSET_MAX; the
 * text names the token and its 1-based column, e.g. `cpu list "0-3,x": bad token "x" at column 5 (expected a CPU
 * number or a range N-M)`. err (may be NULL) receives the same text, truncated to err_len. */
xo_status_t xo__cpuset_parse(const char *text, xo_cpuset_t *set_p, char *err, size_t err_len);

/* Writes s as the shortest cpu list ("0-3,6,8-9"; "" for an empty set) into buf, NUL-terminated and truncated to
 * len. Returns the length the full text needs, without the NUL (as snprintf does), so a return >= len means the
 * text was cut. buf may be NULL when len is 0. */
size_t xo__cpuset_format(const xo_cpuset_t *s, char *buf, size_t len);

/* ---- the host's topology -------------------------------------------------------------------------------------- */

/* One core: the PUs it holds (its hyperthreads) and its NUMA node. */
typedef struct xo_topo_core {
    xo_cpuset_t pus;
    int numa;                 /* OS index of the NUMA node of its first PU; -1 when unknown */
} xo_topo_core_t;

/* A host's topology, as usable by this process: hwloc drops the PUs that the process's cgroup does not allow, so a
 * CPU "exists" here when this process could run on it. Read-only after load; fields may be read directly. */
typedef struct xo_topology {
    size_t n_cores;
    xo_topo_core_t *cores;    /* n_cores, in hwloc's logical order: cores of one package and NUMA node are adjacent */
    xo_cpuset_t pus;          /* every PU */
    size_t n_pus;
    size_t n_numa;            /* NUMA nodes that hold at least one PU (1 on a non-NUMA host) */
    int *pu_numa;             /* indexed by PU number, for PUs 0..max PU; -1 for a PU of no (known) node */
    int max_pu;
    void *hw;                 /* the hwloc topology (hwloc_topology_t) kept for PCI queries; NULL when built by hand */
} xo_topology_t;

/* Loads this host's topology with hwloc (cores, PUs, NUMA nodes and PCI devices). On XO_OK the caller owns
 * *t_p and frees it with xo__topology_free. Takes a few milliseconds (it reads sysfs): load once per process.
 * XO_ESYS when hwloc fails (the text says which step), XO_ENOMEM. */
xo_status_t xo__topology_load(xo_topology_t **t_p);

/* Builds a topology from a description: n_cores cores, core i holding the PUs core_pus[i] on NUMA node
 * core_numa[i] (core_numa may be NULL: all on node 0). For tests and for hosts described by configuration; the
 * result has no PCI information. The caller owns *t_p (xo__topology_free). XO_EINVAL when a PU is in two cores or a
 * core has no PU. */
xo_status_t xo__topology_build(size_t n_cores, const xo_cpuset_t *core_pus, const int *core_numa, xo_topology_t **t_p);

void xo__topology_free(xo_topology_t *t);

/* The NUMA node of PU pu (OS index), or -1 when pu does not exist or its node is unknown. */
int xo__topology_pu_numa(const xo_topology_t *t, int pu);

/* XO_OK when set is not empty and every CPU of set exists in t. Otherwise XO_EINVAL with a text naming the first
 * missing CPU and the host's CPUs ("CPU 4096 does not exist on this host (its CPUs are 0-63)"); err (may be NULL)
 * receives it too. */
xo_status_t xo__topology_check_cpuset(const xo_topology_t *t, const xo_cpuset_t *set, char *err, size_t err_len);

/* The PUs near the PCI device with the bus id "0000:3b:00.0" (domain:bus:device.function, hex): those of the
 * closest non-I/O object above it, usually its package or NUMA node. For binding a GPU's pool near its GPU.
 * XO_EINVAL for a malformed id or no such device; XO_ENOTSUP for a topology built by hand. */
xo_status_t xo__topology_nearby_cpus_of_pci(const xo_topology_t *t, const char *bus_id, xo_cpuset_t *set_p);

/* Splits cores between n_pools pools: sets[i] gets whole cores (all their PUs).
 *   n_pools <= cores: each pool gets its own cores, none shared: contiguous runs of cores in logical order (so a
 *     pool's cores share a package and NUMA node where they can), the first (cores % n_pools) pools getting one
 *     more. n_pools == cores is one pool per core.
 *   n_pools > cores: each pool gets one core, dealt round-robin (pool i gets core i % cores), so pools share cores
 *     and no core holds more than one pool more than another.
 * within (may be NULL: all) restricts the split to the cores having a PU in within, and the sets to PUs of within.
 * sets has room for n_pools entries. XO_EINVAL when n_pools is 0 or no core is left. Pure: t is only read. */
xo_status_t xo__topology_partition(const xo_topology_t *t, const xo_cpuset_t *within, size_t n_pools,
                                  xo_cpuset_t *sets);

/* Splits the cores near each pool's device between the pools that share them: near[k] is the CPU set close to pool
 * k's device (a GPU's local_cpulist). Pools whose near sets are equal (GPUs on one NUMA node, or pools sharing a
 * GPU) split that set between them as xo__topology_partition does; pools with different sets never share a core
 * unless their sets overlap. sets has room for n_pools entries. XO_EINVAL (nothing written) when n_pools is 0 or a
 * near set is empty or holds no CPU of t: the caller then splits without regard to devices. Pure: t is only read. */
xo_status_t xo__topology_partition_near(const xo_topology_t *t, size_t n_pools, const xo_cpuset_t *near,
                                       xo_cpuset_t *sets);

/* ---- binding -------------------------------------------------------------------------------------------------- */

/* Binds the calling THREAD to set with sched_setaffinity (Linux affinity is per thread). Threads it creates
 * afterwards inherit the binding, so a sub pool binds its whole process by calling this from its main thread
 * before it starts any thread (schedulers, timers, channels). XO_EINVAL for an empty set; XO_ESYS when the kernel
 * refuses (e.g. no CPU of set is allowed by the process's cgroup), with the errno text. */
xo_status_t xo__bind_self_to(const xo_cpuset_t *set);

/* The calling thread's current affinity, into *set_p. XO_ESYS on failure. */
xo_status_t xo__bound_cpus(xo_cpuset_t *set_p);

#ifdef __cplusplus
}
#endif
#endif
