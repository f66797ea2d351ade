/* Warm memory for large received frames, per stream channel.
 *
 * A large frame used to get a fresh block from aligned_alloc each time; past glibc's mmap threshold (32 MiB at most)
 * that is a new mapping whose every page faults and is zeroed while the body is read into it, which cost about 45%
 * of the receive copy of a 64 MiB call (bench/results/2026-12-04-tcp-bulk.md). The cache keeps a few such blocks
 * once their frames are released and hands them to the next large frame: the pages are already there.
 *
 * Bounded: at most XO_RX_BLOCKS_KEEP blocks and XO_RX_BLOCKS_KEEP_BYTES bytes wait in a cache. A block that waits is
 * marked MADV_FREE, so the kernel may take its pages under memory pressure (the next use then faults them back in,
 * as a fresh block would) instead of an idle channel pinning them. Blocks of 2 MiB and more ask for huge pages.
 *
 * A frame may outlive its channel (its release runs on any thread, later): the cache is reference counted, and a
 * block released after the channel closed is unmapped then. Private to transport/. */
#ifndef XO_TRANSPORT_RX_BLOCKS_H
#define XO_TRANSPORT_RX_BLOCKS_H

#include <stddef.h>

/* Frames at least this large take their block from the cache; smaller ones stay with malloc, whose heap is warm. */
#define XO_RX_BLOCKS_MIN ((size_t)1 << 20)
#define XO_RX_BLOCKS_KEEP 4
#define XO_RX_BLOCKS_KEEP_BYTES ((size_t)1 << 30)

typedef struct xo_rx_blocks xo_rx_blocks_t;

/* A new, empty cache, owned by the caller (end it with xo__rx_blocks_close); NULL when out of memory (the channel then
 * allocates every frame itself). */
xo_rx_blocks_t *xo__rx_blocks_new(void);

/* A 64-byte-aligned block of at least size bytes: a cached one when one fits, else a new mapping. NULL when out of
 * memory (errno set). The block belongs to a frame: set frame.release = *release_p and frame.release_arg = *arg_p,
 * and its release gives the block back (any thread, even after the cache was closed). */
void *xo__rx_blocks_take(xo_rx_blocks_t *b, size_t size, void (**release_p)(void *), void **arg_p);

/* The channel's end: unmaps the blocks that wait and drops the channel's reference. Blocks still held by frames are
 * unmapped when those frames are released. b may be NULL. */
void xo__rx_blocks_close(xo_rx_blocks_t *b);

#endif
