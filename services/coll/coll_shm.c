/* The host backend's same-host path: members whose pools own host devices on one host read each other's buffers
 * through the device's IPC (the exporter's memfd, mapped by the importer) instead of sending the bytes in messages.
 *
 * Why: a message carries a buffer through three or four copies (into the message, through the transport, out of
 * it, into the receive); reading a peer's mapped buffer is one. Only control messages remain: every member's
 * handles, "my part is reduced", "I have finished reading yours" (each a few hundred bytes).
 *
 *   allreduce  every member exports its send and recv buffers and sends the handles to all. Member r reduces part r
 *              of every member's send buffer (in rank order, so every member gets the same bits) into a scratch
 *              buffer, writes it into its own recv, says so, and then copies the other parts from their owners'
 *              recv buffers. A last round tells everyone that nobody reads their buffers any more: only then may a
 *              member return (its caller may free or rewrite the buffers afterwards).
 *   allgather  every member copies every other member's send buffer into its own recv, then the last round.
 *   reduce_scatter  member r reduces block r of every member's send into its recv, then the last round.
 *   broadcast  every member shares its buffer (only the root's is read), the others copy the root's, then the last
 *              round (the root must not return while they read).
 *   reduce     every member shares its send, root its recv too. Member r reduces part r of every send (as in
 *              allreduce) and, after a round that says every send has been read (root's send may be its recv),
 *              writes it into root's recv; then the last round. Root thus does 1/size of the work, not all of it.
 *   gather     root shares its recv; every member writes its send into its block there, then the last round.
 *   scatter    root shares its send; every member copies its block from there, then the last round.
 *   alltoall   every member shares its send and copies block rank of each into its recv, then the last round.
 *
 * A member whose buffer cannot be exported (e.g. one it imported itself) says so in its handle message; then every
 * member, having seen all handle messages, runs the operation over messages instead (coll_host.c), so the group
 * stays in step. The handle message also carries the member's count in bytes: members that disagree would read or
 * write past each other's buffers, so every member checks all of them and fails alike. The host device's memory is
 * host memory: that is what lets this file read it with memcpy. */
#include <stdlib.h>
#include <string.h>

#include "services/coll/coll.h"
#include "runtime/core.h"

enum { TAG_HANDLES = 0x10000, TAG_DONE, TAG_FIN };

/* The handle message: flags, the member's count in bytes (8, little-endian), its send handle, its recv handle. */
enum { H_SEND = 0x1, H_RECV = 0x2, H_BAD = 0x4 /* a buffer it has could not be exported */ };
#define HANDLE_MSG (1 + 8 + 2 * XO_DEVICE_IPC_HANDLE_SIZE)

typedef struct peers_map {
    void **send, **recv; /* by rank: the mapped buffers (this member's own pointers at its rank), NULL if not shared */
    bool *imported_send, *imported_recv;
} peers_map_t;

static void unmap(xo_coll_t *g, peers_map_t *m)
{
    for (int i = 0; m->send && i < g->size; i++) {
        if (m->imported_send[i]) xo_device_ipc_close(g->dev, m->send[i]);
        if (m->imported_recv[i]) xo_device_ipc_close(g->dev, m->recv[i]);
    }
    free(m->send), free(m->recv), free(m->imported_send), free(m->imported_recv);
    *m = (peers_map_t){0};
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The handle round: exports send and recv (either may be NULL: nothing to share), shares the handles and the count
 * (bytes, the same on every member), maps every buffer a peer shared. *usable_p is false when some member could not
 * export (then nothing is mapped and the caller falls back to messages). Members that disagree on bytes fail. */
static xo_status_t share(xo_coll_t *g, xo_coll_sends_t *s, const void *send, void *recv, size_t bytes,
                         peers_map_t *m, bool *usable_p)
{
    unsigned char msg[HANDLE_MSG] = {0};
    xo_device_ipc_handle_t h;
    const void *mine[2] = {send, recv};
    for (int k = 0; k < 2; k++) {
        if (!mine[k]) continue;
        if (xo_device_ipc_export(g->dev, mine[k], &h) == XO_OK) {
            msg[0] |= k ? H_RECV : H_SEND;
            memcpy(msg + 9 + (size_t)k * XO_DEVICE_IPC_HANDLE_SIZE, h.bytes, sizeof h.bytes);
        } else {
            msg[0] |= H_BAD;
        }
    }
    put_u64(msg + 1, bytes);
    xo__error_clear();
    unsigned char *all = malloc((size_t)HANDLE_MSG * (size_t)g->size);
    if (!all) return xo__coll_fail(g, XO_ENOMEM, "out of memory");
    xo_status_t st = xo__coll_all_to_all(g, s, TAG_HANDLES, msg, 0, HANDLE_MSG, all);
    *usable_p = true;
    for (int i = 0; st == XO_OK && i < g->size; i++) {
        const unsigned char *p = all + (size_t)HANDLE_MSG * (size_t)i;
        uint64_t theirs = get_u64(p + 1);
        if (theirs != bytes)
            st = xo__coll_fail(g, XO_EPROTO,
                              "collective %s: rank %d passed %llu bytes where rank %d passed %zu (do all members pass "
                              "the same count and type?)",
                              g->name, i, (unsigned long long)theirs, g->rank, bytes);
        *usable_p &= !(p[0] & H_BAD);
    }
    size_t n = (size_t)g->size;
    if (st == XO_OK && *usable_p) {
        m->send = calloc(n, sizeof *m->send), m->recv = calloc(n, sizeof *m->recv);
        m->imported_send = calloc(n, sizeof(bool)), m->imported_recv = calloc(n, sizeof(bool));
        if (!m->send || !m->recv || !m->imported_send || !m->imported_recv)
            st = xo__coll_fail(g, XO_ENOMEM, "out of memory");
    }
    for (int i = 0; st == XO_OK && *usable_p && i < g->size; i++) {
        if (i == g->rank) {
            m->send[i] = (void *)send;
            m->recv[i] = recv;
            continue;
        }
        const unsigned char *p = all + (size_t)HANDLE_MSG * (size_t)i;
        void **slot[2] = {&m->send[i], &m->recv[i]};
        bool *imported[2] = {&m->imported_send[i], &m->imported_recv[i]};
        for (int k = 0; st == XO_OK && k < 2; k++) {
            if (!(p[0] & (k ? H_RECV : H_SEND))) continue;
            memcpy(h.bytes, p + 9 + (size_t)k * XO_DEVICE_IPC_HANDLE_SIZE, sizeof h.bytes);
            st = xo_device_ipc_import(g->dev, &h, slot[k]);
            *imported[k] = st == XO_OK;
            if (st != XO_OK)
                st = xo__coll_fail(g, st, "collective %s: mapping rank %d's buffer: %s", g->name, i, xo_last_error());
        }
    }
    free(all);
    return st;
}

/* The buffer root shared (m->send or m->recv), or NULL with the group failed: members that disagree on root may
 * find none. */
static void *root_buffer(xo_coll_t *g, void **bufs, int root)
{
    if (!bufs[root])
        xo__coll_fail(g, XO_EPROTO, "collective %s: rank %d shared no buffer as root (do all members pass the same "
                                   "root?)", g->name, root);
    return bufs[root];
}

/* The end of every operation here: wait for the control messages' replies, release them and the peers' mappings. */
static xo_status_t finish(xo_coll_t *g, xo_coll_sends_t *s, peers_map_t *m, xo_status_t st)
{
    if (st == XO_OK) st = xo__coll_sends_wait(g, s);
    xo__coll_sends_free(s);
    unmap(g, m);
    return st;
}

xo_status_t xo__coll_shm_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op, bool *done_p)
{
    size_t es = xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, recv, count * es, &m, &usable);
    if (st == XO_OK && usable) {
        size_t p0, pn;
        xo__coll_part(count, g->size, g->rank, &p0, &pn);
        unsigned char *tmp = malloc(pn > 0 ? pn * es : 1);
        if (!tmp) st = xo__coll_fail(g, XO_ENOMEM, "out of memory");
        if (st == XO_OK) { /* part rank, reduced in rank order; scratch first, since send may be recv */
            memcpy(tmp, (const unsigned char *)m.send[0] + p0 * es, pn * es);
            for (int i = 1; i < g->size; i++)
                xo__coll_combine(tmp, (const unsigned char *)m.send[i] + p0 * es, pn, dt, op);
        }
        /* Nobody may write its recv (which may be its send) before everyone has read the send buffers. */
        if (st == XO_OK) st = xo__coll_barrier_round(g, &s, TAG_DONE);
        if (st == XO_OK) memcpy((unsigned char *)recv + p0 * es, tmp, pn * es);
        free(tmp);
        if (st == XO_OK) st = xo__coll_barrier_round(g, &s, TAG_DONE + 0x100); /* every part is in its owner's recv */
        for (int i = 0; st == XO_OK && i < g->size; i++) {
            if (i == g->rank) continue;
            size_t q0, qn;
            xo__coll_part(count, g->size, i, &q0, &qn);
            memcpy((unsigned char *)recv + q0 * es, (const unsigned char *)m.recv[i] + q0 * es, qn * es);
        }
        if (st == XO_OK) st = xo__coll_barrier_round(g, &s, TAG_FIN); /* nobody reads anyone's buffers any more */
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  bool *done_p)
{
    size_t block = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, NULL, block, &m, &usable);
    if (st == XO_OK && usable) {
        for (int i = 0; i < g->size; i++)
            memmove((unsigned char *)recv + block * (size_t)i, m.send[i], block);
        st = xo__coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root, bool *done_p)
{
    size_t bytes = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    /* Every member shares (not only the root), so that all of them see whether every member could: the fallback
     * must be taken by all or none. */
    xo_status_t st = share(g, &s, buf, NULL, bytes, &m, &usable);
    if (st == XO_OK && usable) {
        if (g->rank != root) memcpy(buf, m.send[root], bytes);
        st = xo__coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                       xo_reduce_op_t op, bool *done_p)
{
    size_t block = count * xo_dtype_size(dt), off = block * (size_t)g->rank;
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, NULL, block, &m, &usable);
    if (st == XO_OK && usable) { /* block rank of every member's send, in rank order, straight into recv */
        memcpy(recv, (const unsigned char *)m.send[0] + off, block);
        for (int i = 1; i < g->size; i++) xo__coll_combine(recv, (const unsigned char *)m.send[i] + off, count, dt, op);
        st = xo__coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_reduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                               xo_reduce_op_t op, int root, bool *done_p)
{
    size_t es = xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, g->rank == root ? recv : NULL, count * es, &m, &usable);
    if (st == XO_OK && usable) {
        unsigned char *dst = root_buffer(g, m.recv, root);
        size_t p0, pn;
        xo__coll_part(count, g->size, g->rank, &p0, &pn);
        unsigned char *tmp = malloc(pn > 0 ? pn * es : 1);
        if (!dst) st = g->broken;
        else if (!tmp) st = xo__coll_fail(g, XO_ENOMEM, "out of memory");
        if (st == XO_OK) { /* part rank in rank order, into scratch: root's send may be its recv */
            memcpy(tmp, (const unsigned char *)m.send[0] + p0 * es, pn * es);
            for (int i = 1; i < g->size; i++)
                xo__coll_combine(tmp, (const unsigned char *)m.send[i] + p0 * es, pn, dt, op);
        }
        if (st == XO_OK) st = xo__coll_barrier_round(g, &s, TAG_DONE); /* every send has been read */
        if (st == XO_OK) memcpy(dst + p0 * es, tmp, pn * es);
        free(tmp);
        if (st == XO_OK) st = xo__coll_barrier_round(g, &s, TAG_FIN); /* root's recv is complete */
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_gather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root,
                               bool *done_p)
{
    size_t block = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, NULL, g->rank == root ? recv : NULL, block, &m, &usable);
    if (st == XO_OK && usable) { /* every member writes its own block, at once; root's in place is a no-op move */
        unsigned char *dst = root_buffer(g, m.recv, root);
        if (dst) memmove(dst + block * (size_t)g->rank, send, block);
        st = dst ? xo__coll_barrier_round(g, &s, TAG_FIN) : g->broken;
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt, int root,
                                bool *done_p)
{
    size_t block = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, g->rank == root ? send : NULL, NULL, block, &m, &usable);
    if (st == XO_OK && usable) {
        const unsigned char *src = root_buffer(g, m.send, root);
        if (src) memmove(recv, src + block * (size_t)g->rank, block);
        st = src ? xo__coll_barrier_round(g, &s, TAG_FIN) : g->broken;
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo__coll_shm_alltoall(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                 bool *done_p)
{
    size_t block = count * xo_dtype_size(dt), off = block * (size_t)g->rank;
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, NULL, block, &m, &usable);
    if (st == XO_OK && usable) {
        for (int i = 0; i < g->size; i++)
            memcpy((unsigned char *)recv + block * (size_t)i, (const unsigned char *)m.send[i] + off, block);
        st = xo__coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}
