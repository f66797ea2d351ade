/* What placement asks the pools at create time: their live load and device memory (an INFO request to each). */
#ifndef XO_CLUSTER_POOL_LOAD_H
#define XO_CLUSTER_POOL_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One pool's answer (runtime/wire.h, XO_WIRE_INFO). ok is false when the pool did not answer in time or answered
 * an error: the other fields are then 0 and the caller falls back to what it knows itself. */
typedef struct xo__pool_live {
    bool ok;
    uint64_t actors;      /* user actors living there now (the runtime's "xo." services left out) */
    uint64_t in_flight;   /* requests from other processes it has received and not answered: queued or running */
    uint64_t busy;        /* scheduler threads running work */
    uint64_t threads;     /* scheduler threads */
    uint64_t mem_free, mem_total; /* its device's memory; 0, 0 without a device */
} xo__pool_live_t;

/* Asks the n pools at addrs (borrowed) at once and waits for every answer, at most timeout_ms in all; out[i] (the
 * caller's array of n) is pool i's answer. A pool of an older build that sends only the first four fields gets
 * ok with its actor count and memory, and 0 for the rest. Runs on any thread; inside a method it suspends. */
void xo__pool_live_query(const char *const *addrs, size_t n, int timeout_ms, xo__pool_live_t *out);

#ifdef __cplusplus
}
#endif
#endif
