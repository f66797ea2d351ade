/* Collectives among a group of actors: allreduce, reduce-scatter, broadcast, allgather, reduce (to a root), gather,
 * scatter, all-to-all and barrier.
 *
 * A group is a set of `size` members, each an actor method calling xo_coll_init with the same name and size and its
 * own rank (0..size-1), usually one actor per pool (per GPU). The members meet at a rendezvous actor that the first
 * of them creates at cfg->rendezvous (a pool every member reaches: the host's main pool, typically), then talk
 * directly. Every member must call the same collectives on a group in the same order (as in MPI and NCCL), with
 * the same count, type, reduce operation and root; a member's calls on one group are one at a time. On the host
 * backend every message carries its operation's description, so a member that receives from one that called
 * something else fails with XO_EPROTO naming both calls ("rank 2 called reduce(int64, max, root 0) where rank 0
 * called reduce(int64, sum, root 0)"); a member that receives nothing from it times out (NCCL: a timeout).
 *
 * Buffers: when the member's pool owns a device (include/xoscar/device_buf.h), buffers are device memory of that
 * device (xo_device_alloc, or a lent buffer); when it owns none, they are plain host memory. send and recv may be
 * the same buffer where the operation says so.
 *
 * Backends, chosen once at init by every member alike:
 *   nccl  NCCL on the members' CUDA devices (builds that found NCCL; every member's pool must own a cuda device).
 *         The communicator's unique id travels through the rendezvous. Its work runs on a stream of the pool's
 *         device; the call returns when that stream has finished it.
 *   host  the runtime's own implementation over actor messages (any transport: in-process, shared memory, TCP,
 *         UCX): ring allreduce (reduce-scatter then allgather, so each member sends 2(size-1)/size of the buffer),
 *         binomial-tree broadcast, ring allgather; reduce by a binomial tree (buffers up to 64 KiB) or by the ring's
 *         reduce-scatter followed by a gather of the reduced parts at root; gather and scatter straight between root
 *         and each member; all-to-all by pairwise exchange (each member sends block i to member i at once). Device
 *         memory is staged through host memory. Messages are at most 192 KiB each, so buffers of any size go
 *         through. Members on one host whose pools all own host devices run every operation but barrier, above
 *         64 KiB in all, by reading and writing each other's buffers through device IPC instead of messages.
 *   "auto" (the default) picks nccl when every member can use it, else host.
 *
 * Waiting: every call here must run inside an actor method of the pool the group was made in; it suspends only
 * that method (other actors of the pool keep running, and the pool receives the peers' data meanwhile). A member
 * that does not answer within cfg->timeout_ms fails the operation with XO_ETIMEDOUT naming the rank; a member whose
 * pool died fails it with that error. After a failed operation the group is broken: later operations return the
 * same status at once; destroy it and make a new one.
 *
 * Ownership: xo_coll_init returns a group the caller owns and frees with xo_coll_destroy (in a method of the same
 * pool, before the pool stops). Buffers stay the caller's. */
#ifndef XOSCAR_COLLECTIVE_H
#define XOSCAR_COLLECTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xo_coll xo_coll_t;

typedef enum xo_dtype {
    XO_DTYPE_INT8 = 0,
    XO_DTYPE_UINT8,
    XO_DTYPE_INT32,
    XO_DTYPE_UINT32,
    XO_DTYPE_INT64,
    XO_DTYPE_UINT64,
    XO_DTYPE_FLOAT32,
    XO_DTYPE_FLOAT64,
} xo_dtype_t;

typedef enum xo_reduce_op {
    XO_REDUCE_SUM = 0,
    XO_REDUCE_PROD,
    XO_REDUCE_MIN,
    XO_REDUCE_MAX,
} xo_reduce_op_t;

typedef struct xo_coll_config {
    const char *name;       /* the group's name: the same on every member, unique among the cluster's live groups */
    int rank;               /* this member, 0..size-1 */
    int size;               /* the number of members, >= 1 */
    const char *rendezvous; /* address of the pool that hosts the group's rendezvous actor (every member reaches it) */
    const char *backend;    /* NULL or "auto", "host", "nccl" (the same on every member) */
    int64_t timeout_ms;     /* how long a member waits for its peers, per operation; 0: 60000 */
} xo_coll_config_t;

/* Joins the group: waits (up to cfg->timeout_ms) until all size members have joined, then sets up the backend
 * (nccl: the communicator). On XO_OK the caller owns *group_p. Errors: XO_EINVAL (bad config, outside an actor
 * method, a rank taken twice, members that disagree on size: the text says which), XO_ENOTSUP (backend "nccl" where
 * this build or this pool's device cannot use it), XO_ETIMEDOUT (members missing: the text names how many joined),
 * XO_EDEVICE (NCCL failed, with its text), and the errors of reaching the rendezvous. */
XO_API xo_status_t xo_coll_init(const xo_coll_config_t *cfg, xo_coll_t **group_p);

/* Leaves the group and frees it. Peers are not waited for. NULL is a no-op. */
XO_API void xo_coll_destroy(xo_coll_t *group);

/* The backend chosen at init ("host" or "nccl", static storage), and the group's rank and size. */
XO_API const char *xo_coll_backend(const xo_coll_t *group);
XO_API int xo_coll_rank(const xo_coll_t *group);
XO_API int xo_coll_size(const xo_coll_t *group);

/* The algorithm the group's last operation used (static storage): "direct" (small allreduce and reduce-scatter:
 * every member's buffer to every other; gather and scatter: straight between root and each member), "ring"
 * (allreduce, allgather, reduce-scatter, large reduce), "tree" (broadcast, small reduce), "pairwise" (all-to-all
 * over messages), "shm" (large operations on one host, host devices: members read each other's buffers through
 * device IPC; off with XO_COLL_SHM=0), "nccl", or "" before the first. For tuning and tests. */
XO_API const char *xo_coll_last_algorithm(const xo_coll_t *group);

/* The size in bytes of one element of dt, or 0 for an unknown type. */
XO_API size_t xo_dtype_size(xo_dtype_t dt);

/* recv[i] = op over every member's send[i], for i < count, on every member. send == recv is allowed (in place). */
XO_API xo_status_t xo_coll_allreduce(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                     xo_reduce_op_t op);

/* Every member's buf (count elements) becomes root's buf. */
XO_API xo_status_t xo_coll_broadcast(xo_coll_t *group, void *buf, size_t count, xo_dtype_t dt, int root);

/* recv (size * count elements) becomes every member's send (count elements), in rank order, on every member. */
XO_API xo_status_t xo_coll_allgather(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt);

/* recv (count elements) of member r becomes block r of the reduction over every member's send (size * count
 * elements, block i = elements [i * count, (i + 1) * count)). send and recv must not overlap. */
XO_API xo_status_t xo_coll_reduce_scatter(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                          xo_reduce_op_t op);

/* Operations with a root: every member passes the same root (0..size-1); another value fails at once with XO_EINVAL
 * naming it, on that member only (the others, which started the operation, time out). Buffers a member does not use
 * may be NULL (recv of reduce and gather off root, send of scatter off root). Members that pass different counts or
 * types fail with XO_EPROTO on the members that receive the wrong length (the text says "same count"); a member that
 * only sends may not notice. */

/* recv[i] on root = op over every member's send[i], for i < count; recv is not touched elsewhere. send == recv on
 * root is allowed (in place). Floating-point sums and products may be combined in another order than rank order (the
 * tree), so their last bits may differ from a sum in rank order. */
XO_API xo_status_t xo_coll_reduce(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op, int root);

/* root's recv (size * count elements) = every member's send (count elements), in rank order. In place: root's send
 * may be recv + root * count. */
XO_API xo_status_t xo_coll_gather(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  int root);

/* recv (count elements) of member r = block r of root's send (size * count elements, block i = elements
 * [i * count, (i + 1) * count)). In place: root's recv may be send + root * count. */
XO_API xo_status_t xo_coll_scatter(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                   int root);

/* Block i of member r's recv = block r of member i's send (send and recv are size * count elements each, blocks of
 * count). send and recv must not overlap. */
XO_API xo_status_t xo_coll_alltoall(xo_coll_t *group, const void *send, void *recv, size_t count, xo_dtype_t dt);

/* Returns when every member has called it (over the runtime's messages, whatever the backend). */
XO_API xo_status_t xo_coll_barrier(xo_coll_t *group);

#ifdef __cplusplus
}
#endif
#endif
