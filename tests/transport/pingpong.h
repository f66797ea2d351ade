/* Raw channel ping-pong: the measuring loop a benchmark runs over any backend, below the actor runtime.
 * Nothing in the runtime uses it; bench/ and quick experiments do. */
#ifndef XO_TESTS_TRANSPORT_PINGPONG_H
#define XO_TESTS_TRANSPORT_PINGPONG_H

#include <stddef.h>
#include <stdint.h>

#include "transport/channel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct xo_pingpong_result {
    int iters;          /* round trips measured (after warmup) */
    double min_us;      /* round-trip times, microseconds */
    double p50_us;
    double p99_us;
    double mean_us;
    double mbytes_per_s; /* payload bytes moved both ways per second of round trips */
} xo_pingpong_result_t;

/* Echoes every frame received on ch back to the sender until the peer closes (returns XO_OK then), or an
 * error (returned). Blocks; one thread per channel. */
xo_status_t xo__pingpong_echo(xo_channel_t *ch);

/* Sends warmup + iters frames of header_len bytes plus one payload_len-byte segment (none when 0), each after
 * the echo of the previous one came back, and measures the round trips. Waits up to timeout_ms for each echo.
 * Blocks. On XO_OK fills *res. */
xo_status_t xo__pingpong_run(xo_channel_t *ch, size_t header_len, size_t payload_len, int warmup, int iters,
                             int timeout_ms, xo_pingpong_result_t *res);

#ifdef __cplusplus
}
#endif
#endif
