/* xo.probe: the actor `xoscar tune` measures pairs of pools with. Every pool registers the class (services/
 * pool_start.c); tune creates one per pool (uid XO_PROBE_UID) and asks the probe in pool A to measure pool B, so
 * the calls go from A to B by the path the router takes for that pair, exactly as an actor of A calling one of B.
 *
 *   echo(any...) -> nil                        the 8-byte call of the latency figure
 *   sink(bin) -> bytes received                a payload of the bandwidth figure
 *   measure(target address, n_latency, [size...], reps)
 *       -> [path, p50_us, p99_us, [[bytes, median_Bps, min_Bps, max_Bps], ...]]
 *
 * Stateless: measure suspends in its calls, and the probe answers echo and sink from other measurements meanwhile
 * (tune runs one pair at a time, so they do not share a link). */
#include "services/probe.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "runtime/remote.h"

#define MEASURE_TIMEOUT_MS 30000

static xo_status_t probe_echo(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return xo_pack(out, "n");
}

static xo_status_t probe_sink(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_bytes_t b;
    xo_status_t st = xo_unpack(args, "b", &b);
    if (st != XO_OK) return st;
    return xo_pack(out, "u", (uint64_t)b.len);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
    size_t k = (size_t)(q * (double)n);
    return v[k < n ? k : n - 1];
}

static xo_status_t probe_measure(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t target;
    int64_t n_lat = 0, reps = 0;
    const msgpack_object *sizes = NULL;
    xo_status_t st = xo_unpack(args, "slol", &target, &n_lat, &sizes, &reps);
    if (st != XO_OK) return st;
    if (sizes->type != MSGPACK_OBJECT_ARRAY || sizes->via.array.size > 16 || n_lat < 1 || n_lat > 100000 ||
        reps < 1 || reps > 100)
        return xo_ctx_error(ctx, XO_EBADARGS, "measure: want 1..100000 latency calls, up to 16 sizes, 1..100 reps");
    char addr[256];
    if (target.len >= sizeof addr) return xo_ctx_error(ctx, XO_EBADARGS, "measure: target address too long");
    memcpy(addr, target.ptr, target.len);
    addr[target.len] = '\0';
    xo_ref_t *peer = NULL;
    if ((st = xo_actor_ref(addr, XO_PROBE_UID, &peer)) != XO_OK)
        return xo_ctx_error(ctx, st, "measure: no probe at %s: %s", addr, xo_last_error());

    /* Latency: a few calls to set up the connection first, then n_lat timed round trips of 8 bytes. */
    double *lat = malloc((size_t)n_lat * sizeof *lat); /* ours */
    uint64_t eight = 0;
    for (int i = 0; st == XO_OK && i < 16; i++) {
        xo_result_t *r = NULL;
        st = xo_call(peer, "echo", xo_args("b", &eight, sizeof eight), MEASURE_TIMEOUT_MS, &r);
        xo_result_free(r);
    }
    for (int64_t i = 0; st == XO_OK && lat && i < n_lat; i++) {
        xo_result_t *r = NULL;
        uint64_t t0 = xo__now_ns();
        st = xo_call(peer, "echo", xo_args("b", &eight, sizeof eight), MEASURE_TIMEOUT_MS, &r);
        lat[i] = (double)(xo__now_ns() - t0) / 1e3;
        xo_result_free(r);
    }
    if (!lat && st == XO_OK) st = xo_ctx_error(ctx, XO_ENOMEM, "measure: out of memory");
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        free(lat);
        xo_ref_free(peer);
        return xo_ctx_error(ctx, st, "measure %s -> %s: %s", xo_ctx_address(ctx), addr, why);
    }
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    double p50 = quantile(lat, (size_t)n_lat, 0.50), p99 = quantile(lat, (size_t)n_lat, 0.99);
    free(lat);
    const char *path = xo__remote_path(addr);

    size_t n_sizes = sizes->via.array.size;
    double fig[16][3] = {{0}};
    uint64_t bytes[16] = {0};
    for (size_t s = 0; st == XO_OK && s < n_sizes; s++) {
        const msgpack_object *o = &sizes->via.array.ptr[s];
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0 || o->via.u64 > (1ull << 30)) {
            st = xo_ctx_error(ctx, XO_EBADARGS, "measure: sizes are byte counts 1..1 GiB");
            break;
        }
        bytes[s] = o->via.u64;
        char *buf = calloc(1, bytes[s]); /* ours, the payload */
        double bw[100];
        for (int64_t k = 0; buf && st == XO_OK && k < reps; k++) {
            xo_result_t *r = NULL;
            uint64_t t0 = xo__now_ns();
            st = xo_call(peer, "sink", xo_args("b", buf, (size_t)bytes[s]), MEASURE_TIMEOUT_MS, &r);
            double secs = (double)(xo__now_ns() - t0) / 1e9;
            bw[k] = (double)bytes[s] / (secs > 0 ? secs : 1e-9);
            xo_result_free(r);
        }
        if (!buf && st == XO_OK) st = xo_ctx_error(ctx, XO_ENOMEM, "measure: no memory for %llu bytes",
                                                   (unsigned long long)bytes[s]);
        free(buf);
        if (st != XO_OK) break;
        qsort(bw, (size_t)reps, sizeof *bw, cmp_double);
        fig[s][0] = bw[reps / 2];
        fig[s][1] = bw[0];
        fig[s][2] = bw[reps - 1];
    }
    xo_ref_free(peer);
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_ctx_error(ctx, st, "measure %s -> %s: %s", xo_ctx_address(ctx), addr, why);
    }
    msgpack_pack_array(out, 4);
    xo_pack(out, "sdd", path ? path : "unknown", p50, p99);
    msgpack_pack_array(out, n_sizes);
    for (size_t s = 0; s < n_sizes; s++) xo_pack(out, "[uddd]", bytes[s], fig[s][0], fig[s][1], fig[s][2]);
    return XO_OK;
}

static const xo_method_t probe_methods[] = {
    {.name = "echo", .fn = probe_echo},
    {.name = "sink", .fn = probe_sink},
    {.name = "measure", .fn = probe_measure},
};

const xo_actor_class_t xo_probe_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = XO_PROBE_CLASS,
    .methods = probe_methods,
    .n_methods = sizeof probe_methods / sizeof probe_methods[0],
};
