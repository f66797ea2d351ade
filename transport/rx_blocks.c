/* The per-channel cache of large receive blocks (see rx_blocks.h for why and its bounds). */
#include "transport/rx_blocks.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Sizes round up to whole huge pages, so that a frame a few bytes larger than the last still fits its block. */
#define BLOCK_ROUND ((size_t)2 << 20)
/* The block's own header sits at the start of its mapping; the data starts one cache line later. */
#define DATA_OFFSET 64

typedef struct rx_block {
    struct xo_rx_blocks *cache;
    size_t map_len; /* the whole mapping, header included */
} rx_block_t;

struct xo_rx_blocks {
    /* One for the channel, one per block out in a frame. */
    atomic_size_t refs;
    pthread_mutex_t lock;
    bool closed;
    size_t nfree, free_bytes;
    rx_block_t *free[XO_RX_BLOCKS_KEEP];
};

static void unref(xo_rx_blocks_t *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static void *block_data(rx_block_t *blk) { return (uint8_t *)blk + DATA_OFFSET; }

static size_t block_cap(const rx_block_t *blk) { return blk->map_len - DATA_OFFSET; }

xo_rx_blocks_t *xo__rx_blocks_new(void)
{
    xo_rx_blocks_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

static void block_return(void *arg)
{
    rx_block_t *blk = arg;
    xo_rx_blocks_t *b = blk->cache;
    size_t len = blk->map_len;
    pthread_mutex_lock(&b->lock);
    bool keep = !b->closed && b->nfree < XO_RX_BLOCKS_KEEP && b->free_bytes + len <= XO_RX_BLOCKS_KEEP_BYTES;
    if (keep) {
        b->free[b->nfree++] = blk;
        b->free_bytes += len;
    }
    pthread_mutex_unlock(&b->lock);
    if (keep) {
#ifdef MADV_FREE
        /* Reclaimable while it waits; the header page stays (it is written again at the next take). */
        madvise((uint8_t *)blk + BLOCK_ROUND, len - BLOCK_ROUND, MADV_FREE);
#endif
    } else {
        munmap(blk, len);
    }
    unref(b);
}

void *xo__rx_blocks_take(xo_rx_blocks_t *b, size_t size, void (**release_p)(void *), void **arg_p)
{
    size_t need = size + DATA_OFFSET;
    if (need < size) {
        errno = ENOMEM;
        return NULL;
    }
    rx_block_t *blk = NULL;
    pthread_mutex_lock(&b->lock);
    size_t best = b->nfree;
    for (size_t i = 0; i < b->nfree; i++)
        if (block_cap(b->free[i]) >= size && (best == b->nfree || b->free[i]->map_len < b->free[best]->map_len))
            best = i;
    if (best < b->nfree) {
        blk = b->free[best];
        b->free[best] = b->free[--b->nfree];
        b->free_bytes -= blk->map_len;
    }
    pthread_mutex_unlock(&b->lock);
    if (!blk) {
        size_t len = (need + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
        void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(m, len, MADV_HUGEPAGE); /* a hint: refused or ignored where THP is off */
#endif
        blk = m;
        blk->map_len = len;
        blk->cache = b;
    }
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    *release_p = block_return;
    *arg_p = blk;
    return block_data(blk);
}

void xo__rx_blocks_close(xo_rx_blocks_t *b)
{
    if (!b) return;
    pthread_mutex_lock(&b->lock);
    b->closed = true;
    size_t n = b->nfree;
    rx_block_t *blocks[XO_RX_BLOCKS_KEEP];
    for (size_t i = 0; i < n; i++) blocks[i] = b->free[i];
    b->nfree = 0;
    b->free_bytes = 0;
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n; i++) munmap(blocks[i], blocks[i]->map_len);
    unref(b);
}
