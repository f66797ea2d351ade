/* xo.probe: the actor `xoscar tune` measures pairs of pools with. Every pool registers the class (services/
 * pool_start.c); tune creates one per pool (uid XO_PROBE_UID) and asks the probe in pool A to measure pool B, so
 * the calls go from A to B by the path the router takes for that pair, exactly as an actor of A calling one of B.
 *
 *   echo(any...) -> nil                        the 8-byte call of the latency figure
 *   sink(bin) -> bytes received                a payload of the bandwidth figure
 *   measure(target address, n_latency, [size...], reps)
 *       -> [path, p50_us, p99_us, [[bytes, median_Bps, min_Bps, max_Bps], ...]]
 *   devsink(device buffer) -> [path, bytes]      unpacks a lent buffer onto this pool's device
 *   measure_devbuf(target address, [size...], reps)
 *       -> [path, [[bytes, median_Bps, min_Bps, max_Bps], ...]]   buffers of this pool's device lent to target
 *   device_figures([size...], reps) -> [[[bytes, median_Bps, min_Bps, max_Bps], ...], launch]
 *       this pool's device: device-to-device copy bandwidth; launch is [via, p50_us, p99_us] or [nil, why]
 *
 * Stateless: measure suspends in its calls, and the probe answers echo and sink from other measurements meanwhile
 * (tune runs one pair at a time, so they do not share a link). */
#include "services/probe.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"
#include "runtime/remote.h"
#include "services/devbuf/devbuf.h"
#include "xoscar/device_buf.h"

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

/* The bandwidth points of one size list: fig[s] = median, min, max over reps of bytes[s] / seconds(s). */
static void spread(double *bw, int64_t reps, double out[3])
{
    qsort(bw, (size_t)reps, sizeof *bw, cmp_double);
    out[0] = bw[reps / 2];
    out[1] = bw[0];
    out[2] = bw[reps - 1];
}

static xo_status_t check_sizes(xo_ctx_t *ctx, const msgpack_object *sizes, int64_t reps, uint64_t bytes[16])
{
    if (sizes->type != MSGPACK_OBJECT_ARRAY || sizes->via.array.size > 16 || reps < 1 || reps > 100)
        return xo_ctx_error(ctx, XO_EBADARGS, "want up to 16 sizes and 1..100 reps");
    for (size_t s = 0; s < sizes->via.array.size; s++) {
        const msgpack_object *o = &sizes->via.array.ptr[s];
        if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0 || o->via.u64 > (1ull << 30))
            return xo_ctx_error(ctx, XO_EBADARGS, "sizes are byte counts 1..1 GiB");
        bytes[s] = o->via.u64;
    }
    return XO_OK;
}

/* The receiver's side of a lent buffer. On the host backend device memory is host memory, and an import's pages
 * are mapped lazily: one byte read per page makes the figure include the faults a consumer pays at first touch, so
 * an import is not credited with a mapping it has not made yet. A CUDA buffer is left alone (reading it would be a
 * copy the consumer does not make). */
static xo_status_t probe_devsink(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    if (args->type != MSGPACK_OBJECT_ARRAY || args->via.array.size != 1)
        return xo_ctx_error(ctx, XO_EBADARGS, "devsink: want one device buffer");
    xo_device_t *dev = xo_ctx_device(ctx);
    void *ptr = NULL;
    size_t size = 0;
    const char *path = "unknown";
    xo_status_t st = xo__devbuf_unpack(dev, NULL, &args->via.array.ptr[0], &ptr, &size, NULL, &path);
    if (st != XO_OK) return st;
    if (ptr && dev && strcmp(xo_device_backend_name(xo_device_backend(dev)), "host") == 0) {
        volatile const unsigned char *b = ptr;
        unsigned sum = 0;
        for (size_t i = 0; i < size; i += 4096) sum += b[i];
        (void)sum;
    }
    return xo_pack(out, "[su]", path, (uint64_t)size);
}

/* Buffers of this pool's device lent to the probe at target, by whatever path the runtime takes for that pair. */
static xo_status_t probe_measure_devbuf(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    xo_str_t target;
    int64_t reps = 0;
    const msgpack_object *sizes = NULL;
    uint64_t bytes[16] = {0};
    xo_status_t st = xo_unpack(args, "sol", &target, &sizes, &reps);
    if (st == XO_OK) st = check_sizes(ctx, sizes, reps, bytes);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "measure_devbuf: pool %s owns no device", xo_ctx_address(ctx));
    char addr[256];
    if (target.len >= sizeof addr) return xo_ctx_error(ctx, XO_EBADARGS, "measure_devbuf: target address too long");
    memcpy(addr, target.ptr, target.len);
    addr[target.len] = '\0';
    xo_ref_t *peer = NULL;
    if ((st = xo_actor_ref(addr, XO_PROBE_UID, &peer)) != XO_OK)
        return xo_ctx_error(ctx, st, "measure_devbuf: no probe at %s: %s", addr, xo_last_error());
    size_t n_sizes = sizes->via.array.size;
    double fig[16][3] = {{0}};
    char path[16] = "unknown";
    for (size_t s = 0; st == XO_OK && s < n_sizes; s++) {
        void *buf = NULL;
        if ((st = xo_device_alloc(dev, bytes[s], &buf)) != XO_OK) break;
        st = xo_device_memset(dev, buf, 1, bytes[s], NULL);
        double bw[100];
        /* One untimed hand-over first: the connection to the owner's xo.devbuf service is made once per pair. */
        for (int64_t k = -1; st == XO_OK && k < reps; k++) {
            xo_args_t *a = xo_args_new(1);
            st = xo_pack_device_buf(xo_args_packer(a), dev, buf, bytes[s]);
            if (st != XO_OK) {
                xo_args_free(a);
                break;
            }
            xo_result_t *r = NULL;
            uint64_t t0 = xo__now_ns();
            st = xo_call(peer, "devsink", a, MEASURE_TIMEOUT_MS, &r);
            double secs = (double)(xo__now_ns() - t0) / 1e9;
            xo_str_t p = {0};
            uint64_t got = 0;
            if (st == XO_OK) st = xo_result_unpack(r, "[su]", &p, &got);
            if (st == XO_OK && k < 0) snprintf(path, sizeof path, "%.*s", (int)p.len, p.ptr);
            if (k >= 0) bw[k] = (double)bytes[s] / (secs > 0 ? secs : 1e-9);
            xo_result_free(r);
        }
        xo_device_free(dev, buf); /* the reply has come: the receiver is done with it (the lend rule) */
        if (st == XO_OK) spread(bw, reps, fig[s]);
    }
    xo_ref_free(peer);
    if (st != XO_OK) {
        char why[XO_ERROR_TEXT_MAX];
        snprintf(why, sizeof why, "%s", xo_last_error());
        return xo_ctx_error(ctx, st, "measure_devbuf %s -> %s: %s", xo_ctx_address(ctx), addr, why);
    }
    msgpack_pack_array(out, 2);
    xo_pack(out, "s", path);
    msgpack_pack_array(out, n_sizes);
    for (size_t s = 0; s < n_sizes; s++) xo_pack(out, "[uddd]", bytes[s], fig[s][0], fig[s][1], fig[s][2]);
    return XO_OK;
}

static void noop(void *arg) { (void)arg; }

/* This pool's device: the bandwidth of a device-to-device copy and the cost of a launch. The runtime carries no
 * kernel of its own to time with xo_device_launch_kernel, so the launch figure is that of the one launch every
 * backend has, a host function queued on a stream (xo_device_launch_host: how the host backend runs its kernels),
 * waited for: the figure says which it timed, and a backend where even that fails says why instead. */
static xo_status_t probe_device_figures(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    int64_t reps = 0;
    const msgpack_object *sizes = NULL;
    uint64_t bytes[16] = {0};
    xo_status_t st = xo_unpack(args, "ol", &sizes, &reps);
    if (st == XO_OK) st = check_sizes(ctx, sizes, reps, bytes);
    if (st != XO_OK) return st;
    xo_device_t *dev = xo_ctx_device(ctx);
    if (!dev) return xo_ctx_error(ctx, XO_EINVAL, "device_figures: pool %s owns no device", xo_ctx_address(ctx));
    size_t n_sizes = sizes->via.array.size;
    double fig[16][3] = {{0}};
    for (size_t s = 0; st == XO_OK && s < n_sizes; s++) {
        void *src = NULL, *dst = NULL;
        st = xo_device_alloc(dev, bytes[s], &src);
        if (st == XO_OK) st = xo_device_alloc(dev, bytes[s], &dst);
        if (st == XO_OK) st = xo_device_memset(dev, src, 1, bytes[s], NULL);
        if (st == XO_OK) st = xo_device_memset(dev, dst, 0, bytes[s], NULL); /* pages in before the clock runs */
        double bw[100];
        for (int64_t k = 0; st == XO_OK && k < reps; k++) {
            uint64_t t0 = xo__now_ns();
            st = xo_device_memcpy(dev, dst, src, bytes[s], XO_MEMCPY_DEVICE_TO_DEVICE, NULL);
            double secs = (double)(xo__now_ns() - t0) / 1e9;
            bw[k] = (double)bytes[s] / (secs > 0 ? secs : 1e-9);
        }
        if (src) xo_device_free(dev, src);
        if (dst) xo_device_free(dev, dst);
        if (st == XO_OK) spread(bw, reps, fig[s]);
    }
    if (st != XO_OK) return xo_ctx_error(ctx, st, "device_figures %s: copy: %s", xo_ctx_address(ctx), xo_last_error());
    enum { N_LAUNCH = 200 };
    double lat[N_LAUNCH];
    xo_device_stream_t *stream = NULL;
    xo_status_t lst = xo_device_stream_create(dev, &stream);
    for (int i = 0; lst == XO_OK && i < N_LAUNCH + 10; i++) {
        uint64_t t0 = xo__now_ns();
        lst = xo_device_launch_host(stream, noop, NULL);
        if (lst == XO_OK) lst = xo_device_stream_synchronize(stream);
        if (i >= 10) lat[i - 10] = (double)(xo__now_ns() - t0) / 1e3; /* the first few warm the stream's thread */
    }
    char why[XO_ERROR_TEXT_MAX];
    if (lst != XO_OK) snprintf(why, sizeof why, "launch_host failed: %s", xo_last_error());
    if (stream) xo_device_stream_destroy(stream);
    msgpack_pack_array(out, 2);
    msgpack_pack_array(out, n_sizes);
    for (size_t s = 0; s < n_sizes; s++) xo_pack(out, "[uddd]", bytes[s], fig[s][0], fig[s][1], fig[s][2]);
    if (lst != XO_OK) return xo_pack(out, "[ns]", why);
    qsort(lat, N_LAUNCH, sizeof *lat, cmp_double);
    return xo_pack(out, "[sdd]", "launch_host", quantile(lat, N_LAUNCH, 0.5), quantile(lat, N_LAUNCH, 0.99));
}

static const xo_method_t probe_methods[] = {
    {.name = "echo", .fn = probe_echo},
    {.name = "sink", .fn = probe_sink},
    {.name = "measure", .fn = probe_measure},
    {.name = "devsink", .fn = probe_devsink},
    {.name = "measure_devbuf", .fn = probe_measure_devbuf},
    {.name = "device_figures", .fn = probe_device_figures},
};

const xo_actor_class_t xo_probe_class = {
    .abi_version = XO_CLASS_ABI_V1,
    .flags = XO_ACTOR_STATELESS,
    .name = XO_PROBE_CLASS,
    .methods = probe_methods,
    .n_methods = sizeof probe_methods / sizeof probe_methods[0],
};
