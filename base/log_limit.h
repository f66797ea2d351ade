/* Rate-limited log lines: for events a stranger can cause at will (refused connections, malformed frames), one line
 * per interval that says how many were not logged since the last one, instead of one line each (an attack of 1,100
 * connections made 1,100 lines). */
#ifndef XO_BASE_LOG_LIMIT_H
#define XO_BASE_LOG_LIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One per kind of event; zero-initialised (a static). */
typedef struct xo_log_limit {
    _Atomic uint64_t next_ns; /* CLOCK_MONOTONIC time before which nothing more is logged */
    _Atomic uint64_t skipped; /* events not logged since the last line */
} xo_log_limit_t;

#define XO_LOG_LIMIT_NS 1000000000ull /* one line a second per kind of event */

/* Counts one event. True when the caller logs it now; then *skipped gets the events not logged since the last
 * line (their count starts again). Any thread. */
static inline bool xo__log_limit(xo_log_limit_t *l, uint64_t *skipped)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t next = atomic_load_explicit(&l->next_ns, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(&l->next_ns, &next, now + XO_LOG_LIMIT_NS)) {
        atomic_fetch_add_explicit(&l->skipped, 1, memory_order_relaxed);
        return false;
    }
    *skipped = atomic_exchange_explicit(&l->skipped, 0, memory_order_relaxed);
    return true;
}

/* xo_log(level, ...) at most once per XO_LOG_LIMIT_NS for the call site, followed by how many were not logged since
 * the previous line when there were any. The format must be a string literal. */
#define xo_log_limited(level, fmt, ...)                                                                       \
    do {                                                                                                      \
        static xo_log_limit_t xo__ll_;                                                                        \
        uint64_t xo__ll_skipped_;                                                                             \
        if ((level) <= xo__log_threshold() && xo__log_limit(&xo__ll_, &xo__ll_skipped_)) {                    \
            if (xo__ll_skipped_)                                                                              \
                xo__log_write((level), __FILE__, __LINE__, fmt " (%llu more since the last such line)",       \
                              __VA_ARGS__, (unsigned long long)xo__ll_skipped_);                              \
            else                                                                                              \
                xo__log_write((level), __FILE__, __LINE__, fmt, __VA_ARGS__);                                 \
        }                                                                                                     \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
