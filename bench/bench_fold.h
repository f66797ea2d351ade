/* The checksum that bulk benches use to confirm bytes arrived intact before timing: the client folds what it
 * sent, the target (BenchEcho "sum", bench_remote_module.c) folds what it got, and both must match. Header-only
 * because the target is a module that links none of the bench's objects. FNV-1a over 8-byte words, then bytes. */
#ifndef XO_BENCH_FOLD_H
#define XO_BENCH_FOLD_H

#include <stdint.h>
#include <string.h>

static inline uint64_t bench_fold(const void *data, size_t len)
{
    uint64_t h = len;
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#endif
