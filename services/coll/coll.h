/* Collectives, private: the group object, the backends' operations, the rendezvous and the per-member mailbox.
 *
 *   collective.c      the public API: config checks, joining (rendezvous), backend choice, dispatch, destroy
 *   coll_rendezvous.c the rendezvous actor: members exchange one blob each per phase and get everyone's
 *   coll_mailbox.c    the endpoint actor of each member ("put" messages) and the matching receive side
 *   coll_host.c       the host backend's algorithms over the mailbox
 *   coll_nccl.c       the NCCL backend (builds with NCCL) */
#ifndef XO_SERVICES_COLL_COLL_H
#define XO_SERVICES_COLL_COLL_H

#include <pthread.h>
#include <stdatomic.h>

#include "xoscar/collective.h"
#include "xoscar/gpu.h"
#include "xoscar/xoscar.h"

/* Largest payload of one put message: frames stay far below the transports' maximum whatever the buffer size, and
 * under the shm channel's out-of-band threshold (XO_SHM_OOB_MIN, 256 KiB), so that pieces travel in its ring instead
 * of a fresh memfd each: 192 KiB pieces moved a 16 MiB allreduce over messages 2.0x faster than 4 MiB ones (A/B,
 * 2 and 3 member processes, bench coll busbw_msg). */
#define XO_COLL_PIECE ((size_t)192 << 10)

/* Allreduces of at most this many bytes times the group size use the direct algorithm (coll_host.c). */
#define XO_COLL_DIRECT_MAX ((size_t)64 << 10)

/* Reduces of at most this many bytes use the binomial tree, larger ones the ring's reduce-scatter and a gather at
 * root (coll_host.c). The tree moves the whole buffer ceil(log2 size) times into root, the ring 2(size-1)/size of it,
 * in 2(size-1) latencies instead of ceil(log2 size): the same bound as the direct allreduce, not measured apart. */
#define XO_COLL_TREE_MAX ((size_t)64 << 10)

/* Puts of at most this many bytes are told (no reply); larger ones are calls whose replies the sender waits for. */
#define XO_COLL_TELL_MAX ((size_t)64 << 10)

/* What a member tells the others at join (phase 0 of the rendezvous). */
#define XO_COLL_CAN_NCCL 0x1u
#define XO_COLL_CAN_SHM 0x2u  /* the pool owns a host device and device IPC is allowed (coll_shm.c) */

typedef struct xo_coll_slot xo_coll_slot_t;

typedef struct xo_coll_backend {
    const char *name;
    /* Sets up the backend after the members have met (g->peers filled). May use phases >= 1 of the rendezvous. */
    xo_status_t (*init)(xo_coll_t *g);
    void (*fini)(xo_coll_t *g);
    xo_status_t (*allreduce)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                             xo_reduce_op_t op);
    xo_status_t (*broadcast)(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root);
    xo_status_t (*allgather)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt);
    xo_status_t (*reduce_scatter)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op);
    /* The rooted operations and all-to-all: arguments checked by collective.c (root in range, the buffers the
     * member uses not NULL, count > 0). */
    xo_status_t (*reduce)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, xo_reduce_op_t op,
                          int root);
    xo_status_t (*gather)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root);
    xo_status_t (*scatter)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root);
    xo_status_t (*alltoall)(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt);
} xo_coll_backend_t;

struct xo_coll {
    char *name;
    int rank, size;
    int64_t timeout_ms;
    xo_pool_t *pool;            /* the pool of the method that made the group */
    xo_device_t *dev;           /* the pool's device, or NULL: buffers are host memory */
    xo_ref_t *rendezvous;       /* owned */
    xo_ref_t *endpoint;         /* this member's endpoint actor, owned */
    xo_ref_t **peers;           /* size refs to the members' endpoints (peers[rank] too), owned */
    int next_phase;             /* the rendezvous phase this member uses next */
    uint64_t seq;               /* operations started on this group: the same count on every member */
    uint64_t sig;               /* the running operation's signature (kind, type, reduce op, root): every message of
                                 * it carries this, so members that call different things fail saying so. seq and
                                 * sig are written under lock (the endpoint reads them) */
    xo_status_t op_error;       /* under lock: a peer's message showed it runs another operation as this seq */
    char op_text[400];
    xo_status_t broken;         /* the first failure, XO_OK while healthy */
    char *broken_text;
    _Atomic bool busy;
    bool shm;                   /* every member owns a host device on this host: coll_shm.c's path may be used */
    const char *last_algorithm; /* static storage, see xo_coll_last_algorithm */
    const xo_coll_backend_t *backend;
    void *backend_state;

    /* Mailbox (coll_mailbox.c): messages from peers, matched to receives by (seq, tag, from). */
    pthread_mutex_t lock;
    xo_coll_slot_t *slots;
    _Atomic int refs;           /* the group itself plus puts running on it */
    xo_coll_t *registry_next;
};

/* ---- rendezvous (coll_rendezvous.c) ---- */

extern const xo_actor_class_t xo_coll_rendezvous_class;

/* Gives blob (len bytes, copied) for the group's next phase and waits until every member has given theirs. On
 * XO_OK *all_p is a result holding an array of size bins, by rank (the caller frees it with xo_result_free). */
xo_status_t xo__coll_exchange(xo_coll_t *g, const void *blob, size_t len, xo_result_t **all_p);

/* The bin of member r in an exchange result (points into it). XO_EPROTO when the result is not size bins. */
xo_status_t xo__coll_exchange_get(const xo_result_t *all, int size, int r, xo_bytes_t *blob_p);

/* "reduce(float32, sum, root 1)": an operation signature (g->sig) in words, into buf (len bytes, NUL-terminated). */
void xo__coll_sig_text(uint64_t sig, char *buf, size_t len);

/* ---- mailbox (coll_mailbox.c) ---- */

extern const xo_actor_class_t xo_coll_endpoint_class;

/* The endpoint actor's uid for a member (malloc'd, the caller frees it). */
char *xo__coll_endpoint_uid(const char *name, int rank);

/* Makes g findable by its endpoint actor (and creates that actor in g->pool); undone by xo__coll_mailbox_close,
 * which also waits for puts still running on g and frees what arrived but was never received. */
xo_status_t xo__coll_mailbox_open(xo_coll_t *g);
void xo__coll_mailbox_close(xo_coll_t *g);

/* A send in progress: the futures of its put messages. */
typedef struct xo_coll_sends {
    xo_future_t **futures;
    int *to;
    size_t n, cap;
} xo_coll_sends_t;

/* Sends len bytes at src (host memory, read before this returns) to member `to` as (g->seq, tag), in pieces; the
 * replies are collected in s. */
xo_status_t xo__coll_send(xo_coll_t *g, xo_coll_sends_t *s, int to, uint32_t tag, const void *src, size_t len);

/* Waits for every put in s to be answered and empties s. The first failure wins and names the member. */
xo_status_t xo__coll_sends_wait(xo_coll_t *g, xo_coll_sends_t *s);
void xo__coll_sends_free(xo_coll_sends_t *s);

/* Every member to every member, with tag: sends len bytes at src + to * stride to each other member `to` (stride 0:
 * the same bytes to all) and receives len bytes from each other member `from` into dst + from * len; dst + rank * len
 * gets this member's own block. The puts' replies are collected in s (not waited for). */
xo_status_t xo__coll_all_to_all(xo_coll_t *g, xo_coll_sends_t *s, uint32_t tag, const void *src, size_t stride,
                               size_t len, void *dst);

/* A round of one-byte messages with tag: returns when every other member has sent its own (replies in s). */
xo_status_t xo__coll_barrier_round(xo_coll_t *g, xo_coll_sends_t *s, uint32_t tag);

/* Receives exactly len bytes from member `from` as (g->seq, tag) into dst (host memory), waiting up to the group's
 * timeout. XO_EPROTO when the peer sent another length (members that disagree on count). */
xo_status_t xo__coll_recv(xo_coll_t *g, int from, uint32_t tag, void *dst, size_t len);

/* ---- the host backend's pieces ---- */

/* dst[i] = op(dst[i], src[i]) for n elements of dt (coll_host.c). */
void xo__coll_combine(void *dst, const void *src, size_t n, xo_dtype_t dt, xo_reduce_op_t op);

/* Part i of count elements split into size parts, [*start, *start + *n): sizes differ by at most one (coll_host.c). */
void xo__coll_part(size_t count, int size, int i, size_t *start, size_t *n);

/* The same-host path (coll_shm.c), for groups with g->shm. *done_p false with XO_OK: a member could not share its
 * buffers, and every member must run the operation over messages instead. */
xo_status_t xo__coll_shm_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op, bool *done_p);
xo_status_t xo__coll_shm_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root, bool *done_p);
xo_status_t xo__coll_shm_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                       xo_reduce_op_t op, bool *done_p);
xo_status_t xo__coll_shm_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  bool *done_p);
xo_status_t xo__coll_shm_reduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                               xo_reduce_op_t op, int root, bool *done_p);
xo_status_t xo__coll_shm_gather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root,
                               bool *done_p);
xo_status_t xo__coll_shm_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root,
                                bool *done_p);
xo_status_t xo__coll_shm_alltoall(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                 bool *done_p);

/* ---- failures ---- */

/* Records st with a text (printf) as the group's failure, and returns st. */
xo_status_t xo__coll_fail(xo_coll_t *g, xo_status_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- backends ---- */

extern const xo_coll_backend_t xo_coll_host_backend;
#ifdef XO_HAVE_NCCL
extern const xo_coll_backend_t xo_coll_nccl_backend;
#endif

/* Registers the runtime's collective actor classes, so that a rendezvous can be created in any pool. */
void xo__coll_register_classes(void);

#endif
