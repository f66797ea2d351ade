/* Raw channel ping-pong (see pingpong.h). */
#include "tests/transport/pingpong.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"

xo_status_t xo__pingpong_echo(xo_channel_t *ch)
{
    for (;;) {
        xo_frame_t f = {0};
        xo_status_t st = xo__channel_recv(ch, -1, &f);
        if (st == XO_ECLOSED) return XO_OK;
        if (st != XO_OK) return st;
        st = xo__channel_send(ch, &f);
        xo__frame_release(&f);
        if (st == XO_ECLOSED) return XO_OK;
        if (st != XO_OK) return st;
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

xo_status_t xo__pingpong_run(xo_channel_t *ch, size_t header_len, size_t payload_len, int warmup, int iters,
                             int timeout_ms, xo_pingpong_result_t *res)
{
    if (iters <= 0 || warmup < 0) return xo__error_set(XO_EINVAL, "pingpong: iters must be positive");
    uint8_t *hdr = calloc(1, header_len ? header_len : 1);
    uint8_t *payload = calloc(1, payload_len ? payload_len : 1);
    int64_t *rtt = malloc(sizeof *rtt * (size_t)iters);
    xo_status_t st = XO_OK;
    if (!hdr || !payload || !rtt) st = xo__error_set(XO_ENOMEM, "pingpong: no memory");
    xo_seg_t seg = {payload, payload_len};
    xo_frame_t f = {.header = hdr, .header_len = header_len, .segs = &seg, .nsegs = payload_len ? 1 : 0};
    for (int i = 0; st == XO_OK && i < warmup + iters; i++) {
        int64_t t0 = now_ns();
        st = xo__channel_send(ch, &f);
        xo_frame_t r = {0};
        if (st == XO_OK) st = xo__channel_recv(ch, timeout_ms, &r);
        int64_t t1 = now_ns();
        if (st == XO_OK && xo__frame_size(&r) != header_len + payload_len)
            st = xo__error_set(XO_EPROTO, "pingpong: echo of %zu bytes, sent %zu", xo__frame_size(&r),
                              header_len + payload_len);
        xo__frame_release(&r);
        if (i >= warmup) rtt[i - warmup] = t1 - t0;
    }
    if (st == XO_OK) {
        int64_t sum = 0;
        for (int i = 0; i < iters; i++) sum += rtt[i];
        qsort(rtt, (size_t)iters, sizeof *rtt, cmp_i64);
        *res = (xo_pingpong_result_t){
            .iters = iters,
            .min_us = rtt[0] / 1e3,
            .p50_us = rtt[iters / 2] / 1e3,
            .p99_us = rtt[(int)((int64_t)iters * 99 / 100)] / 1e3,
            .mean_us = (double)sum / iters / 1e3,
            .mbytes_per_s = sum ? 2.0 * (double)payload_len * iters / ((double)sum / 1e9) / 1e6 : 0,
        };
    }
    free(hdr);
    free(payload);
    free(rtt);
    return st;
}
