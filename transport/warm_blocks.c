/* The process-wide cache of large blocks (see warm_blocks.h for why and its bounds). */
#include "transport/warm_blocks.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

/* Sizes round up to whole huge pages, so that a block a little larger than the last one still fits it. */
#define BLOCK_ROUND ((size_t)2 << 20)
/* The block's mapping length sits in front of its data, one cache line before it. */
#define DATA_OFFSET 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *waiting[XO_WARM_KEEP]; /* mappings (not data pointers) */
static size_t nwaiting, waiting_bytes;

static size_t map_len(const void *map) { return *(const size_t *)map; }

void *xo__warm_take(size_t size, size_t *cap_p)
{
    if (size > SIZE_MAX - DATA_OFFSET - BLOCK_ROUND) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = size + DATA_OFFSET;
    void *map = NULL;
    pthread_mutex_lock(&lock);
    size_t best = nwaiting;
    for (size_t i = 0; i < nwaiting; i++)
        if (map_len(waiting[i]) >= need && (best == nwaiting || map_len(waiting[i]) < map_len(waiting[best]))) best = i;
    if (best < nwaiting) {
        map = waiting[best];
        waiting[best] = waiting[--nwaiting];
        waiting_bytes -= map_len(map);
    }
    pthread_mutex_unlock(&lock);
    if (!map) {
        size_t len = (need + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(map, len, MADV_HUGEPAGE); /* a hint: ignored where THP is off */
#endif
        *(size_t *)map = len;
    }
    *cap_p = map_len(map) - DATA_OFFSET;
    return (uint8_t *)map + DATA_OFFSET;
}

void xo__warm_give(void *block)
{
    if (!block) return;
    void *map = (uint8_t *)block - DATA_OFFSET;
    size_t len = map_len(map);
#ifdef MADV_FREE
    /* Reclaimable while it waits. Before it is listed: once listed, a taker may be writing it, and MADV_FREE after
     * such a write could drop it. The first huge page stays: it holds the length, read at the next take. */
    if (len > BLOCK_ROUND) madvise((uint8_t *)map + BLOCK_ROUND, len - BLOCK_ROUND, MADV_FREE);
#endif
    pthread_mutex_lock(&lock);
    int keep = nwaiting < XO_WARM_KEEP && waiting_bytes + len <= XO_WARM_KEEP_BYTES;
    if (keep) {
        waiting[nwaiting++] = map;
        waiting_bytes += len;
    }
    pthread_mutex_unlock(&lock);
    if (!keep) munmap(map, len);
}
