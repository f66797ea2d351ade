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
 *
 * A member whose buffer cannot be exported (e.g. one it imported itself) says so in its handle message; then every
 * member, having seen all handle messages, runs the operation over messages instead (coll_host.c), so the group
 * stays in step. The host device's memory is host memory: that is what lets this file read it with memcpy. */
#include <stdlib.h>
#include <string.h>

#include "runtime/coll.h"
#include "runtime/core.h"

enum { TAG_HANDLES = 0x10000, TAG_DONE, TAG_FIN };

#define HANDLE_MSG (1 + 2 * XO_DEVICE_IPC_HANDLE_SIZE) /* ok flag, send handle, recv handle */

typedef struct peers_map {
    void **send, **recv; /* by rank: the mapped buffers (this member's own pointers at its rank) */
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

/* The handle round: exports send/recv (recv may be NULL), shares the handles, maps the peers'. *usable_p is false
 * when some member could not export (then nothing is mapped and the caller falls back to messages). */
static xo_status_t share(xo_coll_t *g, xo_coll_sends_t *s, const void *send, void *recv, peers_map_t *m,
                         bool *usable_p)
{
    unsigned char msg[HANDLE_MSG] = {1};
    xo_device_ipc_handle_t h;
    if (xo_device_ipc_export(g->dev, send, &h) == XO_OK) memcpy(msg + 1, h.bytes, sizeof h.bytes);
    else msg[0] = 0;
    if (recv && msg[0] && xo_device_ipc_export(g->dev, recv, &h) == XO_OK)
        memcpy(msg + 1 + XO_DEVICE_IPC_HANDLE_SIZE, h.bytes, sizeof h.bytes);
    else if (recv) msg[0] = 0;
    xo_error_clear();
    unsigned char *all = malloc((size_t)HANDLE_MSG * (size_t)g->size);
    if (!all) return xo_coll_fail(g, XO_ENOMEM, "out of memory");
    xo_status_t st = xo_coll_all_to_all(g, s, TAG_HANDLES, msg, 0, HANDLE_MSG, all);
    *usable_p = true;
    for (int i = 0; st == XO_OK && i < g->size; i++) *usable_p &= all[(size_t)HANDLE_MSG * (size_t)i] == 1;
    size_t n = (size_t)g->size;
    if (st == XO_OK && *usable_p) {
        m->send = calloc(n, sizeof *m->send), m->recv = calloc(n, sizeof *m->recv);
        m->imported_send = calloc(n, sizeof(bool)), m->imported_recv = calloc(n, sizeof(bool));
        if (!m->send || !m->recv || !m->imported_send || !m->imported_recv)
            st = xo_coll_fail(g, XO_ENOMEM, "out of memory");
    }
    for (int i = 0; st == XO_OK && *usable_p && i < g->size; i++) {
        if (i == g->rank) {
            m->send[i] = (void *)send;
            m->recv[i] = recv;
            continue;
        }
        const unsigned char *p = all + (size_t)HANDLE_MSG * (size_t)i;
        memcpy(h.bytes, p + 1, sizeof h.bytes);
        st = xo_device_ipc_import(g->dev, &h, &m->send[i]);
        m->imported_send[i] = st == XO_OK;
        if (st == XO_OK && recv) {
            memcpy(h.bytes, p + 1 + XO_DEVICE_IPC_HANDLE_SIZE, sizeof h.bytes);
            st = xo_device_ipc_import(g->dev, &h, &m->recv[i]);
            m->imported_recv[i] = st == XO_OK;
        }
        if (st != XO_OK) st = xo_coll_fail(g, st, "collective %s: mapping rank %d's buffer: %s", g->name, i,
                                           xo_last_error());
    }
    free(all);
    return st;
}

/* The end of every operation here: wait for the control messages' replies, release them and the peers' mappings. */
static xo_status_t finish(xo_coll_t *g, xo_coll_sends_t *s, peers_map_t *m, xo_status_t st)
{
    if (st == XO_OK) st = xo_coll_sends_wait(g, s);
    xo_coll_sends_free(s);
    unmap(g, m);
    return st;
}

xo_status_t xo_coll_shm_allreduce(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  xo_reduce_op_t op, bool *done_p)
{
    size_t es = xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, recv, &m, &usable);
    if (st == XO_OK && usable) {
        size_t p0, pn;
        xo_coll_part(count, g->size, g->rank, &p0, &pn);
        unsigned char *tmp = malloc(pn > 0 ? pn * es : 1);
        if (!tmp) st = xo_coll_fail(g, XO_ENOMEM, "out of memory");
        if (st == XO_OK) { /* part rank, reduced in rank order; scratch first, since send may be recv */
            memcpy(tmp, (const unsigned char *)m.send[0] + p0 * es, pn * es);
            for (int i = 1; i < g->size; i++)
                xo_coll_reduce(tmp, (const unsigned char *)m.send[i] + p0 * es, pn, dt, op);
        }
        /* Nobody may write its recv (which may be its send) before everyone has read the send buffers. */
        if (st == XO_OK) st = xo_coll_barrier_round(g, &s, TAG_DONE);
        if (st == XO_OK) memcpy((unsigned char *)recv + p0 * es, tmp, pn * es);
        free(tmp);
        if (st == XO_OK) st = xo_coll_barrier_round(g, &s, TAG_DONE + 0x100); /* every part is in its owner's recv */
        for (int i = 0; st == XO_OK && i < g->size; i++) {
            if (i == g->rank) continue;
            size_t q0, qn;
            xo_coll_part(count, g->size, i, &q0, &qn);
            memcpy((unsigned char *)recv + q0 * es, (const unsigned char *)m.recv[i] + q0 * es, qn * es);
        }
        if (st == XO_OK) st = xo_coll_barrier_round(g, &s, TAG_FIN); /* nobody reads anyone's buffers any more */
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo_coll_shm_allgather(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                  bool *done_p)
{
    size_t block = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, NULL, &m, &usable);
    if (st == XO_OK && usable) {
        for (int i = 0; i < g->size; i++)
            memmove((unsigned char *)recv + block * (size_t)i, m.send[i], block);
        st = xo_coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo_coll_shm_broadcast(xo_coll_t *g, void *buf, size_t count, xo_dtype_t dt, int root, bool *done_p)
{
    size_t bytes = count * xo_dtype_size(dt);
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    /* Every member shares (not only the root), so that all of them see whether every member could: the fallback
     * must be taken by all or none. */
    xo_status_t st = share(g, &s, buf, NULL, &m, &usable);
    if (st == XO_OK && usable) {
        if (g->rank != root) memcpy(buf, m.send[root], bytes);
        st = xo_coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}

xo_status_t xo_coll_shm_reduce_scatter(xo_coll_t *g, const void *send, void *recv, size_t count, xo_dtype_t dt,
                                       xo_reduce_op_t op, bool *done_p)
{
    size_t block = count * xo_dtype_size(dt), off = block * (size_t)g->rank;
    xo_coll_sends_t s = {0};
    peers_map_t m = {0};
    bool usable = false;
    *done_p = false;
    xo_status_t st = share(g, &s, send, NULL, &m, &usable);
    if (st == XO_OK && usable) { /* block rank of every member's send, in rank order, straight into recv */
        memcpy(recv, (const unsigned char *)m.send[0] + off, block);
        for (int i = 1; i < g->size; i++) xo_coll_reduce(recv, (const unsigned char *)m.send[i] + off, count, dt, op);
        st = xo_coll_barrier_round(g, &s, TAG_FIN);
        *done_p = st == XO_OK;
    }
    return finish(g, &s, &m, st);
}
