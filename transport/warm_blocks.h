/* Large buffers whose pages stay mapped between uses, process-wide.
 *
 * A large buffer from malloc is a new mapping (glibc maps everything past its mmap threshold, 32 MiB at most), and
 * filling it faults and zeroes every page: measured, that made a 64 MiB 'b' argument cost about twice its copy
 * (bench/results/2026-12-04-tcp-bulk.md). Buffers given back here wait for the next large take instead.
 *
 * Bounded: at most XO_WARM_KEEP blocks and XO_WARM_KEEP_BYTES bytes wait; a waiting block is marked MADV_FREE, so
 * the kernel may take its pages under memory pressure (the next use then faults them in, as a new block would).
 * Blocks of 2 MiB and more ask for transparent huge pages. Thread-safe: take and give from any thread. */
#ifndef XO_TRANSPORT_WARM_BLOCKS_H
#define XO_TRANSPORT_WARM_BLOCKS_H

#include <stddef.h>

/* Below this a buffer is malloc's business: its heap is already warm. */
#define XO_WARM_MIN ((size_t)1 << 20)
#define XO_WARM_KEEP 8
#define XO_WARM_KEEP_BYTES ((size_t)1 << 30)

/* A 64-byte-aligned block of at least size bytes (a waiting one that fits, else a new mapping), and its usable
 * capacity in *cap_p (>= size). NULL when out of memory (errno set). The caller owns it: give it back with
 * xo__warm_give, never free(). */
void *xo__warm_take(size_t size, size_t *cap_p);

/* Gives back a block from xo__warm_take (NULL is ignored): it waits for a later take, or is unmapped when the cache
 * is full. */
void xo__warm_give(void *block);

#endif
