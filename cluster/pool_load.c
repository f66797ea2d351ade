/* The INFO fan-out of placement: every request is sent before the first answer is awaited, so asking n pools costs
 * one round trip and a pool that is slow to answer costs at most the timeout, not n of them. */
#include "cluster/pool_load.h"

#include <stdlib.h>

#include "runtime/core.h"
#include "runtime/remote.h"

void xo__pool_live_query(const char *const *addrs, size_t n, int timeout_ms, xo__pool_live_t *out)
{
    xo_future_t **f = calloc(n ? n : 1, sizeof *f); /* ours, freed below with every future it holds */
    for (size_t i = 0; i < n; i++) {
        out[i] = (xo__pool_live_t){0};
        if (f && xo__remote_send(addrs[i], XO_WIRE_INFO, 0, "", NULL, NULL, true, &f[i]) != XO_OK) f[i] = NULL;
    }
    uint64_t deadline = xo__now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (size_t i = 0; f && i < n; i++) {
        if (!f[i]) continue;
        uint64_t now = xo__now_ns();
        int64_t left = now < deadline ? (int64_t)((deadline - now) / 1000000ull) : 0;
        xo_result_t *r = NULL;
        xo_status_t st = xo_future_wait(f[i], left, &r);
        if (st == XO_ETIMEDOUT) xo__future_request_cancel(f[i]);
        xo__future_unref(f[i]);
        if (st != XO_OK) continue;
        int pid = 0;
        uint64_t all = 0;
        xo__pool_live_t *o = &out[i];
        /* Newer fields after the first four are optional: an older pool's reply still counts. */
        if (xo_result_unpack(r, "[iuuu|uuuu*]", &pid, &all, &o->mem_free, &o->mem_total, &o->actors, &o->in_flight,
                             &o->busy, &o->threads) == XO_OK) {
            if (!o->threads) o->actors = all; /* an older pool: its only count is every actor */
            o->ok = true;
        }
        xo_result_free(r);
    }
    free(f);
    xo__error_clear();
}
