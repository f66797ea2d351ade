/* The shm backend's pool of reusable out-of-band segments, one pool per direction of a channel (see shm_segpool.c).
 *
 * A segment is a sealed memfd that both processes keep mapped for the life of the channel: one page for its state
 * word (XO_SEG_FREE or XO_SEG_BUSY), then its data. The sender owns a FREE segment: it marks it BUSY, copies a
 * frame's out-of-band parts into it and publishes a record naming its slot; the receiver's frame points straight
 * into its own mapping, and releasing the frame stores FREE again. So a large frame costs one copy on the sender
 * and none on the receiver, with no mmap, page allocation or page freeing per frame.
 *
 * A segment crosses once per slot, on the setup socket (XO_CTL_SEG with the slot number and the memfd), before the
 * first record that names it; a slot may be registered again with a new, larger segment once the receiver has
 * freed the old one. When the pool has no free segment that fits and may not grow, the sender falls back to a
 * fresh memfd for that frame (shm.c), so a receiver that holds many frames never blocks a sender. */
#ifndef XO_TRANSPORT_SHM_SEGPOOL_H
#define XO_TRANSPORT_SHM_SEGPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xoscar/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define XO_SEGPOOL_SLOTS 16u                     /* segments per direction */
#define XO_SEGPOOL_HDR ((size_t)4096)            /* the state word's page: data starts page-aligned after it */
#define XO_SEGPOOL_GRAIN ((size_t)2 << 20)       /* data sizes are multiples of this (a huge page) */
#define XO_SEGPOOL_BYTES ((size_t)1 << 30)       /* most bytes of segments one direction keeps mapped */

/* Out-of-band parts at least this large go into a pooled segment (smaller ones through the ring). Set from a
 * measurement: a raw shm channel ping-pong (tests/transport/pingpong.c, one payload segment, p50 of 3000 round
 * trips, 3 alternating runs each way, XO_SHM_POOL_MIN=1 against 1 GiB) on the 2-vCPU VM, 2026-12-03: at 8 KiB
 * both ~58 us; from 16 KiB the pool is ahead and the gap grows with the size (16 KiB 57.3 against 59.7 us, 32 KiB
 * 57.6 against 64.0, 64 KiB 60.0 against 68.0, 128 KiB 63.6 against 72.3): the ring copies twice (in and out),
 * the pool once into pages that stay mapped. The round trip there is mostly wake-ups on a loaded machine, so the
 * crossover is not sharper than "between 8 and 16 KiB". A receiver whose max_frame is below it (an acceptor
 * before authentication) refuses every segment. */
#define XO_SEGPOOL_PART_MIN ((size_t)16 << 10)

#define XO_SEG_FREE 0u
#define XO_SEG_BUSY 1u

/* ---- the sending side ---- */

typedef struct xo_segpool_tx_slot {
    uint8_t *map;    /* NULL: the slot is empty */
    size_t map_len;  /* XO_SEGPOOL_HDR + cap */
    size_t cap;      /* data bytes */
    int fd;          /* >= 0 until the segment has been registered with the peer */
    bool taken;      /* a sender is filling it, or its record is not published yet */
} xo_segpool_tx_slot_t;

typedef struct xo_segpool_tx {
    pthread_mutex_t lock; /* senders take and return segments concurrently (copies run outside send_lock) */
    xo_segpool_tx_slot_t slot[XO_SEGPOOL_SLOTS];
    size_t bytes; /* map_len of every slot */
} xo_segpool_tx_t;

/* A segment taken for one frame. */
typedef struct xo_seg_lease {
    uint32_t slot;
    uint8_t *data; /* cap bytes, page-aligned, shared with the peer */
    size_t cap;
    int reg_fd;    /* >= 0: register it (XO_CTL_SEG, slot, this fd) before the record; the pool keeps the fd */
} xo_seg_lease_t;

void xo__segpool_tx_init(xo_segpool_tx_t *p);
/* Unmaps every segment (the peer's mappings live on until it lets go). Once, when no sender uses p. */
void xo__segpool_tx_fini(xo_segpool_tx_t *p);

/* Takes a segment with at least need data bytes: the smallest free one that fits, else a new one in an empty slot,
 * else a new one replacing a free one that is too small, within XO_SEGPOOL_BYTES. XO_OK: *l is the caller's until
 * xo__segpool_tx_done. XO_EAGAIN (no error text): nothing fits now; send this frame another way. XO_ENOMEM /
 * XO_ESYS (with text) when a new segment could not be made. Any thread. */
xo_status_t xo__segpool_tx_take(xo_segpool_tx_t *p, size_t need, xo_seg_lease_t *l);

/* Gives a lease back: registered says whether its reg_fd reached the peer (the pool then closes the fd), published
 * whether a record naming it did (then the segment stays BUSY until the peer frees it; else it is FREE at once). */
void xo__segpool_tx_done(xo_segpool_tx_t *p, const xo_seg_lease_t *l, bool registered, bool published);

/* ---- the receiving side ---- */

/* One mapping of a peer's segment (shm_segpool.c): refcounted, since a received frame may outlive the channel and a
 * slot may be re-registered while an old frame still points into the old segment. */
typedef struct xo_segpool_rseg xo_segpool_rseg_t;

typedef struct xo_segpool_rx {
    xo_segpool_rseg_t *slot[XO_SEGPOOL_SLOTS];
    size_t bytes;
} xo_segpool_rx_t;

/* Drops the receiver's references (mappings held by frames stay until those are released). Receiving thread. */
void xo__segpool_rx_fini(xo_segpool_rx_t *p);

/* Maps the peer's segment for slot, replacing what the slot held. Consumes fd, whatever the result. Checks before
 * mapping anything: slot in range, fd sealed against growing and shrinking, its size a header plus data of at most
 * max_frame (rounded up to the grain), the direction's total within XO_SEGPOOL_BYTES. XO_EPROTO or XO_EMSGSIZE
 * (text set) for a segment no sender of ours would register; XO_ENOMEM when mmap fails. Receiving thread. */
xo_status_t xo__segpool_rx_register(xo_segpool_rx_t *p, uint32_t slot, int fd, size_t max_frame);

/* Takes slot's segment for one received frame whose out-of-band parts fill used bytes of it. On XO_OK *seg_p holds
 * a reference (give it back with xo__segpool_rx_release) and *data_p its data. XO_EPROTO (text set) when the slot
 * was never registered, is still held by an unreleased frame (the peer reused a segment we had not freed), or is
 * smaller than used. Receiving thread. */
xo_status_t xo__segpool_rx_take(xo_segpool_rx_t *p, uint32_t slot, uint64_t used, xo_segpool_rseg_t **seg_p,
                                uint8_t **data_p);

/* The frame is done with the segment: tells the peer it may reuse it and drops the frame's reference (the last
 * unmaps it). Any thread. Its signature fits xo_frame_t.release. */
void xo__segpool_rx_release(void *seg);

#ifdef __cplusplus
}
#endif
#endif
