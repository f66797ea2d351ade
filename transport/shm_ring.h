/* A single-producer/single-consumer byte ring in shared memory, the data path of the shm backend.
 *
 * Positions (head, tail) count bytes ever consumed/written and never wrap (u64); the offset in the data area is
 * pos & (cap - 1). The writer owns tail, the reader owns head; each sits on its own cache line, as do the two
 * wakeup flags, so the fast path of either side touches only its own line plus one read of the other's.
 *
 * Publication: the writer copies a whole record into the data area, then stores tail with release; the reader
 * loads tail with acquire before reading the bytes below it. Symmetrically the reader stores head with release
 * after copying a record out, and the writer loads head with acquire before overwriting that space.
 *
 * Sleeping (the Dekker pattern, both directions):
 *   reader: store reader_sleeping = 1 (seq_cst); load tail (seq_cst)   -> sleep only if still empty
 *   writer: store tail (seq_cst);               load reader_sleeping (seq_cst) -> ring the doorbell if set
 * All four accesses are sequentially consistent, so they fall in one total order and at least one side sees the
 * other's store: either the reader sees the new tail and does not sleep, or the writer sees the flag and wakes
 * it. (Seq_cst accesses rather than plain stores plus atomic_thread_fence: same cost on x86, and ThreadSanitizer
 * understands them.) The same holds for writer_waiting (the writer waits for space, the reader frees space).
 * Whoever wakes a sleeper clears its flag with an exchange, so one wakeup is sent per sleep.
 */
#ifndef XO_TRANSPORT_SHM_RING_H
#define XO_TRANSPORT_SHM_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

typedef struct xo_ring_ctl {
    alignas(64) _Atomic uint64_t tail;            /* written by the writer only */
    alignas(64) _Atomic uint64_t head;            /* written by the reader only */
    alignas(64) _Atomic uint32_t reader_sleeping; /* set by the reader, cleared by whoever wakes it */
    alignas(64) _Atomic uint32_t writer_waiting;  /* a futex word: set by the writer, cleared by the waker */
} xo_ring_ctl_t;

/* One process's view of one ring. */
typedef struct xo_ring {
    xo_ring_ctl_t *ctl;
    uint8_t *data;
    uint64_t cap; /* a power of two */
} xo_ring_t;

/* Copies len bytes into the ring at absolute position pos, wrapping at the end of the data area. */
static inline void xo__ring_put(const xo_ring_t *r, uint64_t pos, const void *src, size_t len)
{
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = r->cap - off < len ? r->cap - off : len;
    memcpy(r->data + off, src, first);
    if (len > first) memcpy(r->data, (const uint8_t *)src + first, len - first);
}

/* Copies len bytes out of the ring from absolute position pos. */
static inline void xo__ring_get(const xo_ring_t *r, uint64_t pos, void *dst, size_t len)
{
    size_t off = (size_t)(pos & (r->cap - 1));
    size_t first = r->cap - off < len ? r->cap - off : len;
    memcpy(dst, r->data + off, first);
    if (len > first) memcpy((uint8_t *)dst + first, r->data, len - first);
}

/* Reader: bytes published and not yet consumed. The acquire pairs with the writer's release of tail, so the
 * bytes below the returned tail are visible. */
static inline uint64_t xo__ring_avail(const xo_ring_t *r, uint64_t head)
{
    return atomic_load_explicit(&r->ctl->tail, memory_order_acquire) - head;
}

/* ---- Record format (native byte order: both ends share a host; records start 8-byte aligned). ----
 *   u32 magic | u32 rec_len (bytes, multiple of 8) | u32 nparts (header + segments) | u32 flags
 *   u64 oob_size (bytes of the out-of-band memfd travelling over the setup socket, or used in the pooled segment;
 *                 0: none)
 *   flags: 0 (out-of-band parts, if any, in a fresh memfd), or XO_REC_POOL | slot: they are in the pooled segment
 *   of that slot (shm_segpool.h), plus XO_REC_POOL_NEW when the slot was registered (anew) just before this record
 *   nparts x { u64 len; u64 loc }   loc: XO_REC_OOB | offset in the memfd, or offset from the record start
 *   inline parts, each 8-byte aligned */
#define XO_REC_MAGIC 0x31524f58u /* "XOR1" */
#define XO_REC_HDR_LEN 24u
#define XO_REC_DESC_LEN 16u
#define XO_REC_OOB (1ull << 63)
#define XO_REC_POOL (1u << 31)
#define XO_REC_POOL_NEW (1u << 30)
#define XO_REC_SLOT_MASK 0xffffu

#endif
